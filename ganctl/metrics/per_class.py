"""Intra-class FID (``eval --per-class``): the FID within each class, and their mean.

What conditional-GAN papers report beside the FID of all images (Miyato & Koyama 2018): the
reference images of class c against the generated images of class c, for every class. The
features are those the overall comparison already measured, split by label: no image is
made or measured twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ganctl.metrics.statistics import check_fid_sample_count, fid_from_features


def intra_class_fid(
    reference_features: np.ndarray,
    reference_labels: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    allow_small_n: bool = False,
    fid_method: str = "sqrtm",
) -> dict[str, Any]:
    """``{"intra_fid": mean, "fid_per_class": {name: fid}, "n_per_class": {name: [reference, generated]}}``."""
    per_class: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for c, name in enumerate(class_names):
        real, fake = reference_features[reference_labels == c], features[labels == c]
        check_fid_sample_count(min(len(real), len(fake)), f"class '{name}' (raise --n, or --allow-small-n)", allow_small_n)
        if min(len(real), len(fake)) < 2:
            continue  # no covariance from one image, even with --allow-small-n
        per_class[name] = fid_from_features(real, fake, method=fid_method)
        counts[name] = [len(real), len(fake)]
    return {"intra_fid": float(np.mean(list(per_class.values()))) if per_class else float("nan"), "fid_per_class": per_class, "n_per_class": counts}
