"""Generator to images: the one path every command takes (``sample``, ``latent-walk``,
``latent-arith``, ``eval`` and ``train``'s evaluations).

    generator, info, path = load_requested_generator(None, device)   # ganctl.networks.weights
    z = random_latents(64, info.latent_dim, seed=0)                  # ganctl.latent.latents
    for batch in generate(generator, z, info.pixel_range, device=device):
        ...  # uint8 (B, C, H, W) tensors on the CPU

The images, the large part, are made and handed on one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ganctl.device import autocast
from ganctl.data.images import to_uint8


def generate(
    generator: torch.nn.Module,
    latents: torch.Tensor,
    pixel_range: Sequence[float],
    *,
    device: torch.device,
    batch_size: int = 500,
    amp: bool = False,
    labels: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the images of ``latents``, ``batch_size`` at a time, as uint8 ``(B, C, H, W)`` CPU tensors.

    ``labels``: one class per latent, for a class-conditional generator (``G(z, y)``).

    Only one batch of images exists at a time. Each batch costs one device-to-host copy (of
    uint8, a quarter of float32) and no other synchronisation. ``amp``: bf16 autocast, as
    ``ganctl.device.use_amp`` decides it.
    """
    for start in range(0, latents.shape[0], batch_size):
        inputs = [latents[start : start + batch_size].to(device, non_blocking=True)]
        if labels is not None:
            inputs.append(labels[start : start + batch_size].to(device, non_blocking=True))
        # inference mode only around the work: the consumer runs between yields, outside it
        with torch.inference_mode(), autocast(torch.device(device), amp):
            images = generator(*inputs)
            batch = to_uint8(images.float(), pixel_range)
        yield batch


def generate_all(
    generator: torch.nn.Module, latents: torch.Tensor, pixel_range: Sequence[float], **options
) -> torch.Tensor:
    """All the images of ``latents`` in one uint8 tensor (for pictures small enough to hold whole)."""
    return torch.cat(list(generate(generator, latents, pixel_range, **options)))
