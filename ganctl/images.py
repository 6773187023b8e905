"""Turning generator output into pictures: pixel ranges, grids, PNG and animations.

Used by the trainer (sample grids, ``progress.gif``) and by ``sample`` / ``latent-walk``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from ganctl.fileio import atomic_write_bytes


def to_uint8(images: torch.Tensor, pixel_range: Sequence[float]) -> torch.Tensor:
    """Map images in ``pixel_range`` (tanh's [-1,1] or sigmoid's [0,1]) to uint8 on the CPU."""
    low, high = float(pixel_range[0]), float(pixel_range[1])
    scaled = (images.detach().float() - low) * (255.0 / (high - low))
    return scaled.round_().clamp_(0, 255).to(torch.uint8).cpu()


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> torch.Tensor:
    """Tile uint8 ``(N, C, H, W)`` images into one ``(C, H', W')`` image, ``nrow`` per row."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(images.shape[0] ** 0.5)
    tiled = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)  # repeats 1 channel to 3
    return tiled[:1] if images.shape[1] == 1 else tiled


def to_pil(image: torch.Tensor, scale: int = 1) -> Image.Image:
    """A uint8 ``(C, H, W)`` tensor as a PIL image: mode L for one channel, RGB for three."""
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0], mode="L") if image.shape[0] == 1 else Image.fromarray(array, mode="RGB")
    if scale > 1:  # nearest neighbour keeps tiny pixels crisp
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return pil


def save_png(image: Image.Image, path: Path, durable: bool = True) -> None:
    """Write a PNG atomically. ``durable=False`` skips the fsync (fast, for thousands of files):
    the file still appears whole or not at all if the process dies, but a power cut may lose it."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    if durable:
        atomic_write_bytes(Path(path), buffer.getvalue())
    else:
        _replace_write(Path(path), buffer.getvalue())


def _replace_write(path: Path, data: bytes) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_animation(frames: Sequence[Image.Image], path: Path, fps: float = 4.0, loop: bool = True) -> None:
    """An animated GIF or WebP (by extension) of ``frames``."""
    import io

    path = Path(path)
    fmt = {".gif": "GIF", ".webp": "WEBP"}[path.suffix.lower()]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format=fmt,
        save_all=True,
        append_images=list(frames[1:]),
        duration=max(1, round(1000 / fps)),
        loop=0 if loop else 1,
        **({"lossless": True} if fmt == "WEBP" else {}),
    )
    atomic_write_bytes(path, buffer.getvalue())
