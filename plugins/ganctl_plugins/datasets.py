"""Built-in datasets: CIFAR-10, MNIST, Fashion-MNIST (torchvision's files) and synthetic shapes.

Each loader returns uint8 ``(N, H, W, C)`` at the dataset's own size, with its labels
(``LabelledImages``; MNIST-like data only when the label file is there too); ``ganctl.data``
does the resizing and channel mapping. ganctl reads the files itself: IDX with NumPy, and the CIFAR-10
pickles with an unpickler that can only build NumPy arrays, so a file someone hands you cannot
run code. torchvision is used only to download, when allowed and the network is there.
"""

from __future__ import annotations

import functools

import gzip
import pickle
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ganctl import GanctlError, register_dataset
from ganctl.conditional import LabelledImages
from ganctl.data import LUMA_WEIGHTS, DatasetRequest

DOWNLOAD_TIMEOUT_S = 60  # per socket operation, so a dead network fails instead of hanging

# ----------------------------------------------------------------------------------------
# Finding files, downloading the missing ones


def find_folder(root: Path, subfolder: str, names: Sequence[str]) -> Path | None:
    """The folder holding every file in ``names``: ``root/subfolder`` (torchvision's layout) or ``root``.

    A name ending in ``.gz`` is also found uncompressed (torchvision keeps both).
    """
    for folder in (root / subfolder, root):
        if all(_existing(folder, name) for name in names):
            return folder
    return None


