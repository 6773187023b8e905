"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"): the "bgc" pipeline, each transform applied to each image with a
probability p that follows how much D overfits.

Every image D sees, real and generated, goes through the same pipeline, so D cannot learn the
augmentations and G is never pushed to reproduce them (they "leak" only when p nears 1):

    geometric (one affine warp, reflection at the borders): x-flip, 90-degree rotations, integer
        translation, isotropic scaling, rotation, anisotropic scaling, rotation, fractional translation
    colour (one 4x4 matrix on RGB): brightness, contrast, luma flip, hue rotation, saturation

p starts at 0. Every ``interval`` iterations the overfitting heuristic r_t = E[sign(D(real))]
over those iterations is compared with ``target`` (0.6 in the paper) and p moves by
sign(r_t - target) × images / (speed_kimg × 1000): from 0 to 1 in ``speed_kimg`` thousand
images at the fastest. p, the running sums and the pipeline's random generator are device
tensors in the checkpoint: no host sync, and a resumed run augments as the uninterrupted one.

Drawing (eager, from the generator) and applying (pure, traceable by torch.compile) are apart,
as for DiffAugment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)


class AdaptiveAugment:
    def __init__(self, pixel_range: tuple[float, float], device: torch.device, seed: int, *, target: float = 0.6,
                 interval: int = 4, speed_kimg: float = 500.0, batch_size: int = 64) -> None:
        low, high = pixel_range
        self.scale, self.middle = (high - low) / 2, (high + low) / 2  # to [-1, 1] and back
        self.target, self.interval = target, interval
        self.step_size = batch_size * interval / (speed_kimg * 1000)  # p's change per adjustment
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(seed)
        self.p = torch.zeros((), device=device)
        self.sign_sum = torch.zeros((), device=device)
        self.sign_count = torch.zeros((), device=device)

    # --- the controller -----------------------------------------------------------------------
    def observe(self, real_sign: torch.Tensor) -> None:
        """One D update's E[sign(D(real))] (a device scalar)."""
        self.sign_sum += real_sign.detach().float()
        self.sign_count += 1

    def adjust(self, iterations_done: int, average: Callable[[torch.Tensor], None] | None = None) -> None:
        """Every ``interval`` iterations: move p towards the target overfitting (``average``: over processes)."""
        if iterations_done % self.interval:
            return
        sums = torch.stack([self.sign_sum, self.sign_count])
        if average is not None:
            average(sums)  # every process then moves p alike
        r_t = sums[0] / sums[1].clamp(min=1)
        self.p = (self.p + torch.sign(r_t - self.target) * self.step_size).clamp(0.0, 1.0)
        self.sign_sum.zero_()
        self.sign_count.zero_()

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, n: int, height: int, width: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Per image: the affine warp (a 2x3 matrix in normalised coordinates) and the colour matrix."""
        g, p = self.rng, self.p

        def chosen(prob: torch.Tensor | float = p) -> torch.Tensor:  # each image: this transform or not
            return (torch.rand(n, generator=g, device=device) < prob).float()

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=g, device=device)

        def normal(std: float) -> torch.Tensor:
            return torch.randn(n, generator=g, device=device) * std

        warp = torch.eye(3, device=device).repeat(n, 1, 1)
        flip = torch.floor(uniform(0, 2)) * chosen()
        warp = warp @ _scale(1 - 2 * flip, torch.ones(n, device=device))
        quarter = torch.floor(uniform(0, 4)) * chosen()
        warp = warp @ _rotate(quarter * (math.pi / 2))
        shift = torch.round(uniform(-0.125, 0.125)[:, None] * torch.tensor([width, height], device=device)) * chosen()[:, None]
        warp = warp @ _translate(shift[:, 0] * 2 / width, shift[:, 1] * 2 / height)
        iso = torch.exp2(normal(0.2) * chosen())
        warp = warp @ _scale(iso, iso)
        p_rot = 1 - torch.sqrt((1 - p).clamp(min=0))  # two rotations: together as likely as one transform
        warp = warp @ _rotate(uniform(-math.pi, math.pi) * chosen(p_rot))
        aniso = torch.exp2(normal(0.2) * chosen())
        warp = warp @ _scale(aniso, 1 / aniso)
        warp = warp @ _rotate(uniform(-math.pi, math.pi) * chosen(p_rot))
        frac = normal(0.125)[:, None].expand(n, 2) * chosen()[:, None]
        warp = warp @ _translate(frac[:, 0] * 2, frac[:, 1] * 2)

        axis = tuple(c / math.sqrt(sum(c * c for c in LUMA)) for c in LUMA)  # the luma axis, unit length
        v = torch.tensor([*axis, 0.0], device=device)
        colour = torch.eye(4, device=device).expand(n, 4, 4).clone()
        colour = _translate3(normal(0.2) * chosen()) @ colour
        contrast = torch.exp2(normal(0.5) * chosen())
        colour = _scale3(contrast) @ colour
        outer = torch.outer(v, v)
        luma_flip = torch.floor(uniform(0, 2)) * chosen()
        colour = (torch.eye(4, device=device) - 2 * outer * luma_flip[:, None, None]) @ colour
        colour = _rotate3(axis, uniform(-math.pi, math.pi) * chosen()) @ colour
        saturation = torch.exp2(normal(1.0) * chosen())
        colour = (outer + (torch.eye(4, device=device) - outer) * saturation[:, None, None]) @ colour
        return {"warp": warp[:, :2, :], "colour": colour}

    # --- applying -------------------------------------------------------------------------------
    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        x = (images - self.middle) / self.scale  # the paper's [-1, 1]
        grid = F.affine_grid(params["warp"].to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        m = params["colour"].to(x.dtype)
        if x.shape[1] == 3:
            x = torch.einsum("nij,njhw->nihw", m[:, :3, :3], x) + m[:, :3, 3, None, None]
        else:  # gray: the colour matrix acting on the luma axis only
            x = x * (m[:, :3, :3].sum(dim=2).mean(dim=1))[:, None, None, None] + m[:, :3, 3].mean(dim=1)[:, None, None, None]
        return x * self.scale + self.middle

    # --- resume ---------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"p": self.p, "sign_sum": self.sign_sum, "sign_count": self.sign_count}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        device = self.p.device
        self.p = tensors["p"].to(device)
        self.sign_sum = tensors["sign_sum"].to(device)
        self.sign_count = tensors["sign_count"].to(device)


# --- 3x3 (2D homogeneous) and 4x4 (RGB homogeneous) matrices, one per image --------------------
def _batch_eye(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(size, device=like.device, dtype=like.dtype).repeat(n, 1, 1)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _batch_eye(sx.shape[0], 3, sx)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = _batch_eye(theta.shape[0], 3, theta)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _batch_eye(tx.shape[0], 3, tx)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _translate3(b: torch.Tensor) -> torch.Tensor:
    m = _batch_eye(b.shape[0], 4, b)
    m[:, :3, 3] = b[:, None]
    return m


def _scale3(c: torch.Tensor) -> torch.Tensor:
    m = _batch_eye(c.shape[0], 4, c)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = c
    return m


def _rotate3(axis: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` about the unit ``axis`` (Rodrigues), in the 4x4 homogeneous form."""
    x, y, z = axis
    k = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], device=theta.device, dtype=theta.dtype)
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    r = torch.eye(3, device=theta.device, dtype=theta.dtype) + s * k + (1 - c) * (k @ k)
    m = _batch_eye(theta.shape[0], 4, theta)
    m[:, :3, :3] = r
    return m
