"""Built-in datasets: CIFAR-10, MNIST, Fashion-MNIST (torchvision's files) and synthetic shapes.

Each loader returns uint8 ``(N, H, W, C)`` at the dataset's own size; ``ganctl.data`` does the
resizing and channel mapping. The files are read by ganctl itself: IDX with NumPy, and the
CIFAR-10 pickles with an unpickler that can only build NumPy arrays, so a file someone hands
you cannot run code. torchvision is used only to download, when the network allows.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np

from ganctl import GanctlError, register_dataset
from ganctl.data import DatasetRequest, downloads_allowed

# ----------------------------------------------------------------------------------------
# CIFAR-10 (the "python version": pickled dicts of uint8 arrays)

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays; refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks to import {module}.{name}")


def read_cifar_batch(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are CHW -> NHWC
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise GanctlError(f"{path} is not a CIFAR-10 batch: {exc}") from None


def _find(root: Path, sub: str, names: list[str]) -> Path | None:
    """The folder holding all ``names``: ``root/sub`` (torchvision's layout) or ``root``."""
    for folder in (root / sub, root):
        if all(any((folder / (n + ext)).is_file() for ext in ("", ".gz")) for n in names):
            return folder
    return None


def _download(request: DatasetRequest, dataset_class: str) -> str:
    """Try torchvision's downloader; return why it failed ('' on success)."""
    if not downloads_allowed(request.download):
        return "downloads are off"
    try:
        import torchvision.datasets as tvd

        getattr(tvd, dataset_class)(str(request.root), train=request.split == "train", download=True)
        return ""
    except Exception as exc:  # offline, a proxy, a full disk: all reported the same way
        return f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


@register_dataset("cifar10", description="CIFAR-10: 50,000 train / 10,000 test colour images, 32x32")
def cifar10(request: DatasetRequest) -> np.ndarray:
    names = CIFAR_TRAIN if request.split == "train" else CIFAR_TEST
    folder = _find(request.root, "cifar-10-batches-py", names)
    why = ""
    if folder is None:
        why = _download(request, "CIFAR10")
        folder = _find(request.root, "cifar-10-batches-py", names)
    if folder is None:
        raise GanctlError(
            f"CIFAR-10 not found: put {', '.join(names)} (the python version) in "
            f"{request.root / 'cifar-10-batches-py'} ({why})"
        )
    return np.concatenate([read_cifar_batch(folder / n) for n in names])


# ----------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files, gzipped or not)

IDX_UBYTE_3D = 0x00000803


def read_idx_images(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise GanctlError(f"{path} is not a readable gzip file: {exc}") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != IDX_UBYTE_3D:
        raise GanctlError(f"{path} is not an IDX image file (wrong magic number)")
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * rows * cols:
        raise GanctlError(f"{path} is truncated: its header promises {n} images of {rows}x{cols}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols, 1).copy()  # writable


def _idx_dataset(request: DatasetRequest, folder_name: str, dataset_class: str, title: str) -> np.ndarray:
    stem = "train-images-idx3-ubyte" if request.split == "train" else "t10k-images-idx3-ubyte"
    sub = f"{folder_name}/raw"
    folder = _find(request.root, sub, [stem])
    why = ""
    if folder is None:
        why = _download(request, dataset_class)
        folder = _find(request.root, sub, [stem])
    if folder is None:
        raise GanctlError(f"{title} not found: put {stem}.gz (or {stem}) in {request.root / sub} ({why})")
    path = folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"
    return read_idx_images(path)


@register_dataset("mnist", description="MNIST handwritten digits: 60,000 train / 10,000 test, 28x28 grayscale")
def mnist(request: DatasetRequest) -> np.ndarray:
    return _idx_dataset(request, "MNIST", "MNIST", "MNIST")


@register_dataset("fashion-mnist", description="Fashion-MNIST clothing: 60,000 train / 10,000 test, 28x28 grayscale")
def fashion_mnist(request: DatasetRequest) -> np.ndarray:
    return _idx_dataset(request, "FashionMNIST", "FashionMNIST", "Fashion-MNIST")


# ----------------------------------------------------------------------------------------
# Synthetic shapes: no download, learnable in a few CPU minutes

PALETTE = np.array(
    [[230, 60, 50], [250, 200, 40], [60, 190, 90], [50, 130, 230], [170, 80, 220], [240, 240, 240]], dtype=np.float32
)
SYNTHETIC_SIZES = {"train": 10_000, "test": 2_000}


@register_dataset("synthetic", description="procedural coloured circles, squares and triangles; no download")
def synthetic(request: DatasetRequest) -> np.ndarray:
    seed = {"train": 0, "test": 1}[request.split]
    return draw_shapes(SYNTHETIC_SIZES[request.split], request.image_size, seed)


def draw_shapes(n: int, size: int, seed: int, shapes_per_image: int = 2) -> np.ndarray:
    """``n`` RGB images: a dark background and antialiased shapes in a few bright colours."""
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1]
    yy, xx = coords[None, :, None], coords[None, None, :]
    images = np.broadcast_to(rng.uniform(10, 60, (n, 1, 1, 1)).astype(np.float32), (n, size, size, 3)).copy()
    for _ in range(shapes_per_image):
        kind = rng.integers(0, 3, n)[:, None, None]
        r = rng.uniform(0.12, 0.25, n).astype(np.float32)[:, None, None]
        cx = rng.uniform(0.25, 0.75, n).astype(np.float32)[:, None, None]
        cy = rng.uniform(0.25, 0.75, n).astype(np.float32)[:, None, None]
        dx, dy = np.abs(xx - cx), yy - cy
        # signed distance to each shape's edge (positive inside), in pixels, for soft edges
        circle = r - np.sqrt(dx**2 + dy**2)
        square = 0.85 * r - np.maximum(dx, np.abs(dy))
        triangle = np.minimum(r - dy, ((dy + r) * 0.5 - dx) / 1.118)  # apex up, base 2r wide
        inside = np.where(kind == 0, circle, np.where(kind == 1, square, triangle)) * size
        alpha = np.clip(inside + 0.5, 0, 1)[..., None]
        colour = PALETTE[rng.integers(0, len(PALETTE), n)][:, None, None, :]
        images = images * (1 - alpha) + colour * alpha
    return images.round().astype(np.uint8)
