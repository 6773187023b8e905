"""Turning generator output into pictures: pixel ranges, grids, PNG files and animations.

Used by the trainer (sample grids, ``progress.gif``), by ``sample``, ``latent-walk`` and
``latent-arith``, and by ``eval --save-images``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from ganctl.fileio import atomic_write_bytes
from ganctl.outputs import individual_names  # noqa: F401  (its old import path; torch-free there, for the output checks)


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


AUTO_SCALE_MIN_SIDE = 256  # px: the smaller side of a default grid or animation, at least


def auto_scale(height: int, width: int, least: int = AUTO_SCALE_MIN_SIDE) -> int:
    """The smallest whole enlargement that makes the smaller side of ``height × width`` at least ``least`` px."""
    return max(1, math.ceil(least / max(1, min(height, width))))


def to_pil(image: torch.Tensor, scale: int | None = 1) -> Image.Image:
    """A uint8 ``(C, H, W)`` tensor as a PIL image: mode L for one channel, RGB for three.

    ``scale`` None: enlarged by ``auto_scale`` (the smaller side at least 256 px)."""
    if scale is None:
        scale = auto_scale(image.shape[1], image.shape[2])
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0], mode="L") if image.shape[0] == 1 else Image.fromarray(array, mode="RGB")
    if scale > 1:  # nearest neighbour keeps tiny pixels crisp
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return pil


def grid_picture(batches: Iterable[torch.Tensor], nrow: int | None, padding: int, scale: int | None) -> Image.Image:
    """All images of ``batches`` in one grid picture, ``nrow`` per row (default ⌈√n⌉)."""
    return to_pil(grid(torch.cat(list(batches)), nrow=nrow, padding=padding), scale=scale)


def walk_grid(frames: torch.Tensor, padding: int, scale: int | None) -> Image.Image:
    """uint8 ``(R, F, C, H, W)`` as one picture: one walk per row, its frames left to right."""
    return to_pil(grid(frames.flatten(0, 1), nrow=frames.shape[1], padding=padding), scale=scale)


def walk_animation(frames: torch.Tensor, padding: int, scale: int | None, ping_pong: bool = False) -> list[Image.Image]:
    """uint8 ``(R, F, C, H, W)`` as F animation frames, each the R walks' images at that step, stacked.

    ``ping_pong``: then back again (F, F−1... 2), so a repeating animation of an open walk
    never jumps from its last frame to its first: 2F − 2 frames."""
    pictures = [to_pil(grid(frames[:, f], nrow=1, padding=padding), scale=scale) for f in range(frames.shape[1])]
    return pictures + pictures[-2:0:-1] if ping_pong else pictures




def save_each(batches: Iterable[torch.Tensor], folder: Path, names: Sequence[str], scale: int = 1) -> Iterator[torch.Tensor]:
    """Pass each uint8 batch on after writing each of its images to its own PNG (``names`` in order)."""
    written = 0
    for batch in batches:
        for image in batch:
            # no fsync per file: 50,000 of them would take minutes; a rename still never
            # leaves a torn PNG behind if the run is stopped
            save_png(to_pil(image.cpu(), scale=scale), Path(folder) / names[written], durable=False)
            written += 1
        yield batch


def write_individual(batches: Iterable[torch.Tensor], folder: Path, names: Sequence[str], scale: int = 1) -> int:
    """Write each image of each batch to its own PNG as the batch arrives; return how many."""
    return sum(len(batch) for batch in save_each(batches, folder, names, scale))


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


def save_animation_of_files(paths: Sequence[Path], target: Path, fps: float = 4.0) -> None:
    """An animation (by ``target``'s extension) of image files, each opened and closed in turn.

    For ``progress.gif``: built once from the sample PNGs at the end of a run, instead of
    again at every sample (which costs the square of the run's length).
    """
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(image.convert("RGB"))
    if frames:
        save_animation(frames, target, fps=fps)


def with_row_legend(picture: Image.Image, names: Sequence[str], padding: int, scale: int) -> Image.Image:
    """``picture`` (a grid of ``len(names)`` rows laid out by ``grid``, enlarged ``scale`` times)
    with each row's name written to its left, white on black."""
    from PIL import ImageDraw, ImageFont

    rows = len(names)
    row_height = (picture.height / scale - padding) / rows * scale  # a tile and the padding below it
    size = int(max(10, min(row_height * 0.4, 28)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(picture)
    width = max(draw.textlength(str(name), font=font) for name in names)
    margin = int(width + 2 * size // 2 + 4)
    out = Image.new(picture.mode, (picture.width + margin, picture.height), 0)
    out.paste(picture, (margin, 0))
    draw = ImageDraw.Draw(out)
    white = 255 if out.mode == "L" else (255, 255, 255)
    for row, name in enumerate(names):
        centre = padding * scale + row * row_height + (row_height - padding * scale) / 2
        right = margin - size // 2 - 2
        draw.text((right - draw.textlength(str(name), font=font), centre - size / 2), str(name), fill=white, font=font)
    return out
