"""Generating images from a trained generator: the logic behind ``sample`` and ``latent-walk``.

Everything here works without the command line:

    generator, info, path = load(weights=None, device=resolve_device("auto"))
    z = random_latents(64, info.latent_dim, seed=0)
    for batch in generate(generator, z, info.pixel_range, device=device):
        ...  # uint8 (B, C, H, W) tensors on the CPU

Latents are always drawn on the CPU from a seeded ``torch.Generator`` and only then moved to
the device, so one seed names the same latent points on every machine. They are drawn all at
once (N × latent_dim floats: 20 MB for 50,000 × 100) because splitting the draw into batches
would change the numbers; the images, the large part, are made and handed on one batch at a
time.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from ganctl.errors import GanctlError
from ganctl.images import grid, save_png, to_pil, to_uint8

MODES = ("slerp", "lerp")
LATENT_FILE_SUFFIXES = (".npy", ".safetensors")  # (the CLI checks names against its torch-free copy)


# ----------------------------------------------------------------------------------------
# Device and generator


def load(weights: Path | None, device: torch.device):
    """``(generator in eval mode, GeneratorInfo, file)`` for ``--weights`` (file, run folder, or latest run)."""
    from ganctl.runs import find_generator
    from ganctl.weights import load_generator

    path = find_generator(weights)
    generator, info = load_generator(path, device)
    return generator, info, path


# ----------------------------------------------------------------------------------------
# Latent points


def fresh_seed() -> int:
    """A seed for when the user gave none; it is reported so the run can be repeated."""
    return secrets.randbelow(2**31)


def random_latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latents on the CPU, the same for a seed on every machine."""
    rng = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, latent_dim, generator=rng)


def constant_latents(n: int, latent_dim: int, value: float) -> torch.Tensor:
    """``n`` copies of the point whose every entry is ``value``."""
    return torch.full((n, latent_dim), float(value))


def read_latents(path: Path, latent_dim: int) -> torch.Tensor:
    """Latents from ``.npy`` or ``.safetensors`` as float32 ``(N, latent_dim)``; never unpickles."""
    path = Path(path)
    if path.suffix.lower() not in LATENT_FILE_SUFFIXES:
        raise GanctlError(f"{path}: latent files are .npy or .safetensors, not '{path.suffix or path.name}'")
    if not path.is_file():
        raise GanctlError(f"{path} does not exist or is not a file")
    array = _read_npy(path) if path.suffix.lower() == ".npy" else _read_safetensors(path)
    if array.dtype.kind not in "fiu":  # bool, complex, strings, records: not latent points
        raise GanctlError(f"{path} holds {array.dtype} values; latents must be real numbers")
    z = torch.from_numpy(array.astype("float32", copy=True))
    if z.ndim == 1:
        z = z.unsqueeze(0)
    if z.ndim != 2 or z.shape[1] != latent_dim or z.shape[0] == 0:
        raise GanctlError(
            f"{path} holds an array of shape {tuple(array.shape)}; this generator needs "
            f"(N, {latent_dim}) or ({latent_dim},)"
        )
    if not torch.isfinite(z).all():
        raise GanctlError(f"{path} holds NaN or infinite values")
    return z


def _read_npy(path: Path):
    import numpy as np

    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # numpy would take any other bytes for a pickle
            raise GanctlError(f"{path} is not a readable .npy file (no .npy header)")
    try:
        return np.load(path, allow_pickle=False)  # a pickled array could run code: refused
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise GanctlError(f"{path} holds Python objects (a pickled array); save plain numbers instead") from None
        raise GanctlError(f"{path} is not a readable .npy file: {_first_line(exc)}") from None
    except (OSError, EOFError) as exc:
        raise GanctlError(f"{path} is not a readable .npy file: {_first_line(exc)}") from None


def _read_safetensors(path: Path):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            names = list(f.keys())
            if not names:
                raise GanctlError(f"{path} holds no tensors")
            return f.get_tensor("z" if "z" in names else names[0])
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise GanctlError(f"{path} is not a readable safetensors file: {_first_line(exc)}") from None


