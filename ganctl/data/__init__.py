"""Loading training images: registered datasets and image folders, as one uint8 tensor.

A dataset is registered with ``@register_dataset(name, description=...)`` on a function
``load(request: DatasetRequest) -> numpy.ndarray`` that returns uint8 NHWC images at the
dataset's native size (C is 1 or 3). ``load_images`` turns that into the tensor the trainer
wants: NCHW, at the architecture's size and channel count.

Besides registered names, ``folder:PATH`` loads every image file under PATH.

Labels: a loader may return ``ganctl.conditional.LabelledImages`` (images, labels, class
names) instead; a ``folder:PATH`` whose images all sit in subfolders (``PATH/cat/*.png``, as
torchvision's ``ImageFolder``) is labelled by subfolder. ``load_labelled`` gives them with
the images; ``load_images`` gives the images alone.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganctl.conditional import split_loader_output
from ganctl.environment import cache_home, offline
from ganctl.errors import GanctlError
from ganctl.recipe import Fit
from ganctl.registry import DATASETS

ENV_DATA_DIR = "GANCTL_DATA_DIR"
SPLITS = ("train", "test")
FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601
CHUNK = 2048  # images converted at a time, so that float copies stay small

Log = Callable[[str], None]
SHOWN_SKIPPED = 5  # unreadable files named one by one before "and N more"


@dataclass(frozen=True)
class DatasetRequest:
    """What a dataset loader is asked for."""

    root: Path  # folder where files are looked for (the --data-dir)
    split: str  # "train" or "test"
    download: bool  # may the loader try to download missing files
    image_size: int  # the architecture's size (a hint; synthetic draws at this size)
    channels: int  # 1 or 3 (a hint)


def default_data_dir() -> Path:
    """$GANCTL_DATA_DIR, else $XDG_CACHE_HOME/ganctl/data, else ~/.cache/ganctl/data."""
    if explicit := os.environ.get(ENV_DATA_DIR):
        return Path(explicit).expanduser()
    return cache_home() / "data"


def dataset_names() -> list[str]:
    """The registered dataset names, sorted (``folder:PATH`` is not among them)."""
    return DATASETS.names()


@dataclass(frozen=True)
class LoadedImages:
    """What ``load_labelled`` gives: the images, and their labels when the dataset has them."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor | None = None  # int64 (N,), or None: unlabelled
    class_names: tuple[str, ...] = ()


def load_images(dataset: str, **options) -> torch.Tensor:
    """Images as a contiguous uint8 CPU tensor ``(N, channels, image_size, image_size)``
    (``load_labelled``'s images; its options)."""
    return load_labelled(dataset, **options).images


def load_labelled(
    dataset: str,
    *,
    data_dir: Path | None,
    split: str = "train",
    image_size: int,
    channels: int,
    download: bool = True,
    limit: int | None = None,
    log: Log | None = None,
    fit: Fit = "crop",
    describe: bool = False,
) -> LoadedImages:
    """Images as a contiguous uint8 CPU tensor ``(N, channels, image_size, image_size)``, with labels if any.

    ``dataset`` is a registered name or ``folder:PATH``. Images whose native size differs
    are resized (antialiased bilinear); gray becomes RGB by repetition and RGB becomes gray
    by BT.601 luma. ``limit`` keeps the first N images; ``log`` receives notes for the user
    (for a folder: the files skipped, and with ``describe`` what was found, resized and fitted,
    as training says before it starts). ``fit``: how a folder's
    non-square images become square (``crop`` the centre, ``pad`` with black, ``stretch``).
    Missing files may be downloaded when ``download`` is true and $GANCTL_OFFLINE is not set.
    """
    _check_request(split, image_size, channels, limit)
    if dataset.startswith(FOLDER_PREFIX):
        path = Path(dataset[len(FOLDER_PREFIX) :]).expanduser()
        images, labels, names = load_folder_labelled(path, image_size, channels, limit=limit, log=log, fit=fit, describe=describe)
    else:
        images, labels, names = _load_native_labelled(dataset, data_dir, split, download, image_size, channels)
        images = convert(images[:limit], image_size, channels)
        labels = None if labels is None else labels[:limit]
    return LoadedImages(torch.from_numpy(images), None if labels is None else torch.from_numpy(labels), names)


def native_format(dataset: str, *, data_dir: Path | None, split: str = "train", download: bool = True) -> tuple[int, int]:
    """``(size, channels)`` a registered dataset's images come in (size: the shorter side)."""
    images = _load_native(dataset, data_dir, split, download, image_size=32, channels=3)  # size, channels: hints only
    return min(images.shape[1:3]), images.shape[3]


def _load_native(dataset: str, data_dir: Path | None, split: str, download: bool, image_size: int, channels: int) -> np.ndarray:
    """A registered dataset's loader, asked and checked: uint8 NHWC at its native size."""
    return _load_native_labelled(dataset, data_dir, split, download, image_size, channels)[0]


