"""Paths through latent space: lerp, slerp and walks through several points (``latent-walk``).

torch is imported inside the functions, so the command can check ``--mode`` against
``MODES`` before torch is loaded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ganctl.errors import GanctlError

if TYPE_CHECKING:
    import torch


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line points between ``a`` and ``b`` ``(..., D)`` at fractions ``t`` ``(T,)``: ``(T, ..., D)``."""
    import torch

    t = t.to(torch.float64).reshape(-1, *([1] * a.ndim))
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return ((1 - t) * a64 + t * b64).to(a.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation (White 2016, "Sampling generative networks"): ``(T, ..., D)``.

    Gaussian latents live near a sphere; a straight line between two of them passes through
    the low-norm middle, where the generator has seen few points. Slerp follows the great
    circle instead. Where ``a`` and ``b`` are (anti)parallel within ``eps`` radians the circle
    is undefined or its plane arbitrary, and the line is used. ``t = 0`` and ``t = 1`` give
    ``a`` and ``b`` exactly.
    """
    import torch

    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    cos = torch.nn.functional.cosine_similarity(a64, b64, dim=-1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos).unsqueeze(-1)  # (..., 1)
    sin_omega = torch.sin(omega)
    t = t.to(torch.float64).reshape(-1, *([1] * a.ndim))
    degenerate = (omega < eps) | (omega > math.pi - eps)
    safe_sin = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    spherical = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / safe_sin
    linear = (1 - t) * a64 + t * b64
    return torch.where(degenerate, linear, spherical).to(a.dtype)


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}
MODES = tuple(INTERPOLATIONS)


def walk_length(points: int, steps: int, loop: bool) -> int:
    """Frames of a walk through ``points`` endpoints, ``steps`` frames per segment.

    A segment's frames start at its first endpoint and stop before the next one. Without
    ``loop`` the last endpoint closes the walk: ``steps × (points − 1) + 1`` frames. With
    ``loop`` a last segment leads back towards the start, which is not repeated (the
    animation's first frame follows): ``steps × points`` frames.
    """
    return steps * points if loop else steps * (points - 1) + 1


def walk(points: torch.Tensor, steps: int, mode: str = "slerp", loop: bool = False) -> torch.Tensor:
    """The latents of walks through ``points`` ``(R, P, D)``: ``(R, walk_length(P, steps, loop), D)``.

    Each of the R rows is one walk through its P endpoints, in order.
    """
    import torch

    if mode not in INTERPOLATIONS:
        raise GanctlError(f"unknown interpolation '{mode}'; use {' or '.join(MODES)}")
    if steps < 1:
        raise GanctlError(f"--steps must be at least 1, not {steps}")
    if points.shape[1] < 2:
        raise GanctlError("a walk needs at least 2 points")
    interpolate = INTERPOLATIONS[mode]
    starts = points
    ends = torch.roll(points, shifts=-1, dims=1)  # each endpoint's successor, the first after the last
    if not loop:
        starts, ends = starts[:, :-1], ends[:, :-1]
    t = torch.arange(steps, dtype=torch.float64) / steps
    segments = interpolate(starts, ends, t)  # (steps, R, segments, D)
    frames = segments.permute(1, 2, 0, 3).reshape(points.shape[0], -1, points.shape[2])
    if not loop:
        frames = torch.cat([frames, points[:, -1:]], dim=1)
    return frames
