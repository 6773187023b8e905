"""Reference statistics: Inception features of a dataset split or an image folder, cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganctl.environment import cache_home
from ganctl.errors import GanctlError
from ganctl.metrics.features import RESIZE, Progress, SideResult, extract, feature_extractor, no_progress, tensor_batches
from ganctl.metrics.inception_weights import InceptionWeights, Log, resolve_weights
from ganctl.metrics.statistics import FEATURE_DIM, feature_statistics

DEFAULT_N = 50_000  # the usual protocol: 50k images (capped at the split's size)
PROTOCOL_VERSION = "1"  # bump when anything that changes cached features changes
ENV_CACHE_DIR = "GANCTL_CACHE_DIR"


@dataclass
class ReferenceStats:
    """Features and statistics of a set of real images, with the protocol that made them."""

    features: np.ndarray  # (n, 2048) float32
    mu: np.ndarray  # (2048,) float64
    sigma: np.ndarray  # (2048, 2048) float64
    protocol: dict[str, Any]  # dataset, split, n, image_size, channels, resize, weights...
    weights: InceptionWeights
    cached: bool = False  # read from the cache rather than computed
    cache_file: Path | None = None

    @property
    def n(self) -> int:
        return len(self.features)

    @property
    def image_size(self) -> int:
        return int(self.protocol["image_size"])

    @property
    def channels(self) -> int:
        return int(self.protocol["channels"])


def default_cache_dir() -> Path:
    """$GANCTL_CACHE_DIR/fid-stats, else $XDG_CACHE_HOME/ganctl/fid-stats, else ~/.cache/ganctl/fid-stats."""
    if explicit := os.environ.get(ENV_CACHE_DIR):
        return Path(explicit).expanduser() / "fid-stats"
    return cache_home() / "fid-stats"


def reference_stats(
    dataset: str,
    split: str,
    image_size: int,
    channels: int,
    n: int | None,
    data_dir: Path | None,
    weights: InceptionWeights | Path | str | None = None,
    device: Any = "cpu",
    *,
    batch_size: int = 100,
    cache: bool = True,
    cache_dir: Path | None = None,
    download: bool = True,
    compile: bool = False,
    progress: Progress = no_progress,
    log: Log | None = None,
) -> ReferenceStats:
    """Inception features and statistics of the first ``n`` images of a dataset split, cached.

    ``n=None`` takes min(50,000, the split's size); an ``n`` larger than the split is an
    error. Images are loaded by ``ganctl.data.load_images`` at ``image_size`` × ``channels``
    (the generator's format), then resized to 299×299 by the Inception pipeline. The cache
    key is (dataset, split, image size, channels, n, weights sha256, protocol version); a
    folder's key also holds its file count, total size and newest modification time.
    """
    weights = resolve_weights(weights, download=download, log=log)
    key = _cache_key(dataset, split, image_size, channels, n, weights)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = _cache_stem(dataset, split, image_size, channels, n, key)
    if cache:
        found = _read_cache(folder / f"{stem}.safetensors", folder / f"{stem}.json", key, weights)
        if found is not None:
            return found

    from ganctl.data import load_images

    images = load_images(
        dataset, data_dir=data_dir, split=split, image_size=image_size, channels=channels,
        download=download, limit=n, log=log,
    )  # fmt: skip
    where = _describe_source(dataset, split)
    if n is not None and n > len(images):
        raise GanctlError(f"n = {n:,} is more than {where} holds ({len(images):,} images); use n ≤ {len(images):,}")
    used = min(len(images), DEFAULT_N) if n is None else n
    images = images[:used]
    extractor = feature_extractor(weights, device, compile=compile, log=log)
    start = time.perf_counter()
    features, _ = extract(tensor_batches(images, batch_size), extractor, used, label=f"Features of {where}", progress=progress)
    seconds = time.perf_counter() - start
    mu, sigma = feature_statistics(features)
    protocol = {
        "dataset": dataset,
        "split": None if dataset.startswith("folder:") else split,
        "n": used,
        "n_requested": n,
        "image_size": image_size,
        "channels": channels,
        "which": f"the first {used:,} images",
        "resize": f"loaded at {image_size}×{image_size}×{channels} by ganctl.data; {RESIZE}"
        + ("; gray repeated to RGB" if channels == 1 else ""),
        "inception": weights.describe(),
        "feature_seconds": round(seconds, 2),
        "device": str(extractor.device),
        "protocol_version": PROTOCOL_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    stats = ReferenceStats(features=features, mu=mu, sigma=sigma, protocol=protocol, weights=weights)
    if cache:
        stats.cache_file = _write_cache(folder, stem, key, stats, log)
    return stats


def _describe_source(dataset: str, split: str) -> str:
    return dataset if dataset.startswith("folder:") else f"{dataset} {split}"


def _cache_key(dataset: str, split: str, image_size: int, channels: int, n: int | None, weights: InceptionWeights) -> str:
    spec: dict[str, Any] = {
        "dataset": dataset, "split": split, "image_size": image_size, "channels": channels,
        "n": n if n is not None else f"all up to {DEFAULT_N}", "weights_sha256": weights.sha256,
        "protocol_version": PROTOCOL_VERSION,
    }  # fmt: skip
    if dataset.startswith("folder:"):
        spec["folder"] = _folder_fingerprint(Path(dataset[len("folder:") :]).expanduser())
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def _folder_fingerprint(path: Path) -> dict[str, Any]:
    """Enough to notice that a folder's images changed, without reading them."""
    from ganctl.data import image_files

    path = path.resolve()
    if not path.is_dir():
        return {"path": str(path)}
    stats = [p.stat() for p in image_files(path)]
    return {
        "path": str(path),
        "files": len(stats),
        "bytes": sum(s.st_size for s in stats),
        "newest": max((s.st_mtime_ns for s in stats), default=0),
    }


def _cache_stem(dataset: str, split: str, image_size: int, channels: int, n: int | None, key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[-60:]
    where = "folder" if dataset.startswith("folder:") else split
    return f"{name}-{where}-{image_size}px{channels}c-n{n if n is not None else 'all'}-{key}"


def _read_cache(tensors: Path, meta: Path, key: str, weights: InceptionWeights) -> ReferenceStats | None:
    if not (tensors.is_file() and meta.is_file()):
        return None
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        protocol = json.loads(meta.read_text())
        data = load_file(str(tensors))
        features, mu, sigma = data["features"], data["mu"], data["sigma"]
    except (OSError, ValueError, KeyError, SafetensorError):
        return None  # a damaged cache entry is recomputed and overwritten
    if protocol.get("cache_key") != key or features.shape[1:] != (FEATURE_DIM,) or sigma.shape != (FEATURE_DIM, FEATURE_DIM):
        return None
    return ReferenceStats(features=features, mu=mu, sigma=sigma, protocol=protocol, weights=weights, cached=True, cache_file=tensors)


def _write_cache(folder: Path, stem: str, key: str, stats: ReferenceStats, log: Log | None) -> Path | None:
    from safetensors.numpy import save

    from ganctl.fileio import atomic_write_bytes

    stats.protocol["cache_key"] = key
    tensors = folder / f"{stem}.safetensors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = {"features": stats.features, "mu": stats.mu, "sigma": stats.sigma}
        atomic_write_bytes(tensors, save(data, metadata={"format": "ganctl-fid-stats", "cache_key": key}))
        # the JSON last: an entry counts only once both files are there
        atomic_write_bytes(folder / f"{stem}.json", (json.dumps(stats.protocol, indent=2) + "\n").encode())
    except OSError as exc:
        if log:
            log(f"could not cache the reference statistics in {folder} ({exc.strerror or exc}); continuing")
        return None
    return tensors



def side_from_stats(stats: ReferenceStats) -> SideResult:
    """Dataset or folder statistics as the evaluated side of a comparison."""
    protocol = {k: v for k, v in stats.protocol.items() if k not in ("cache_key", "created")}
    return SideResult(
        features=stats.features, logits=None, protocol={"source": "images", **protocol, "cached": stats.cached},
        seconds=0.0 if stats.cached else float(stats.protocol.get("feature_seconds", 0.0)), mu=stats.mu, sigma=stats.sigma,
    )  # fmt: skip
