"""Projection: the latent whose image is closest to a real image, found by optimisation.

The schedule is the StyleGAN2 projector's (Karras et al. 2020, ``projector.py``), in z instead of
w: Adam (betas 0.9, 0.999) from the mean latent (z = 0); the learning rate ramps up over the
first 5 % of the steps and down along a cosine over the last 25 % (peak 0.1); Gaussian noise
added to the latent at each step, of scale 0.05 × (1 - t/0.75)² (t = step / steps), lets the
search leave the first basin. The loss per image is the perceptual distance plus
``pixel_weight`` × the mean squared pixel error (in [0, 1] units). All images of a batch are
optimised at once, each with its own latent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganctl.errors import GanctlError
from ganctl.latent.perceptual import Perceptual

INITIAL_LR = 0.1
LR_RAMPDOWN = 0.25
LR_RAMPUP = 0.05
INITIAL_NOISE = 0.05
NOISE_RAMP = 0.75
LATENT_STD = 1.0  # z ~ N(0, I); StyleGAN2 measures w's spread, z's is known


def learning_rate(t: float) -> float:
    """The StyleGAN2 projector's learning rate at ``t`` = step / steps."""
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return INITIAL_LR * ramp * min(1.0, t / LR_RAMPUP)


def noise_scale(t: float) -> float:
    return LATENT_STD * INITIAL_NOISE * max(0.0, 1.0 - t / NOISE_RAMP) ** 2


@dataclass
class Projection:
    z: torch.Tensor  # (N, latent_dim), the latents found
    distances: list[float]  # each image's final loss
    first_distances: list[float]  # and at the start (z = 0)
    frames: list[torch.Tensor] = field(default_factory=list)  # images (N, C, H, W) during the search, for the GIF


def project(
    generator: torch.nn.Module,
    targets: torch.Tensor,
    pixel_range: Sequence[float],
    latent_dim: int,
    perceptual: Perceptual,
    *,
    steps: int,
    pixel_weight: float = 1.0,
    seed: int = 0,
    frame_every: int = 0,
    on_step: Callable[[int], None] = lambda step: None,
) -> Projection:
    """Optimise one latent per target. ``targets``: float images (N, C, H, W) in ``pixel_range``."""
    if steps < 1:
        raise GanctlError(f"--steps must be at least 1, not {steps}")
    device = targets.device
    low, high = float(pixel_range[0]), float(pixel_range[1])
    generator = generator.eval().requires_grad_(False)
    rng = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.zeros(targets.shape[0], latent_dim, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([z], betas=(0.9, 0.999), lr=INITIAL_LR)
    target_255 = _to_255(targets, low, high)

    def losses(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = generator(latent)
        pixels = ((images - targets) / (high - low)).pow(2).mean(dim=(1, 2, 3))
        loss = pixel_weight * pixels
        if perceptual.distance is not None:
            loss = loss + perceptual.distance(_to_255(images, low, high), target_255)
        return loss, images

    with torch.no_grad():
        first = losses(z)[0]
    frames = []
    for step in range(steps):
        t = step / steps
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(t)
        noise = torch.randn(z.shape, generator=rng).to(device) * noise_scale(t)
        loss, images = losses(z + noise)
        optimiser.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimiser.step()
        if frame_every and step % frame_every == 0:
            frames.append(images.detach().cpu())
        on_step(step)
    with torch.no_grad():
        final, images = losses(z)
    if frame_every:
        frames.append(images.cpu())
    return Projection(z.detach().cpu(), final.cpu().tolist(), first.cpu().tolist(), frames)


def _to_255(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Images in the pixel range as float [0, 255] RGB (what the perceptual networks take)."""
    images = (images - low) * (255.0 / (high - low))
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


# --- the targets -----------------------------------------------------------------------------


def load_targets(paths: Sequence[Path], image_size: int, channels: int, note: Callable[[str], None]) -> torch.Tensor:
    """The images as uint8 (N, C, H, W) at the generator's size and channels; what is changed is said.

    Not square: centre-cropped to a square. Another size: resized (Lanczos). Other channels:
    colour to grey (ITU-R 601 luma), grey to colour (repeated), alpha dropped (over black).
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise GanctlError(f"{path} does not exist or is not a file")
        try:
            with Image.open(path) as opened:
                opened.load()
                picture = opened.copy()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise GanctlError(f"{path} is not an image ganctl can read ({type(exc).__name__})") from None
        changes = []
        mode = "L" if channels == 1 else "RGB"
        if picture.mode != mode:
            changes.append(f"{picture.mode} converted to {mode}")
            if "A" in picture.getbands() or "transparency" in picture.info:
                picture = picture.convert("RGBA")
                background = Image.new("RGBA", picture.size, (0, 0, 0, 255))
                picture = Image.alpha_composite(background, picture)
            picture = picture.convert(mode)
        width, height = picture.size
        if width != height:
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            picture = picture.crop((left, top, left + side, top + side))
            changes.append(f"centre-cropped from {width}x{height} to {side}x{side}")
        if picture.size[0] != image_size:
            changes.append(f"resized from {picture.size[0]} to {image_size} px")
            picture = picture.resize((image_size, image_size), Image.Resampling.LANCZOS)
        if changes:
            note(f"{path}: {', '.join(changes)} to fit the generator")
        array = np.asarray(picture, dtype=np.uint8)
        array = array[:, :, None] if array.ndim == 2 else array
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(images)


def from_uint8(images: torch.Tensor, pixel_range: Sequence[float]) -> torch.Tensor:
    low, high = float(pixel_range[0]), float(pixel_range[1])
    return images.float() * ((high - low) / 255.0) + low
