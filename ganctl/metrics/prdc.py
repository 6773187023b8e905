"""Precision, recall, density and coverage on Inception features (NumPy only).

- precision (Kynkäänniemi et al. 2019): the share of generated images that fall inside the real
  manifold, the union of balls around each real feature reaching its k-th nearest real neighbour.
  Fidelity: how many generated images look like some real image.
- recall: the share of real images inside the generated manifold (the same balls around the
  generated features). Diversity: how much of the real data the generator reaches.
- density (Naeem et al. 2020): how many real balls contain each generated feature, over k,
  averaged; about 1 when the two sets are alike, above 1 where generated images crowd dense
  real regions. Unlike precision it is not fooled by real outliers with huge balls.
- coverage: the share of real images whose ball holds at least one generated feature; a
  recall that real outliers cannot inflate.

As in the published ``prdc`` package (Naeem et al.'s code): Euclidean distances, the k-th
nearest neighbour excluding the point itself, strict inequalities, k = 5. Distances are
computed in float64, a block of rows at a time, so 10,000 × 10,000 never holds the whole matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganctl.errors import GanctlError

NEAREST_K = 5
MAX_IMAGES = 10_000  # per side: the papers' count; the cost grows with its square
BLOCK = 2048


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b``, float64."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def _kth_neighbour_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point (the point itself is the 0th)."""
    radii = np.empty(len(features))
    for start in range(0, len(features), BLOCK):
        block = _distances(features[start : start + BLOCK], features)
        radii[start : start + BLOCK] = np.partition(block, k, axis=1)[:, k]
    return radii


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of ``fake`` against ``real`` (rows are features)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"mismatched features: {real.shape} vs {fake.shape}")
    for name, features in (("reference", real), ("evaluated", fake)):
        if len(features) <= k:
            raise GanctlError(f"precision/recall with k = {k} need more than {k} images on each side; the {name} side has {len(features)}")
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    inside_real = np.zeros(len(fake), bool)  # fake j within some real ball
    real_balls_holding = np.zeros(len(fake))  # how many real balls hold fake j
    inside_fake = np.zeros(len(real), bool)  # real i within some fake ball
    covered = np.zeros(len(real), bool)  # real i's ball holds some fake
    for start in range(0, len(real), BLOCK):
        d = _distances(real[start : start + BLOCK], fake)  # (block of reals, fakes)
        radii = real_radii[start : start + BLOCK, None]
        within = d < radii
        inside_real |= within.any(axis=0)
        real_balls_holding += within.sum(axis=0)
        inside_fake[start : start + BLOCK] = (d < fake_radii[None, :]).any(axis=1)
        covered[start : start + BLOCK] = d.min(axis=1) < radii[:, 0]
    return {
        "precision": float(inside_real.mean()),
        "recall": float(inside_fake.mean()),
        "density": float(real_balls_holding.mean() / k),
        "coverage": float(covered.mean()),
    }


def prdc_of_sides(real: np.ndarray, fake: np.ndarray, seed: int = 0, max_images: int = MAX_IMAGES) -> dict[str, Any]:
    """PR/DC of up to ``max_images`` features a side (a seeded random subset when there are more), with its protocol."""
    rng = np.random.default_rng(seed)
    subset = lambda f: f if len(f) <= max_images else f[np.sort(rng.choice(len(f), max_images, replace=False))]  # noqa: E731
    real_used, fake_used = subset(real), subset(fake)
    result: dict[str, Any] = prdc(real_used, fake_used)
    result["prdc_protocol"] = (
        f"k = {NEAREST_K} nearest neighbours, Euclidean on Inception pool3 features, {len(real_used):,} reference and "
        f"{len(fake_used):,} evaluated images" + (f" (random subsets, seed {seed})" if len(real) > max_images or len(fake) > max_images else "")
    )
    return result
