"""Generator files: safetensors weights that carry everything needed to use them.

The safetensors metadata names the architecture and its arguments, the latent size, the
image shape and the pixel range, so ``ganctl sample`` needs the file and nothing else.
Loading parses safetensors only: no pickle, no code from the file.

Format 2 (class-conditional generators): ``arch_args`` is an open dict (``num_classes`` beside
the three sizes), and a conditional generator's file also holds ``class_names`` and
``class_counts`` (images per class in its training data), both JSON lists. Format-1 files
(three sizes, no classes) load as they always did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes

FORMAT = "ganctl-generator"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator file says about itself."""

    architecture: str
    arch_args: dict[str, Any]  # image_size, channels, latent_dim; num_classes when conditional
    pixel_range: tuple[float, float]
    ganctl_version: str
    extra: dict[str, str]  # step, epoch, run... (informative)
    class_names: tuple[str, ...] = ()  # a conditional generator's classes, label i = class_names[i]
    class_counts: tuple[int, ...] = ()  # its training images per class (eval samples classes so)

    @property
    def num_classes(self) -> int:
        return int(self.arch_args.get("num_classes", 0))

    @property
    def latent_dim(self) -> int:
        return self.arch_args["latent_dim"]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        a = self.arch_args
        return a["channels"], a["image_size"], a["image_size"]


def state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state as independent CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_generator(
    path: Path,
    generator: torch.nn.Module,
    *,
    architecture: str,
    arch_args: dict[str, Any],
    pixel_range: tuple[float, float],
    extra: dict[str, Any] | None = None,
    class_names: tuple[str, ...] | list[str] = (),
    class_counts: tuple[int, ...] | list[int] = (),
) -> None:
    if arch_args.get("num_classes", 0) != len(class_names):
        raise ValueError(f"a generator of {arch_args.get('num_classes', 0)} classes needs as many class names, not {len(class_names)}")
    classes = {"class_names": json.dumps(list(class_names)), "class_counts": json.dumps(list(class_counts))} if class_names else {}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "arch_args": json.dumps(arch_args),
        "latent_dim": str(arch_args["latent_dim"]),
        "image_shape": json.dumps([arch_args["channels"], arch_args["image_size"], arch_args["image_size"]]),
        "pixel_range": json.dumps(list(pixel_range)),
        "latent_distribution": "normal",
        "ganctl_version": __version__,
        **classes,
        **{k: str(v) for k, v in (extra or {}).items()},
    }
    atomic_write_bytes(Path(path), save(state_tensors(generator), metadata=metadata))


def read_info(path: Path) -> GeneratorInfo:
    """Read and check a generator file's metadata (not its tensors)."""
    metadata = _open(path, lambda f: f.metadata())
    if not metadata or metadata.get("format") != FORMAT:
        raise GanctlError(f"{path} is a safetensors file but not a ganctl generator (it has no ganctl metadata)")
    version = metadata.get("format_version", "1")
    if version not in READABLE_VERSIONS:
        raise GanctlError(f"{path} is a generator file of format {version!r}, written by a newer ganctl; upgrade ganctl to read it")
    try:
        arch_args = _arch_args(json.loads(metadata["arch_args"]))
        class_names = _class_names(json.loads(metadata.get("class_names", "[]")), arch_args.get("num_classes", 0))
        info = GeneratorInfo(
            architecture=_text(metadata["architecture"]),
            arch_args=arch_args,
            pixel_range=_pixel_range(json.loads(metadata["pixel_range"])),
            ganctl_version=metadata.get("ganctl_version", "?"),
            extra={k: v for k, v in metadata.items() if k not in _KNOWN_KEYS},
            class_names=class_names,
            class_counts=_class_counts(json.loads(metadata.get("class_counts", "[]")), len(class_names)),
        )
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise GanctlError(f"{path} has damaged ganctl metadata ({type(exc).__name__}: {detail})") from None
    return info