def _existing(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its uncompressed twin for a ``.gz`` name; None when neither exists."""
    candidates = [folder / name.removesuffix(".gz"), folder / name] if name.endswith(".gz") else [folder / name]
    return next((path for path in candidates if path.is_file()), None)


def try_download(request: DatasetRequest, fetch: Callable[[Path], object]) -> str:
    """Run ``fetch(root)`` if downloads are allowed; return why nothing was downloaded ('' if it was)."""
    if not request.download:
        return "downloading is off: --no-download or GANCTL_OFFLINE=1"
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(previous_timeout or DOWNLOAD_TIMEOUT_S)
    try:
        request.root.mkdir(parents=True, exist_ok=True)
        fetch(request.root)
        return ""
    except Exception as exc:  # offline, a proxy, a full disk, a bad checksum: all reported alike
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[-1][:200] if lines else type(exc).__name__  # torchvision puts the cause last
        return f"download failed: {reason}"
    finally:
        socket.setdefaulttimeout(previous_timeout)


COMPRESSED_SUFFIXES = (".xz", ".gz", ".bz2", ".zip")


def locate(
    request: DatasetRequest,
    title: str,
    subfolder: str,
    names: Sequence[str],
    fetch: Callable[[Path], object],
    files: str,
    archive: str = "",
) -> Path:
    """The folder holding ``names``, downloading them if missing and allowed; else a GanctlError.

    ``files`` says in words what to put there, for the error. ``archive``: the name of the
    .tar.gz archive the files come in; found in the data folder, it is unpacked there first.
    """
    folder = find_folder(request.root, subfolder, names)
    if folder is None and archive:
        folder = _unpack_archive(request.root, subfolder, names, archive)
    if folder is None:
        _refuse_compressed(request.root, subfolder, names)
        why = try_download(request, fetch) or "the download left no files"
        folder = find_folder(request.root, subfolder, names)
        if folder is None:
            where = f"{request.root / subfolder} (or directly in {request.root})"
            source = f", e.g. by unpacking {archive} there (tar -xzf {archive})" if archive else ""
            raise GanctlError(f"{title} not found: put {files} in {where}{source} ({why})")
    return folder


def _unpack_archive(root: Path, subfolder: str, names: Sequence[str], archive: str) -> Path | None:
    """Unpack ``archive`` found in ``root`` or ``root/subfolder`` into the folder it is in; the
    folder holding ``names`` afterwards, or None when there is no such archive."""
    import tarfile

    for folder in (root, root / subfolder):
        path = folder / archive
        if not path.is_file():
            continue
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.extractall(folder, filter="data")  # no absolute paths, links out or devices
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise GanctlError(f"{path} could not be unpacked ({exc}); download it again or unpack it yourself") from None
        return find_folder(root, subfolder, names) or find_folder(folder, subfolder, names)
    return None


def _refuse_compressed(root: Path, subfolder: str, names: Sequence[str]) -> None:
    """Files present only compressed in a way ganctl does not read: say how to decompress them."""
    for folder in (root / subfolder, root):
        found = [
            folder / (name.removesuffix(".gz") + suffix)
            for name in names
            for suffix in COMPRESSED_SUFFIXES
            if not (name.endswith(".gz") and suffix == ".gz")  # a .gz IDX file is read as it is
            and (folder / (name.removesuffix(".gz") + suffix)).is_file()
        ]
        if found:
            tools = {".xz": "xz -d", ".gz": "gunzip", ".bz2": "bunzip2", ".zip": "unzip"}
            how = " / ".join(sorted({f"`{tools[p.suffix]} FILE`" for p in found}))
            raise GanctlError(
                f"{folder} holds {found[0].name}{' and more' if len(found) > 1 else ''} compressed, which ganctl "
                f"does not read; decompress them in that folder ({how}) and run again"
            )


# ----------------------------------------------------------------------------------------
# CIFAR-10 (the "python version": Python 2 pickles of dicts holding a uint8 array)

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"  # "CIFAR-10 python version" on the CIFAR-10 page (Toronto)
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Python 3 writes bytes into protocol-2 pickles as ``_codecs.encode(text, 'latin1')``."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"it asks to encode with {encoding!r}")
    return text.encode("latin1")


def _numpy_reconstruct() -> Callable[..., np.ndarray]:
    try:  # NumPy >= 2 moved the implementation to numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays; refuses to import anything else.

    Importing is how a pickle runs code (``os.system`` and friends), so the few globals the
    CIFAR-10 files need are mapped to fixed objects and every other one is an error.
    """

    ALLOWED: dict[tuple[str, str], Callable[[], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,  # files pickled by NumPy 1
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,  # files pickled by NumPy 2
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to import {module}.{name}")
        return self.ALLOWED[module, name]()


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_cifar_batch(path: Path) -> np.ndarray:
    """One CIFAR-10 batch file as uint8 NHWC ``(N, 32, 32, 3)``."""
    return read_cifar_labelled(path)[0]


def read_cifar_labelled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: uint8 NHWC images and their int64 labels (0..9)."""
    try:
        with open(path, "rb") as file:
            batch = ArraysOnlyUnpickler(file, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise GanctlError(f"{path} is not a CIFAR-10 batch: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise GanctlError(f"{path} is not a CIFAR-10 batch: {type(exc).__name__}: {exc}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise GanctlError(f"{path} is not a CIFAR-10 batch: it has no uint8 b'data' array (N, 3072)")
    try:
        labels = np.asarray(batch.get(b"labels"), dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.empty(0)
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(CIFAR_CLASSES):
        raise GanctlError(f"{path} is not a CIFAR-10 batch: it has no b'labels' list of 0..9, one per image")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # each row is planes R, G, B -> NHWC


def _download_cifar10(root: Path) -> None:
    # The archive's own downloader, not CIFAR10(...): that would also unpickle the files plainly.
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)


@register_dataset("cifar10", description="CIFAR-10: 50,000 train / 10,000 test colour images, 32x32", class_names=CIFAR_CLASSES)
def cifar10(request: DatasetRequest) -> LabelledImages:
    names = CIFAR_FILES[request.split]
    files = "data_batch_1 … data_batch_5 and test_batch (the python version)"
    folder = locate(request, "CIFAR-10", CIFAR_FOLDER, names, _download_cifar10, files, archive=CIFAR_ARCHIVE)
    batches = [read_cifar_labelled(folder / name) for name in names]
    return LabelledImages(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]), CIFAR_CLASSES)


# ----------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files, gzipped or not)

IDX_UBYTE_3D = b"\x00\x00\x08\x03"  # magic 0x00000803: unsigned bytes, three dimensions
IDX_UBYTE_1D = b"\x00\x00\x08\x01"  # labels: unsigned bytes, one dimension
IDX_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}
IDX_LABEL_FILES = {"train": "train-labels-idx1-ubyte.gz", "test": "t10k-labels-idx1-ubyte.gz"}
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _idx_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # by content, not name: some tools unpack and keep the suffix
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise GanctlError(f"{path} is a damaged gzip file: {exc}") from None
    return raw


def read_idx_labels(path: Path, classes: int) -> np.ndarray:
    """An IDX label file (gzipped or not) as int64 ``(N,)``, each below ``classes``."""
    raw = _idx_bytes(path)
    if raw[:4] != IDX_UBYTE_1D:
        raise GanctlError(f"{path} is not an IDX label file: its magic number is {raw[:4].hex() or 'missing'}, not 00000801")
    n = int(np.frombuffer(raw[4:8].ljust(4, b"\0"), dtype=">u4")[0])
    if len(raw) != 8 + n:
        raise GanctlError(f"{path} is truncated or damaged: its header says {n} labels, it has {len(raw)} bytes")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)
    if labels.size and labels.max() >= classes:
        raise GanctlError(f"{path} holds label {labels.max()}; labels run from 0 to {classes - 1}")
    return labels


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX image file (gzipped when it starts like gzip) as uint8 ``(N, rows, cols, 1)``."""
    raw = _idx_bytes(path)
    if raw[:4] != IDX_UBYTE_3D:
        magic = raw[:4].hex() or "missing"
        raise GanctlError(f"{path} is not an IDX image file: its magic number is {magic}, not 00000803")
    header = raw[4:16].ljust(12, b"\0")  # a short file reads as zero sizes and fails below
    n, rows, cols = (int(d) for d in np.frombuffer(header, dtype=">u4"))  # big-endian sizes
    if n == 0 or len(raw) != 16 + n * rows * cols:
        says = f"its header says {n} images of {rows}x{cols}, it has {len(raw)} bytes"
        raise GanctlError(f"{path} is truncated or damaged: {says}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols, 1)


def _idx_dataset(request: DatasetRequest, title: str, torchvision_name: str, classes: tuple[str, ...]) -> LabelledImages | np.ndarray:
    """MNIST-like data in ``root/<torchvision_name>/raw`` or ``root``; labelled when the label file lies beside the images."""
    name = IDX_FILES[request.split]

    def fetch(root: Path) -> None:  # torchvision reads IDX files itself: no pickle involved
        import torchvision.datasets

        getattr(torchvision.datasets, torchvision_name)(str(root), train=request.split == "train", download=True)

    files = f"{name} (or {name.removesuffix('.gz')}; the {title} \"training set images\" file, gzipped as downloaded)"
    folder = locate(request, title, f"{torchvision_name}/raw", [name], fetch, files)
    images = read_idx_images(_existing(folder, name))
    label_file = _existing(folder, IDX_LABEL_FILES[request.split])
    if label_file is None:
        return images  # the images alone: fine for unconditional training
    labels = read_idx_labels(label_file, len(classes))
    if len(labels) != len(images):
        raise GanctlError(f"{label_file} holds {len(labels):,} labels for {len(images):,} images in {folder}")
    return LabelledImages(images, labels, classes)


@register_dataset("mnist", description="MNIST handwritten digits: 60,000 train / 10,000 test, 28x28 gray", class_names=MNIST_CLASSES)
def mnist(request: DatasetRequest) -> LabelledImages | np.ndarray:
    return _idx_dataset(request, "MNIST", "MNIST", MNIST_CLASSES)


@register_dataset("fashion-mnist", description="Fashion-MNIST clothing: 60,000 train / 10,000 test, 28x28 gray", class_names=FASHION_CLASSES)
def fashion_mnist(request: DatasetRequest) -> LabelledImages | np.ndarray:
    return _idx_dataset(request, "Fashion-MNIST", "FashionMNIST", FASHION_CLASSES)


# ----------------------------------------------------------------------------------------
# Synthetic shapes: no download, and a GAN visibly learns them in a few CPU minutes

SYNTHETIC_SIZES = {"train": 10_000, "test": 2_000}
SYNTHETIC_SEEDS = {"train": 1234, "test": 5678}
# Saturated colours, all bright against the dark backgrounds (also as gray: luma 84 to 203).
PALETTE = np.array(
    [[220, 40, 40], [245, 140, 20], [245, 215, 30], [40, 180, 70], [20, 180, 210], [40, 80, 220], [200, 50, 190]],
    dtype=np.float32,
)
MAX_SHAPES = 3
DRAW_CHUNK = 1000  # images drawn at a time: bounded memory at large sizes


SHAPES = ("circle", "square", "triangle")  # the kinds, in the order of _draw_scene_parameters' "kind"
LABEL_SIZE = 32  # px at which the dominant shape is measured: labels do not depend on the image size


@register_dataset("synthetic", description="procedural circles, squares and triangles in bright colours; no download", class_names=SHAPES)
def synthetic(request: DatasetRequest) -> LabelledImages:
    images, labels = _synthetic(request.split, request.image_size, request.channels)
    return LabelledImages(images.copy(), labels.copy(), SHAPES)  # copies: the cached arrays stay as drawn


@functools.lru_cache(maxsize=4)
def _synthetic(split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The split's scenes, drawn once per process and size (drawing 10,000 takes seconds)."""
    n, seed = SYNTHETIC_SIZES[split], SYNTHETIC_SEEDS[split]
    return draw_shapes(n, size, channels, seed=seed), dominant_shapes(n, seed=seed)


def dominant_shapes(n: int, *, seed: int) -> np.ndarray:
    """Each scene's label: the kind of shape (circle, square, triangle) covering most of the
    image once the later shapes are painted over the earlier ones."""
    scenes = _draw_scene_parameters(n, np.random.default_rng(seed))
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, DRAW_CHUNK):
        part = {key: value[start : start + DRAW_CHUNK] for key, value in scenes.items()}
        visible = _visible_areas(part, LABEL_SIZE)  # (n, slots)
        per_kind = np.stack([(visible * (part["kind"] == k)).sum(axis=1) for k in range(len(SHAPES))], axis=1)
        labels[start : start + DRAW_CHUNK] = per_kind.argmax(axis=1)
    return labels


@register_dataset(
    "synthetic-50k", description="the synthetic shapes repeated to CIFAR-10's 50,000/10,000 images: full-length timing runs",
    class_names=SHAPES,
)
def synthetic_50k(request: DatasetRequest) -> LabelledImages:
    # a step's speed does not depend on the pictures; an epoch's length does
    shapes = synthetic(request)
    return LabelledImages(np.tile(shapes.images, (5, 1, 1, 1)), np.tile(shapes.labels, 5), SHAPES)


def draw_shapes(n: int, size: int, channels: int = 3, *, seed: int) -> np.ndarray:
    """``n`` images of 1-3 antialiased shapes on a plain dark background, uint8 NHWC.

    Only dark backgrounds: with light ones too, real images average the same gray as an
    untrained generator's, and the discriminator took far longer to find anything to learn.

    The scenes depend only on ``seed`` and ``n``, not on ``size``: every size draws the same ones.
    """
    scenes = _draw_scene_parameters(n, np.random.default_rng(seed))
    out = np.empty((n, size, size, channels), dtype=np.uint8)
    for start in range(0, n, DRAW_CHUNK):
        part = {key: value[start : start + DRAW_CHUNK] for key, value in scenes.items()}
        rgb = _render(part, size)
        if channels == 1:
            rgb = rgb @ np.array(LUMA_WEIGHTS, dtype=np.float32)[:, None]
        out[start : start + DRAW_CHUNK] = rgb.round().clip(0, 255)
    return out


def _draw_scene_parameters(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per image: background colour; per image and shape slot: presence, kind, place, size, colour."""
    level = rng.uniform(8, 45, (n, 1))
    background = (level + rng.uniform(-8, 8, (n, 3))).astype(np.float32)  # dark, slightly tinted
    count = rng.integers(1, MAX_SHAPES + 1, n)
    slots = (n, MAX_SHAPES)
    radius = rng.uniform(0.12, 0.26, slots)
    margin = 1.1 * radius  # the triangle's apex reaches 1.1 r above its centre
    return {
        "background": background,
        "present": np.arange(MAX_SHAPES) < count[:, None],
        "kind": rng.integers(0, 3, slots),  # circle, square, triangle
        "radius": radius.astype(np.float32),
        "cx": (margin + rng.random(slots) * (1 - 2 * margin)).astype(np.float32),
        "cy": (margin + rng.random(slots) * (1 - 2 * margin)).astype(np.float32),
        "colour": rng.integers(0, len(PALETTE), slots),
    }


def _coverage(scenes: dict[str, np.ndarray], slot: int, size: int) -> np.ndarray:
    """How much of each pixel the shape in ``slot`` covers, ``(n, size, size)`` in [0, 1]."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs, ys = centres[None, None, :], centres[None, :, None]  # broadcast to (n, size, size)

    def col(key: str) -> np.ndarray:  # this slot's values, shaped (n, 1, 1) to broadcast
        return scenes[key][:, slot, None, None]

    r, kind = col("radius"), col("kind")
    dx, dy = np.abs(xs - col("cx")), ys - col("cy")  # (n, 1, size) and (n, size, 1)
    # Signed distance to the edge (positive outside), in units of the image side.
    circle = np.sqrt(dx * dx + dy * dy) - r
    square = np.maximum(dx, np.abs(dy)) - 0.85 * r
    triangle = np.maximum(dy, 0.866 * dx - 0.5 * dy) - 0.55 * r  # equilateral, apex up, inradius 0.55 r
    distance = np.where(kind == 0, circle, np.where(kind == 1, square, triangle))
    return np.clip(0.5 - distance * size, 0, 1) * col("present")  # one-pixel soft edge: antialiasing


def _render(scenes: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Float RGB ``(n, size, size, 3)`` of the scenes, shapes painted in slot order."""
    n = len(scenes["background"])
    image = np.broadcast_to(scenes["background"][:, None, None, :], (n, size, size, 3)).copy()
    for slot in range(MAX_SHAPES):
        colour = PALETTE[scenes["colour"][:, slot]][:, None, None, :]
        image += _coverage(scenes, slot, size)[..., None] * (colour - image)
    return image


def _visible_areas(scenes: dict[str, np.ndarray], size: int) -> np.ndarray:
    """The area of each slot's shape still visible in the finished picture, ``(n, slots)``."""
    coverages = [_coverage(scenes, slot, size) for slot in range(MAX_SHAPES)]
    visible = []
    for slot, coverage in enumerate(coverages):
        for later in coverages[slot + 1 :]:  # painted over by the shapes drawn after it
            coverage = coverage * (1 - later)
        visible.append(coverage.sum(axis=(1, 2)))
    return np.stack(visible, axis=1)
