"""Latent points: drawing them, and reading and writing latent files (``--z-file``, ``--save-z``).

Latents are always drawn on the CPU from a seeded ``torch.Generator`` and only then moved to
the device, so one seed names the same latent points on every machine. They are drawn all at
once (N × latent_dim floats: 20 MB for 50,000 × 100) because splitting the draw into batches
would change the numbers.

torch is imported inside the functions: the commands check file names with
``check_latent_file_name`` before torch is loaded, so a typo is reported at once.

Latents of a class-conditional generator carry their classes: a ``.safetensors`` latent file
holds tensor ``y`` (int64, one class index per latent) beside ``z``. A ``.npy`` file holds one
array, so it cannot; ``--save-z`` refuses it for a conditional generator.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ganctl.errors import GanctlError

if TYPE_CHECKING:
    import torch

LATENT_FILE_SUFFIXES = (".npy", ".safetensors")


def check_latent_file_name(path: Path) -> None:
    """Refuse a latent file name ganctl cannot read or write."""
    if Path(path).suffix.lower() not in LATENT_FILE_SUFFIXES:
        raise GanctlError(f"{path}: latent files are .npy or .safetensors")


def fresh_seed() -> int:
    """A seed for when the user gave none; it is reported so the run can be repeated."""
    return secrets.randbelow(2**31)


def random_latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latents on the CPU, the same for a seed on every machine."""
    import torch

    rng = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, latent_dim, generator=rng)


def constant_latents(n: int, latent_dim: int, value: float) -> torch.Tensor:
    """``n`` copies of the point whose every entry is ``value``."""
    import torch

    return torch.full((n, latent_dim), float(value))


def read_latents(path: Path, latent_dim: int) -> torch.Tensor:
    """Latents from ``.npy`` or ``.safetensors`` as float32 ``(N, latent_dim)``; never unpickles."""
    import torch

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
    import math
    import os

    import numpy as np
    from numpy.lib import format as npy

    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # numpy would take any other bytes for a pickle
            raise GanctlError(f"{path} is not a readable .npy file (no .npy header)")
        try:
            # the header first: its shape must fit in the file before anything is allocated
            f.seek(0)
            version = npy.read_magic(f)
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = reader(f)
            if dtype.hasobject:
                raise GanctlError(f"{path} holds Python objects (a pickled array); save plain numbers instead")
            if math.prod(shape) * dtype.itemsize > os.fstat(f.fileno()).st_size - f.tell():
                raise GanctlError(f"{path} is not a readable .npy file: it is shorter than its header says (truncated?)")
        except GanctlError:
            raise
        except Exception as exc:  # numpy parses the header with Python's tokenizer: any error is a damaged file
            raise GanctlError(f"{path} is not a readable .npy file: {_first_line(exc)}") from None
    try:
        return np.load(path, allow_pickle=False)  # a pickled array could run code: refused
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise GanctlError(f"{path} holds Python objects (a pickled array); save plain numbers instead") from None
        raise GanctlError(f"{path} is not a readable .npy file: {_first_line(exc)}") from None
    except Exception as exc:  # OSError, EOFError, and whatever else a damaged file makes numpy raise
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


def read_latent_labels(path: Path, num_classes: int) -> torch.Tensor | None:
    """The classes stored beside the latents of a ``.safetensors`` file (tensor ``y``, one per
    latent of ``z``); None when there are none."""
    import torch
    from safetensors import SafetensorError, safe_open

    if Path(path).suffix.lower() != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            if "y" not in f.keys() or "z" not in f.keys():
                return None
            y, n = f.get_tensor("y"), f.get_slice("z").get_shape()[:1]
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise GanctlError(f"{path} is not a readable safetensors file: {_first_line(exc)}") from None
    if y.dtype.kind not in "iu" or y.shape != tuple(n):
        raise GanctlError(f"{path} holds classes 'y' of shape {tuple(y.shape)} ({y.dtype}); it needs whole numbers, one per latent")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise GanctlError(f"{path} holds class {int(y.max() if y.max() >= num_classes else y.min())}; this generator's classes run from 0 to {num_classes - 1}")
    return torch.from_numpy(y.astype("int64"))


def check_labels_can_be_saved(path: Path, conditional: bool) -> None:
    """``--save-z`` of a conditional generator's latents: only ``.safetensors`` keeps their classes."""
    if conditional and Path(path).suffix.lower() == ".npy":
        raise GanctlError(f"--save-z {path}: a .npy file cannot hold the images' classes; name a .safetensors file")


def save_latents(path: Path, z: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """Write latents as ``.npy`` or as ``.safetensors`` (tensor ``z``, and ``y`` the classes when
    given), for ``--z-file`` later."""
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
        tensors = {"z": array}
        if labels is not None:
            tensors["y"] = labels.detach().cpu().long().numpy()
        data = save(tensors)
    atomic_write_bytes(Path(path), data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
