"""Generated images for an evaluation: made, measured and dropped one batch at a time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from ganctl.metrics.features import RESIZE, Progress, SideResult, extract, feature_extractor, no_progress
from ganctl.metrics.inception_weights import InceptionWeights, Log


def generated_features(
    generator,
    pixel_range: Sequence[float],
    latent_dim: int,
    *,
    weights: InceptionWeights,
    n: int,
    device: Any,
    batch_size: int,
    seed: int,
    logits: bool = False,
    save_images: Path | None = None,
    compile: bool = False,
    progress: Progress = no_progress,
    log: Log | None = None,
    labels=None,
    part: slice | None = None,
) -> SideResult:
    """Features of ``n`` images from ``generator`` (z ~ N(0, I) drawn on the CPU from ``seed``);
    ``labels``: the ``n`` classes of a conditional generator's images; with ``part``, of those
    images only (the share of one of several processes measuring the n together)."""
    import torch

    from ganctl.data.images import individual_names, save_each
    from ganctl.latent.latents import random_latents
    from ganctl.latent.sampling import generate

    device = torch.device(device)
    latents = random_latents(n, latent_dim, seed)
    names = individual_names(n)
    own_labels = labels
    if part is not None:
        latents, names = latents[part], names[part]
        own_labels = None if labels is None else labels[part]
    extractor = feature_extractor(weights, device, logits=logits, compile=compile, log=log)
    was_training = generator.training
    generator.eval()  # batch norm in inference mode while measuring
    start = time.perf_counter()
    try:
        batches = generate(generator, latents, pixel_range, device=device, batch_size=batch_size, labels=own_labels)
        if save_images is not None:
            batches = save_each(batches, save_images, names)
        features, lg = extract(batches, extractor, len(latents), label="Generating and measuring", progress=progress)
    finally:
        generator.train(was_training)
    seconds = time.perf_counter() - start
    protocol = {
        "source": "generator",
        "n": n,
        "seed": seed,
        "latents": f"z ~ N(0, I), {latent_dim}-d, drawn on the CPU with torch.Generator().manual_seed({seed})",
        "to_uint8": f"pixel range [{pixel_range[0]:g}, {pixel_range[1]:g}] → round to 0..255",
        "resize": RESIZE,
        "device": str(device),
    }
    if labels is not None:
        counts = torch.bincount(labels).tolist()
        protocol["labels"] = f"class by class, images per class {counts} (the reference's class frequencies)"
    return SideResult(features=features, logits=lg, protocol=protocol, seconds=seconds)


def output_shape(generator, latent_dim: int, device: Any, conditional: bool = False) -> tuple[int, int, int]:
    """``(channels, height, width)`` of the generator's images, from one latent (of class 0) in eval mode."""
    import torch

    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            z = torch.zeros(1, latent_dim, device=device)
            shape = (generator(z, torch.zeros(1, dtype=torch.long, device=device)) if conditional else generator(z)).shape
    finally:
        generator.train(was_training)
    return int(shape[1]), int(shape[2]), int(shape[3])
