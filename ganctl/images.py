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
    """Tile uint8 ``(N, C, H, W)`` images into one ``(C, H', W')`` image, ``nrow`` per row.

    The layout of torchvision's ``make_grid`` (padding around and between tiles), without
    importing torchvision, which would add over a second to every ``ganctl sample``.
    """
    n, c, h, w = images.shape
    nrow = min(nrow or math.ceil(n**0.5), n)
    rows = math.ceil(n / nrow)
    step_h, step_w = h + padding, w + padding
    canvas = torch.full((c, rows * step_h + padding, nrow * step_w + padding), pad_value, dtype=images.dtype)
    for i in range(n):
        top, left = (i // nrow) * step_h + padding, (i % nrow) * step_w + padding
        canvas[:, top : top + h, left : left + w] = images[i]
    return canvas


def to_pil(image: torch.Tensor, scale: int = 1) -> Image.Image:
    """A uint8 ``(C, H, W)`` tensor as a PIL image: mode L for one channel, RGB for three."""
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0], mode="L") if image.shape[0] == 1 else Image.fromarray(array, mode="RGB")
    if scale > 1:  # nearest neighbour keeps tiny pixels crisp
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return pil


def save_png(image: Image.Image, path: Path, durable: bool = True) -> None:
    """Write a PNG atomically (``durable=False``: without fsync, see ``atomic_write_bytes``)."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue(), durable=durable)


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
