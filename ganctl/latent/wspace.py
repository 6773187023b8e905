"""The W space of style-based generators, and truncation for the others (``sample --truncation``,
``sample --style-mix``).

A generator has a W space when it exposes the three parts StyleGAN's generators have:

    G.mapping(z, labels) -> w (N, w_dim)       with a buffer G.mapping.w_avg (the mean w, tracked in training)
    G.num_ws                                   how many w vectors the synthesis network reads
    G.synthesis(ws) -> images                  ws (N, num_ws, w_dim): one w per layer

Then ``--truncation PSI`` moves every w towards the mean, ``w_avg + PSI * (w - w_avg)`` (Karras et al.
2019), and a style-mixing grid gives each cell the w of its row for the layers before ``--mix-from``
and the w of its column from that layer on. Any other generator samples in z: ``--truncation PSI``
is then BigGAN's truncation trick as its release samples it (Brock et al. 2019): entries of z beyond
±2 are drawn again, then z is scaled by PSI. PSI 0 gives one image for every latent either way.

The checks that need no torch come first (``check_truncation``, ``parse_style_mix``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ganctl.errors import GanctlError

if TYPE_CHECKING:
    import torch

Z_THRESHOLD = 2.0  # BigGAN's truncated normal: |z| <= 2 before scaling


def check_truncation(psi: float | None) -> None:
    if psi is not None and not (math.isfinite(psi) and 0.0 <= psi <= 1.0):
        raise GanctlError(f"--truncation must be between 0 and 1 (1: no truncation), not {psi}")


def parse_style_mix(value: str | None) -> tuple[list[int], list[int]] | None:
    """``"1,2,3/10,11"`` -> ([1, 2, 3], [10, 11]): the rows' seeds and the columns' seeds."""
    if value is None:
        return None
    parts = value.split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        rows, cols = ([int(s) for s in part.split(",") if s.strip()] for part in parts)
    except ValueError:
        raise GanctlError(f"--style-mix {value!r}: give the rows' seeds and the columns' seeds, as 1,2,3/10,11,12") from None
    if not rows or not cols or min(rows + cols) < 0:
        raise GanctlError(f"--style-mix {value!r}: each side needs at least one seed, none negative")
    return rows, cols


def has_w_space(generator: object) -> bool:
    mapping = getattr(generator, "mapping", None)
    return mapping is not None and hasattr(mapping, "w_avg") and hasattr(generator, "synthesis") and hasattr(generator, "num_ws")


def check_mix_from(layer: int, generator: object, source: object) -> None:
    if not has_w_space(generator):
        raise GanctlError(f"--style-mix needs a style-based generator (one with a W space); {source} samples in z")
    if not 0 <= layer < generator.num_ws:
        raise GanctlError(f"--mix-from {layer}: {source} has {generator.num_ws} style layers, 0 to {generator.num_ws - 1}")


def truncated_z(z: torch.Tensor, psi: float, seed: int) -> torch.Tensor:
    """BigGAN's truncation of standard-normal latents: entries beyond ±2 drawn again (seeded), then x psi."""
    import torch

    rng = torch.Generator(device="cpu").manual_seed(seed + 1)  # not the seed's own stream: z stays as drawn
    z = z.clone()
    outside = z.abs() > Z_THRESHOLD
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=rng)
        outside = z.abs() > Z_THRESHOLD
    return z * psi


def _module():
    from torch import nn

    class TruncatedGenerator(nn.Module):
        """``G(z[, labels])`` with every w pulled towards the mean: ``w_avg + psi * (w - w_avg)``."""

        def __init__(self, generator: nn.Module, psi: float) -> None:
            super().__init__()
            self.generator, self.psi = generator, psi

        def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
            return self.generator.synthesis(broadcast(self.generator, truncated_w(self.generator, z, labels, self.psi)))

    return TruncatedGenerator


def truncated_w(generator, z: torch.Tensor, labels: torch.Tensor | None, psi: float | None) -> torch.Tensor:
    """``mapping(z, labels)``, pulled towards ``w_avg`` by ``psi`` (None or 1: unchanged)."""
    w = generator.mapping(z, labels)
    return w if psi is None or psi == 1 else generator.mapping.w_avg.to(w.dtype).lerp(w, psi)


def broadcast(generator, w: torch.Tensor) -> torch.Tensor:
    return w.unsqueeze(1).expand(-1, generator.num_ws, -1)


def truncated(generator, psi: float):
    """A W-space generator whose every w is truncated by ``psi`` (called as the generator is)."""
    return _module()(generator, psi).eval()


def style_mix_images(generator, row_z: torch.Tensor, col_z: torch.Tensor, mix_from: int, *, psi: float | None,
                     pixel_range: Sequence[float], device, labels_row=None, labels_col=None) -> torch.Tensor:  # fmt: skip
    """The style-mixing grid as uint8 images, (R + 1) x (C + 1) in reading order: a blank corner,
    the columns' images, then each row's image followed by its mixes with every column (the row's
    w before layer ``mix_from``, the column's from it on)."""
    import torch

    from ganctl.data.images import to_uint8

    with torch.inference_mode():
        w_rows = truncated_w(generator, row_z.to(device), labels_row, psi)
        w_cols = truncated_w(generator, col_z.to(device), labels_col, psi)
        r, c = w_rows.shape[0], w_cols.shape[0]
        ws_rows, ws_cols = broadcast(generator, w_rows), broadcast(generator, w_cols)
        later = torch.arange(generator.num_ws, device=w_rows.device).reshape(1, 1, -1, 1) >= mix_from
        mixed = torch.where(later, ws_cols.unsqueeze(0), ws_rows.unsqueeze(1))  # (R, C, num_ws, w_dim)
        images = [to_uint8(generator.synthesis(ws_cols), pixel_range)]
        for i in range(r):
            images.append(to_uint8(generator.synthesis(torch.cat([ws_rows[i : i + 1], mixed[i]])), pixel_range))
    blank = torch.full_like(images[0][:1], 255)
    return torch.cat([blank, *images])