def load_generator(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, GeneratorInfo]:
    """Rebuild the generator a file describes, load its weights, and put it in eval mode."""
    from ganctl.registry import ARCHITECTURES

    path = Path(path)
    info = read_info(path)
    if info.architecture not in ARCHITECTURES:
        raise GanctlError(
            f"{path} needs architecture '{info.architecture}', which no installed plugin provides"
        )
    arch = ARCHITECTURES.get(info.architecture).obj
    try:
        arch.check(**info.arch_args)
    except GanctlError as exc:
        raise GanctlError(f"{path} cannot be loaded: {exc}") from None
    generator = arch.build_generator(**info.arch_args)
    tensors = _open(path, lambda f: {k: f.get_tensor(k) for k in f.keys()})
    try:
        generator.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise GanctlError(
            f"{path}'s tensors do not fit architecture '{info.architecture}' {info.arch_args}: {first}"
        ) from None
    return generator.to(device).eval(), info


def load_requested_generator(weights: Path | None, device: str | torch.device) -> tuple[torch.nn.Module, GeneratorInfo, Path]:
    """``(generator in eval mode, its info, its file)`` for ``--weights`` (a file, a run folder, or None: the latest run)."""
    from ganctl.runfolder.layout import find_generator

    path = find_generator(weights)
    generator, info = load_generator(path, device)
    return generator, info, path


ARCH_ARG_LIMITS = {"image_size": 4096, "channels": 4, "latent_dim": 4096}  # beyond any recipe; bounds what is built
# format 2's optional arguments; 0 or absent: unconditional. A new architecture argument is
# added here, with its bound: a file names nothing else that is built.
OPTIONAL_ARG_LIMITS = {"num_classes": 100_000}


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"architecture {value!r} is not a name")
    return value


def _arch_args(value: Any) -> dict[str, Any]:
    """``{"image_size", "channels", "latent_dim"}`` and, when conditional, ``num_classes``:
    integers within limits, nothing else."""
    limits = {**ARCH_ARG_LIMITS, **OPTIONAL_ARG_LIMITS}
    if not isinstance(value, dict) or not set(ARCH_ARG_LIMITS) <= set(value) or not set(value) <= set(limits):
        raise ValueError(f"arch_args must hold {', '.join(ARCH_ARG_LIMITS)} (and optionally {', '.join(OPTIONAL_ARG_LIMITS)}), nothing else")
    for key, number in value.items():
        least = 0 if key in OPTIONAL_ARG_LIMITS else 1
        if isinstance(number, bool) or not isinstance(number, int) or not least <= number <= limits[key]:
            raise ValueError(f"arch_args {key} must be a whole number from {least} to {limits[key]}, not {number!r}")
    args = dict(value)
    if not args.get("num_classes"):
        args.pop("num_classes", None)
    return args


def _class_names(value: Any, num_classes: int) -> tuple[str, ...]:
    """As many distinct, non-empty names as the generator has classes."""
    if not isinstance(value, list) or len(value) != num_classes:
        raise ValueError(f"class_names must list the {num_classes} classes, not {str(value)[:60]}")
    from ganctl.conditional import MAX_CLASS_NAME, class_name_problem

    if any(class_name_problem(name) for name in value) or len(set(value)) != len(value):
        raise ValueError(f"class_names must be distinct non-empty strings of at most {MAX_CLASS_NAME} characters")
    return tuple(value)


def _class_counts(value: Any, num_classes: int) -> tuple[int, ...]:
    """Images per class, or nothing (a plugin's own file): then classes count alike."""
    if value == []:
        return ()
    if not isinstance(value, list) or len(value) != num_classes or not all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c for c in value
    ):
        raise ValueError(f"class_counts must be {num_classes} whole numbers")
    return tuple(value)


def _pixel_range(value: Any) -> tuple[float, float]:
    """Two finite numbers, the first below the second."""
    import math

    if (
        not isinstance(value, list) or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value) or not value[0] < value[1]
    ):  # fmt: skip
        raise ValueError(f"pixel_range must be two finite numbers, low < high, not {value!r}")
    return float(value[0]), float(value[1])


_KNOWN_KEYS = {
    "format", "format_version", "architecture", "arch_args", "latent_dim",
    "image_shape", "pixel_range", "latent_distribution", "ganctl_version", "class_names", "class_counts",
}


def _open(path: Path, read):
    path = Path(path)
    if not path.is_file():
        raise GanctlError(f"{path} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return read(f)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GanctlError(f"{path} is not a readable safetensors file (corrupt or truncated?): {detail}") from None