def _load_native_labelled(
    dataset: str, data_dir: Path | None, split: str, download: bool, image_size: int, channels: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """``_load_native`` with the loader's labels and class names (None and () when it has none)."""
    loader = DATASETS.get(dataset).obj
    request = DatasetRequest(
        root=Path(data_dir).expanduser() if data_dir is not None else default_data_dir(),
        split=split,
        download=download and not offline(),
        image_size=image_size,
        channels=channels,
    )
    images, labels, names = split_loader_output(loader(request))
    _check_loader_output(dataset, images)
    return images, labels, names


def image_source(value: str) -> str:
    """``folder:PATH`` and registered names as they are; an existing folder becomes ``folder:PATH``."""
    if value.startswith(FOLDER_PREFIX) or value in DATASETS or not Path(value).expanduser().is_dir():
        return value
    return f"{FOLDER_PREFIX}{value}"


def _check_request(split: str, image_size: int, channels: int, limit: int | None) -> None:
    if split not in SPLITS:
        raise GanctlError(f"unknown split '{split}'; use 'train' or 'test'")
    if image_size < 1:
        raise GanctlError(f"the image size must be at least 1 px, not {image_size}")
    if channels not in (1, 3):
        raise GanctlError(f"images can have 1 or 3 channels, not {channels}")
    if limit is not None and limit < 1:
        raise GanctlError(f"the image limit must be at least 1, not {limit}")


def _check_loader_output(dataset: str, images: object) -> None:
    """A plugin's loader must keep the contract; say so plainly when it does not."""
    if not isinstance(images, np.ndarray):
        raise GanctlError(f"dataset '{dataset}' gave a {type(images).__name__}, not a NumPy array")
    if images.dtype != np.uint8 or images.ndim != 4:
        what = f"{images.dtype} array of shape {images.shape}"
        raise GanctlError(f"dataset '{dataset}' gave a {what}, not uint8 images (N, H, W, C)")
    if images.shape[-1] not in (1, 3):
        channels = images.shape[-1]
        raise GanctlError(f"dataset '{dataset}' gave images with {channels} channels; 1 or 3 are supported")
    if len(images) == 0:
        raise GanctlError(f"dataset '{dataset}' has no images")


# ----------------------------------------------------------------------------------------
# Conversion of NHWC uint8 arrays


def convert(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """uint8 NHWC at any size and 1 or 3 channels -> contiguous uint8 NCHW as asked."""
    n, height, width, native_channels = images.shape
    if native_channels not in (1, 3) or channels not in (1, 3):
        raise GanctlError(f"cannot map images with {native_channels} channels to {channels}")
    out = np.empty((n, channels, image_size, image_size), dtype=np.uint8)
    same_size = height == width == image_size
    for start in range(0, n, CHUNK):
        chunk = images[start : start + CHUNK]
        if same_size and native_channels == channels:
            out[start : start + CHUNK] = chunk.transpose(0, 3, 1, 2)
            continue
        x = chunk.astype(np.float32)
        if native_channels == 3 and channels == 1:  # before resizing: a third of the work
            x = x @ np.array(LUMA_WEIGHTS, dtype=np.float32)[:, None]
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        if not same_size:
            t = resize(t, image_size)
        # 1 -> 3 repeats the gray plane; the assignment broadcasts it.
        out[start : start + CHUNK] = t.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float NCHW -> size x size: shorter side to ``size`` (antialiased bilinear), centre crop."""
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return images[..., top : top + size, left : left + size]


# ----------------------------------------------------------------------------------------
# folder:PATH


def load_folder(
    path: Path, image_size: int, channels: int, *, limit: int | None = None, log: Log | None = None
) -> np.ndarray:
    """Every image under ``path`` (recursively, sorted), as uint8 NCHW squares.

    Each image is converted to RGB or gray, scaled so its shorter side is ``image_size`` and
    centre-cropped. Unreadable files are skipped and counted.
    """
    return load_folder_labelled(path, image_size, channels, limit=limit, log=log)[0]


def load_folder_labelled(
    path: Path, image_size: int, channels: int, *, limit: int | None = None, log: Log | None = None, fit: Fit = "crop",
    describe: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """``load_folder``, with each image's subfolder as its label when every image sits in one
    (``ImageFolder``'s layout: classes are the subfolders' names, sorted); else no labels."""
    if not path.exists():
        raise GanctlError(f"folder {path} does not exist")
    if not path.is_dir():
        raise GanctlError(f"{path} is a file, not a folder of images")
    files = image_files(path)
    class_of = folder_classes(path, files)
    names = tuple(sorted(set(class_of.values())))
    images: list[np.ndarray] = []
    labels: list[int] = []
    reading = FolderReading(image_size, fit)
    for file in files:
        if limit is not None and len(images) >= limit:
            break
        image = reading.read(file, "L" if channels == 1 else "RGB")
        if image is None:
            continue
        images.append(image)
        if class_of:
            labels.append(names.index(class_of[file]))
    if log:
        counts = np.bincount(labels, minlength=len(names)) if class_of else ()
        for line in reading.report(path, len(images), dict(zip(names, (int(c) for c in counts))), describe):
            log(line)
    if not images:
        looked_for = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        why = f"{len(files)} image file(s) could not be read" if files else f"looked for {looked_for}"
        raise GanctlError(f"no readable images in {path} ({why})")
    stacked = np.stack(images)
    nchw = np.ascontiguousarray(stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2))
    return nchw, (np.array(labels, dtype=np.int64) if class_of else None), (names if class_of else ())


def folder_classes(path: Path, files: list[Path]) -> dict[Path, str]:
    """Each file's class (its top subfolder's name) when no image lies directly in ``path``; else {}."""
    classes = {file: file.relative_to(path).parts[0] for file in files}
    if not files or any(len(file.relative_to(path).parts) < 2 for file in files):
        return {}
    return classes


def image_files(path: Path) -> list[Path]:
    """Image files under ``path`` by suffix (any case), sorted for determinism."""
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def first_image_size(path: Path) -> int | None:
    """The shorter side of the first image file under ``path``; None when there is none or it cannot be read."""
    from PIL import Image

    files = image_files(path) if path.is_dir() else []
    if not files:
        return None
    try:
        with Image.open(files[0]) as image:
            return min(image.size)
    except OSError:
        return None


def _read_square_sized(file: Path, size: int, mode: str, fit: Fit = "crop") -> tuple[np.ndarray, tuple[int, int]]:
    """The image at ``size`` × ``size``, and its own (width, height). One larger than PIL's
    decompression-bomb limit (89 M pixels) raises, so that the folder's readers skip and count it
    instead of printing PIL's warning and decoding it."""
    import warnings

    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(file)
    with image:
        image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
        own = image.size
        image = image.convert(mode)
        if fit == "crop":  # scale the shorter side to `size`, crop the centre
            image = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
        elif fit == "pad":  # scale the longer side to `size`, pad with black
            image = ImageOps.pad(image, (size, size), method=Image.Resampling.LANCZOS, color=0)
        else:  # stretch: the whole picture, its proportions changed
            image = image.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8), own


