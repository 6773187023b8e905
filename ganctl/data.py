"""Datasets as uint8 tensors at the size and channels an architecture needs.

A registered dataset is a function ``load(request) -> numpy uint8 (N, H, W, C)`` at its own
size (see ``ganctl_plugins/datasets.py``). ``load_images`` looks it up (or reads a folder of
images for ``folder:PATH``), then resizes and maps channels once, so the trainer gets exactly
``(N, channels, image_size, image_size)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganctl.errors import GanctlError

FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


@dataclass(frozen=True)
class DatasetRequest:
    root: Path  # where files are looked for (the --data-dir)
    split: str  # "train" or "test"
    download: bool  # may a missing dataset be downloaded
    image_size: int  # the architecture's size (a hint; synthetic draws at it)
    channels: int  # 1 or 3 (a hint)


def default_data_dir() -> Path:
    if "GANCTL_DATA_DIR" in os.environ:
        return Path(os.environ["GANCTL_DATA_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "ganctl" / "data"


def downloads_allowed(download: bool) -> bool:
    return download and os.environ.get("GANCTL_OFFLINE", "") in ("", "0")


def dataset_names() -> list[str]:
    from ganctl.registry import DATASETS

    return DATASETS.names()


def load_images(
    dataset: str,
    *,
    data_dir: Path | None,
    split: str = "train",
    image_size: int,
    channels: int,
    download: bool = True,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """uint8 ``(N, channels, image_size, image_size)`` on the CPU."""
    if split not in ("train", "test"):
        raise GanctlError(f"unknown split '{split}'; use train or test")
    if dataset.startswith(FOLDER_PREFIX):
        array = read_folder(Path(dataset[len(FOLDER_PREFIX) :]).expanduser(), image_size, channels, log)
    else:
        from ganctl.registry import DATASETS

        loader = DATASETS.get(dataset).obj
        request = DatasetRequest(Path(data_dir) if data_dir else default_data_dir(), split, download, image_size, channels)
        array = loader(request)
    if limit is not None:
        array = array[:limit]
    if array.ndim != 4 or array.shape[0] == 0:
        raise GanctlError(f"dataset '{dataset}' gave no images")
    images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)  # NHWC -> NCHW
    images = map_channels(images, channels, dataset)
    return resize(images, image_size).contiguous()


def map_channels(images: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise GanctlError(f"dataset '{name}' has {have} channels, which cannot be mapped to {channels}")


def resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 images to ``size`` (a no-op at the native size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    import torch.nn.functional as F

    out = []
    for part in images.split(chunk):  # bounded memory for 60,000 images
        scaled = F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(scaled.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def read_folder(folder: Path, size: int, channels: int, log: Callable[[str], None] | None) -> np.ndarray:
    """Every image under ``folder``: shorter side to ``size``, centre crop, L or RGB."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not folder.is_dir():
        raise GanctlError(f"{folder} is not a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    mode = "L" if channels == 1 else "RGB"
    images, skipped = [], 0
    for path in paths:
        try:
            with Image.open(path) as im:
                im = ImageOps.fit(im.convert(mode), (size, size), method=Image.Resampling.BICUBIC)
                images.append(np.asarray(im, dtype=np.uint8).reshape(size, size, channels))
        except (OSError, UnidentifiedImageError, ValueError):
            skipped += 1
    if skipped and log:
        log(f"skipped {skipped} unreadable image(s) in {folder}")
    if not images:
        raise GanctlError(f"no readable images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return np.stack(images)
