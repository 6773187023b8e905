"""A folder of your own images, made up: circles, crosses and squares in three subfolders.

What a user's first folder looks like: a few hundred PNGs, one subfolder per class, not all
square, not all the training size (64×64 and 50×70 pictures). docs/own-images.md trains on it.

    python benchmarks/shape_folder.py OUT [--per-class 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(230, 60, 60), (60, 170, 70), (70, 110, 230), (240, 200, 40), (200, 80, 220), (40, 200, 210)]
SIZES = [(64, 64), (50, 70)]


def draw(kind: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    w, h = size
    background = tuple(rng.randint(0, 60) for _ in range(3))
    image = Image.new("RGB", size, background)
    pen = ImageDraw.Draw(image)
    colour = rng.choice(COLOURS)
    r = rng.uniform(0.22, 0.36) * min(w, h)
    cx, cy = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
    if kind == "circles":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "squares":
        pen.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:  # crosses
        t = r / 3
        pen.rectangle([cx - r, cy - t, cx + r, cy + t], fill=colour)
        pen.rectangle([cx - t, cy - r, cx + t, cy + r], fill=colour)
    return image


def make_shape_folder(out: Path, per_class: int = 100, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for kind in ("circles", "crosses", "squares"):
        (out / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, SIZES[i % len(SIZES)], rng).save(out / kind / f"{kind}-{i:04d}.png")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_shape_folder(args.out, args.per_class, args.seed))