class FolderReading:
    """Reads a folder's images one by one, remembering what it did, to say so before training:
    how many, from which sizes to which, how non-square ones were fitted, which were skipped and why."""

    def __init__(self, size: int, fit: Fit = "crop") -> None:
        self.size, self.fit = size, fit
        self.sizes: Counter[tuple[int, int]] = Counter()
        self.skipped: list[tuple[str, str]] = []

    def read(self, file: Path, mode: str) -> np.ndarray | None:
        """The image, or None (remembered with its reason) when it cannot be read."""
        try:
            image, own = _read_square_sized(file, self.size, mode, self.fit)
        except Exception as exc:  # noqa: BLE001 - PIL's decoders fail on corrupt files with many exception types
            reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
            self.skipped.append((file.name, reason))
            return None
        self.sizes[own] += 1
        return image

    def report(self, path: Path, n: int, classes: dict[str, int], describe: bool = True) -> list[str]:
        """The lines that say what was loaded (without ``describe``: only the files skipped)."""
        s = self.size
        found = f"{path}: {n:,} image(s)"
        if classes:
            counts = ", ".join(f"{name} {count:,}" for name, count in classes.items())
            found += f" in {len(classes)} subfolders (the classes of --conditional): {counts}"
        lines = [found] if describe else []
        other = Counter({size: k for size, k in self.sizes.items() if size != (s, s)})
        if other and describe:
            common = ", ".join(f"{w}×{h} ({k:,})" for (w, h), k in other.most_common(3))
            more = f" and {len(other) - 3} other sizes" if len(other) > 3 else ""
            lines.append(f"resized to {s}×{s} from {common}{more}")
        non_square = sum(k for (w, h), k in self.sizes.items() if w != h)
        if non_square and describe:
            how = {"crop": "centre-cropped (--fit pad or --fit stretch keeps the whole picture)",
                   "pad": "padded with black to a square", "stretch": "stretched to a square"}[self.fit]  # fmt: skip
            lines.append(f"{non_square:,} non-square image(s) {how}")
        if self.skipped:
            named = ", ".join(f"{name} ({why})" for name, why in self.skipped[:SHOWN_SKIPPED])
            more = f" and {len(self.skipped) - SHOWN_SKIPPED} more" if len(self.skipped) > SHOWN_SKIPPED else ""
            lines.append(f"skipped {len(self.skipped)} unreadable file(s): {named}{more}")
        return lines
