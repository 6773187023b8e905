"""FID, KID and IS between a reference and an evaluated side, with the protocol of both."""

from __future__ import annotations

import time
from typing import Any, Sequence

from ganctl.conditional import labels_for
from ganctl.errors import GanctlError
from ganctl.metrics.features import Progress, SideResult, no_progress
from ganctl.metrics.generated import generated_features, output_shape
from ganctl.metrics.reference import ReferenceStats
from ganctl.metrics.statistics import (
    IS_SPLITS, KID_SUBSETS, check_fid_sample_count, feature_statistics, frechet_distance, inception_score,
    kid_from_features,
)


def compare(
    reference: ReferenceStats,
    side: SideResult,
    *,
    fid: bool = True,
    kid: bool = True,
    allow_small_n: bool = False,
    seed: int = 0,
    fid_method: str = "sqrtm",
) -> dict[str, Any]:
    """FID and KID between a reference and a measured side, with the protocol of both."""
    n_fake = len(side.features)
    if fid:
        check_fid_sample_count(reference.n, "the reference", allow_small_n)
        check_fid_sample_count(n_fake, "the evaluated side", allow_small_n)
    result: dict[str, Any] = {}
    start = time.perf_counter()
    if fid:
        mu, sigma = (side.mu, side.sigma) if side.mu is not None else feature_statistics(side.features)
        result["fid"] = frechet_distance(reference.mu, reference.sigma, mu, sigma, method=fid_method)
    if kid:
        mean, std, subset = kid_from_features(reference.features, side.features, seed=seed)
        result.update(kid_mean=mean, kid_std=std)
    if side.logits is not None:
        result["is_mean"], result["is_std"] = inception_score(side.logits, seed=seed)
    result["protocol"] = {
        "reference": {k: v for k, v in reference.protocol.items() if k not in ("cache_key", "created")},
        "evaluated": side.protocol,
        "n_reference": reference.n,
        "n_evaluated": n_fake,
        "inception": reference.weights.describe(),
        "features": "Inception-v3 pool3 (2048), torch-fidelity FeatureExtractorInceptionV3",
        "fid": f"Fréchet distance of float64 mean/covariance, {fid_method}" if fid else None,
        "kid": f"unbiased MMD², kernel (x·y/2048 + 1)^3, {KID_SUBSETS} subsets of {subset}, seed {seed}" if kid else None,
        "inception_score": f"{IS_SPLITS} splits of the evaluated images, logits without fc bias" if side.logits is not None else None,
        "seed": seed,
        "reference_cached": reference.cached,
    }
    result["seconds"] = {"features": round(side.seconds, 2), "metrics": round(time.perf_counter() - start, 2)}
    return result


def evaluate_generator(
    generator,
    pixel_range: Sequence[float],
    latent_dim: int,
    *,
    reference: ReferenceStats,
    n: int,
    device: Any,
    batch_size: int = 100,
    seed: int = 0,
    kid: bool = True,
    fid_method: str = "sqrtm",
    allow_small_n: bool = False,
    compile: bool = False,
    progress: Progress = no_progress,
    class_weights=None,
) -> dict[str, Any]:
    """FID (and KID mean/std) of ``n`` generated images against ``reference``, with the protocol.

    A conditional generator (``class_weights``: a weight per class) makes its images class by
    class, as many of each as ``ganctl.conditional.allocate`` gives the weights.

    For the trainer: the generator is switched to eval mode for the measurement and put back
    as it was. The Inception network is built once per process and device. Returns
    ``{"fid", "kid_mean", "kid_std", "protocol", "seconds"}``. ``fid_method="eigh"`` is the
    faster equivalent of sqrtm (see ``frechet_distance``) for frequent evaluations.
    """
    if n < 2:
        raise GanctlError(f"n must be at least 2, not {n}")
    check_fid_sample_count(n, "the generated side", allow_small_n)
    check_fid_sample_count(reference.n, "the reference", allow_small_n)
    labels = None if class_weights is None else labels_for(n, class_weights)
    channels, height, width = output_shape(generator, latent_dim, device, conditional=labels is not None)
    if (channels, height) != (reference.channels, reference.image_size) or height != width:
        raise GanctlError(
            f"the generator makes {height}×{width}×{channels} images but the reference statistics are of "
            f"{reference.image_size}×{reference.image_size}×{reference.channels} images"
        )
    side = generated_features(
        generator, pixel_range, latent_dim, weights=reference.weights, n=n, device=device,
        batch_size=batch_size, seed=seed, compile=compile, progress=progress, labels=labels,
    )  # fmt: skip
    return compare(reference, side, kid=kid, allow_small_n=allow_small_n, seed=seed, fid_method=fid_method)