def save_latents(path: Path, z: torch.Tensor) -> None:
    """Write latents as ``.npy`` or as ``.safetensors`` (tensor ``z``), for ``--z-file`` later."""
    import io

    import numpy as np
    from safetensors.numpy import save

    from ganctl.fileio import atomic_write_bytes

    array = z.detach().cpu().float().numpy()
    if Path(path).suffix.lower() == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        data = buffer.getvalue()
    else:
        data = save({"z": array})
    atomic_write_bytes(Path(path), data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------------------
# Generation


def generate(
    generator: torch.nn.Module,
    latents: torch.Tensor,
    pixel_range: Sequence[float],
    *,
    device: torch.device,
    batch_size: int = 500,
    amp: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield the images of ``latents``, ``batch_size`` at a time, as uint8 ``(B, C, H, W)`` CPU tensors.

    Only one batch of images exists at a time. Each batch costs one device-to-host copy (of
    uint8, a quarter of float32) and no other synchronisation.
    """
    for start in range(0, latents.shape[0], batch_size):
        z = latents[start : start + batch_size].to(device, non_blocking=True)
        # inference mode only around the work: the consumer runs between yields, outside it
        with torch.inference_mode(), _autocast(device, amp):
            images = generator(z)
            batch = to_uint8(images.float(), pixel_range)
        yield batch


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def sample_grid(batches: Iterable[torch.Tensor], nrow: int | None, padding: int, scale: int) -> Image.Image:
    """All images in one grid picture, ``nrow`` per row (default ⌈√n⌉)."""
    images = torch.cat(list(batches))
    return to_pil(grid(images, nrow=nrow, padding=padding), scale=scale)


def individual_names(n: int) -> list[str]:
    """``000000.png``, ``000001.png``...: six digits, more when ``n`` needs them, so names sort."""
    digits = max(6, len(str(n - 1)))
    return [f"{i:0{digits}d}.png" for i in range(n)]


def write_individual(batches: Iterable[torch.Tensor], folder: Path, names: Sequence[str], scale: int) -> int:
    """Write each image of each batch to its own PNG as the batch arrives; return how many."""
    written = 0
    for batch in batches:
        for image in batch:
            # no fsync per file: 50,000 of them would take minutes; a rename still never
            # leaves a torn PNG behind if the run is stopped
            save_png(to_pil(image, scale=scale), folder / names[written], durable=False)
            written += 1
    return written


# ----------------------------------------------------------------------------------------
# Interpolation and walks


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line points between ``a`` and ``b`` ``(..., D)`` at fractions ``t`` ``(T,)``: ``(T, ..., D)``."""
    t = t.to(torch.float64).reshape(-1, *([1] * a.ndim))
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return ((1 - t) * a64 + t * b64).to(a.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation (White 2016, "Sampling generative networks"): ``(T, ..., D)``.

    Gaussian latents live near a sphere; a straight line between two of them passes through
    the low-norm middle, where the generator has seen few points. Slerp follows the great
    circle instead. Where ``a`` and ``b`` are (anti)parallel within ``eps`` radians the circle
    is undefined or its plane arbitrary, and the line is used. ``t = 0`` and ``t = 1`` give
    ``a`` and ``b`` exactly.
    """
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    cos = torch.nn.functional.cosine_similarity(a64, b64, dim=-1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos).unsqueeze(-1)  # (..., 1)
    sin_omega = torch.sin(omega)
    t = t.to(torch.float64).reshape(-1, *([1] * a.ndim))
    degenerate = (omega < eps) | (omega > math.pi - eps)
    safe_sin = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    spherical = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / safe_sin
    linear = (1 - t) * a64 + t * b64
    return torch.where(degenerate, linear, spherical).to(a.dtype)


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


def walk_length(points: int, steps: int, loop: bool) -> int:
    """Frames of a walk through ``points`` endpoints, ``steps`` frames per segment.

    A segment's frames start at its first endpoint and stop before the next one. Without
    ``loop`` the last endpoint closes the walk: ``steps × (points − 1) + 1`` frames. With
    ``loop`` a last segment leads back towards the start, which is not repeated (the
    animation's first frame follows): ``steps × points`` frames.
    """
    return steps * points if loop else steps * (points - 1) + 1


def walk(points: torch.Tensor, steps: int, mode: str = "slerp", loop: bool = False) -> torch.Tensor:
    """The latents of walks through ``points`` ``(R, P, D)``: ``(R, walk_length(P, steps, loop), D)``.

    Each of the R rows is one walk through its P endpoints, in order.
    """
    if mode not in INTERPOLATIONS:
        raise GanctlError(f"unknown interpolation '{mode}'; use slerp or lerp")
    if steps < 1:
        raise GanctlError(f"--steps must be at least 1, not {steps}")
    if points.shape[1] < 2:
        raise GanctlError("a walk needs at least 2 points")
    interpolate = INTERPOLATIONS[mode]
    starts = points
    ends = torch.roll(points, shifts=-1, dims=1)  # each endpoint's successor, the first after the last
    if not loop:
        starts, ends = starts[:, :-1], ends[:, :-1]
    t = torch.arange(steps, dtype=torch.float64) / steps
    segments = interpolate(starts, ends, t)  # (steps, R, segments, D)
    frames = segments.permute(1, 2, 0, 3).reshape(points.shape[0], -1, points.shape[2])
    if not loop:
        frames = torch.cat([frames, points[:, -1:]], dim=1)
    return frames


def walk_grid(frames: torch.Tensor, padding: int, scale: int) -> Image.Image:
    """uint8 ``(R, F, C, H, W)`` as one picture: one walk per row, its frames left to right."""
    return to_pil(grid(frames.flatten(0, 1), nrow=frames.shape[1], padding=padding), scale=scale)


def walk_animation(frames: torch.Tensor, padding: int, scale: int) -> list[Image.Image]:
    """uint8 ``(R, F, C, H, W)`` as F animation frames, each the R walks' images at that step, stacked."""
    return [to_pil(grid(frames[:, f], nrow=1, padding=padding), scale=scale) for f in range(frames.shape[1])]


# ----------------------------------------------------------------------------------------
# Latent arithmetic (Radford et al. 2015, section 6.3: "smiling woman − neutral woman + neutral man")

_CONCEPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*")


def parse_concept(spec: str) -> tuple[str, list[int]]:
    """``"smiling_woman=3,17,42"`` → ``("smiling_woman", [3, 17, 42])``: a name and row indices of a latent file."""
    name, sep, indices = spec.partition("=")
    name = name.strip()
    if not sep or not _CONCEPT_NAME.fullmatch(name):
        raise GanctlError(f"--concept {spec!r}: write NAME=I,J,K (a name of letters, digits and _, then latent indices)")
    try:
        rows = [int(i) for i in indices.split(",") if i.strip()]
    except ValueError:
        raise GanctlError(f"--concept {spec!r}: the indices must be whole numbers separated by commas") from None
    if not rows:
        raise GanctlError(f"--concept {spec!r}: give at least one latent index after '='")
    return name, rows


def parse_expression(expression: str, names: Iterable[str]) -> list[tuple[float, str]]:
    """``"a - b + 0.5*c"`` → ``[(1.0, "a"), (-1.0, "b"), (0.5, "c")]``; every name must be a concept."""
    known, terms, position = set(names), [], 0
    while position < len(expression):
        match = _TERM.match(expression, position)
        if match is None or match.end() == position or (terms and match.group(1) is None):
            raise GanctlError(f"--expr {expression!r}: write concepts joined by + and -, each optionally as K*name")
        sign, factor, name = match.groups()
        if name not in known:
            raise GanctlError(f"--expr names '{name}', which no --concept defines (defined: {', '.join(sorted(known))})")
        terms.append(((-1.0 if sign == "-" else 1.0) * (float(factor) if factor else 1.0), name))
        position = match.end()
    if not terms:
        raise GanctlError("--expr is empty; write e.g. 'smiling_woman - neutral_woman + neutral_man'")
    return terms


def concept_means(latents: torch.Tensor, concepts: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The mean latent of each concept's rows (the paper averages three per concept: single
    points are unstable, their average is not)."""
    n = latents.shape[0]
    for name, rows in concepts.items():
        outside = [i for i in rows if not 0 <= i < n]
        if outside:
            raise GanctlError(f"--concept {name}: index {outside[0]} is outside the latent file's {n} rows (0 to {n - 1})")
    return {name: latents[rows].to(torch.float64).mean(dim=0).to(latents.dtype) for name, rows in concepts.items()}


def combine(means: dict[str, torch.Tensor], terms: Sequence[tuple[float, str]]) -> torch.Tensor:
    """The latent of ``Σ factor × mean[name]`` over the expression's terms."""
    total = sum(factor * means[name].to(torch.float64) for factor, name in terms)
    return total.to(next(iter(means.values())).dtype)


# ----------------------------------------------------------------------------------------
# Output files: checked before any work, so a refusal costs nothing and writes nothing


def check_output_file(path: Path, force: bool) -> None:
    """Refuse an output that exists (without ``force``), is a folder, or cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise GanctlError(f"{path} is a folder; name a file")
    if path.exists() and not force:
        raise GanctlError(f"{path} already exists; pass --force to overwrite it")
    _check_can_create(path.parent)


def check_output_folder(folder: Path, names: Sequence[str], force: bool) -> None:
    """Refuse a folder that is a file, cannot be created, or (without ``force``) holds one of ``names``."""
    import os

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanctlError(f"{folder} is a file, not a folder")
    if folder.is_dir():
        taken = set(os.listdir(folder)).intersection(names)
        if taken and not force:
            raise GanctlError(
                f"{folder} already holds {len(taken):,} of the files to write (e.g. {min(taken)}); "
                "pass --force to overwrite them"
            )
    _check_can_create(folder)


def make_folder(folder: Path) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None


def _check_can_create(path: Path) -> None:
    """Files can be written in folder ``path``: it, or its nearest existing ancestor, is a writable folder."""
    import os

    ancestor = Path(path).absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GanctlError(f"cannot write under {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GanctlError(f"cannot write under {path}: the folder {ancestor} is not writable")
