"""FID and KID: Inception features, their statistics, and the distances between them.

The logic behind ``ganctl eval``, usable without the command line (the trainer calls it):

    reference = reference_stats("cifar10", "train", 32, 3, n=10_000, data_dir=None, weights=None, device=device)
    result = evaluate_generator(G, info.pixel_range, info.latent_dim, reference=reference, n=10_000,
                                device=device, batch_size=100, seed=0)
    result["fid"], result["kid_mean"], result["kid_std"], result["protocol"]

Features come from torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF 2015-12-05
Inception that FID is defined on, with its TF1-compatible bilinear resize to 299×299 and its
normalisation), pool3, 2048 values per image. Real-data features and statistics are cached
on disk; generated images are made, measured and dropped one batch at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Sequence

import numpy as np

from ganctl.errors import GanctlError

# torch is imported inside functions: ``import ganctl.metrics`` stays cheap for the CLI.

FEATURE_DIM = 2048
MIN_FID_SAMPLES = FEATURE_DIM  # below this the 2048×2048 covariance is singular
DEFAULT_N = 50_000  # the usual protocol: 50k generated images (capped at the reference's size)
KID_SUBSETS = 100  # Bińkowski et al. and torch-fidelity
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
IS_SPLITS = 10
INCEPTION_SIZE = 299
CPU_CHUNK = 16  # images per Inception forward on the CPU (see InceptionFeatures)
CUDA_CHUNK = 250  # and on a GPU
PROTOCOL_VERSION = "1"  # bump when anything that changes cached features changes

ENV_WEIGHTS = "GANCTL_INCEPTION_WEIGHTS"
ENV_CACHE_DIR = "GANCTL_CACHE_DIR"
WEIGHT_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
RESIZE = "uint8 → float, bilinear to 299×299 (TF1-compatible, torch-fidelity), (x - 128) / 128"

# Progress reporting without depending on a UI: ``progress(label, total)`` is a context
# manager that yields ``advance(k)``. The CLI passes a rich progress bar.
Advance = Callable[[int], None]
Progress = Callable[[str, int], ContextManager[Advance]]
Log = Callable[[str], None]


@contextlib.contextmanager
def no_progress(label: str, total: int) -> Iterator[Advance]:
    yield lambda k: None


# ----------------------------------------------------------------------------------------
# Statistics and distances (pure NumPy/SciPy: no network, no weights)


def feature_statistics(features: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov(rowvar=False)``, n - 1) in float64.

    Accumulated in chunks, so 50,000 float32 features never become an 800 MB float64 copy.
    """
    features = np.asarray(features)
    n, d = features.shape
    if n < 2:
        raise GanctlError(f"statistics need at least 2 images, not {n}")
    mu = features.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, chunk):
        centred = features[start : start + chunk].astype(np.float64) - mu
        scatter += centred.T @ centred
    return mu, scatter / (n - 1)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, method: str = "sqrtm"
) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), in float64.

    ``method="sqrtm"`` is the standard computation (pytorch-fid, the TF original):
    ``scipy.linalg.sqrtm`` of Σ1 Σ2, retried with ε·I added when it is not finite, and a
    tiny imaginary part (rounding) discarded. ``method="eigh"`` gets the same trace from two
    symmetric eigendecompositions, Tr((Σ1 Σ2)^½) = Σ √λ(Σ1^½ Σ2 Σ1^½); it is several times
    faster (seconds instead of a minute on two CPU cores) and agrees to about 1e-9 relative.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: {mu1.shape}, {sigma1.shape} vs {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    if method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(sigma1, sigma2)
    elif method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"unknown method {method!r}; use 'sqrtm' or 'eigh'")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    import warnings

    import scipy.linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular products are handled below
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            # nudge both covariances off singularity, as pytorch-fid does
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # The square root of a product of PSD matrices has a real trace; rounding leaves tiny
        # imaginary parts, which pytorch-fid and TTUR discard when the diagonal's are below 1e-3.
        # Larger ones come from (near-)singular covariances (few images): there the symmetric
        # computation is the reliable one, rather than failing as those implementations do.
        if np.abs(np.diagonal(covmean).imag).max() > 1e-3:
            return _trace_sqrt_product_eigh(sigma1, sigma2)
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)  # symmetric up to rounding
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def fid_from_features(features1: np.ndarray, features2: np.ndarray, *, method: str = "sqrtm") -> float:
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2), method=method)


def kid_from_features(
    features1: np.ndarray,
    features2: np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Kernel Inception Distance: ``(mean, std, subset size used)`` over random subsets.

    The unbiased MMD² estimate with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³
    (Bińkowski et al. 2018), on ``subsets`` pairs of subsets of min(``subset_size``, n1, n2)
    images drawn without replacement; the std is over subsets (numpy's, ddof 0). Subsets are
    drawn with ``np.random.RandomState(seed).choice`` in the same order as torch-fidelity,
    so the same seed gives the same subsets there.
    """
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise GanctlError(f"KID needs at least 2 images on each side, not {len(f1)} and {len(f2)}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std()), m


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** KID_DEGREE


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    # within-set sums leave out the diagonal (a point compared with itself)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = 0) -> tuple[float, float]:
    """exp(E KL(p(y|x) ‖ p(y))) per split of shuffled images: ``(mean, std)`` over splits."""
    logits = np.asarray(logits, dtype=np.float64)
    logits = logits[np.random.RandomState(seed).permutation(len(logits))]
    log_p = logits - _logsumexp(logits)
    scores = []
    for part in np.array_split(log_p, splits):
        log_marginal = np.log(np.exp(part).mean(axis=0, keepdims=True))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1).mean()
        scores.append(math.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def check_fid_sample_count(n: int, what: str, allow_small_n: bool = False) -> None:
    """Refuse FID below 2,048 images per side unless asked: the covariance would be singular."""
    if n < MIN_FID_SAMPLES and not allow_small_n:
        raise GanctlError(
            f"FID needs at least {MIN_FID_SAMPLES:,} images per side, not {n:,} ({what}): with fewer than "
            f"{FEATURE_DIM} images the {FEATURE_DIM}×{FEATURE_DIM} covariance is singular and FID is strongly biased; "
            "use a larger n, KID alone (--no-fid), or --allow-small-n to compute it anyway"
        )


# ----------------------------------------------------------------------------------------
# The Inception weights: finding, checking, downloading


@dataclass(frozen=True)
class InceptionWeights:
    """A checked Inception weights file."""

    path: Path
    sha256: str
    classifier_zeroed: bool  # fc is all zeros: FID/KID fine, Inception Score meaningless

    @property
    def official(self) -> bool:
        return self.sha256 == OFFICIAL_SHA256

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "official": self.official,
            "classifier_zeroed": self.classifier_zeroed,
        }


def default_weights_dirs() -> list[Path]:
    """Where the weights are looked for: torch hub's checkpoint folder ($TORCH_HOME/hub/checkpoints)."""
    import torch.hub

    return [Path(torch.hub.get_dir()) / "checkpoints"]


def find_inception_weights(explicit: Path | str | None = None, *, download: bool = True, log: Log | None = None) -> Path:
    """The weights file: ``explicit``, else $GANCTL_INCEPTION_WEIGHTS, else torch hub's cache, else a download."""
    if explicit is not None or os.environ.get(ENV_WEIGHTS):
        path = Path(explicit if explicit is not None else os.environ[ENV_WEIGHTS]).expanduser()
        source = "--inception" if explicit is not None else f"${ENV_WEIGHTS}"
        if not path.is_file():
            raise GanctlError(f"Inception weights file {path} (from {source}) does not exist")
        return path
    folders = default_weights_dirs()
    for folder in folders:
        for name in WEIGHT_NAMES:
            if (folder / name).is_file():
                return folder / name
    target = folders[0] / WEIGHT_NAMES[1]
    if download and _may_download():
        return _download_weights(target, log)
    raise GanctlError(
        f"the FID Inception weights are missing: put {WEIGHT_NAMES[0]} (or {WEIGHT_NAMES[1]}, from "
        f"{WEIGHTS_URL}) into {folders[0]}/, or pass --inception FILE / set ${ENV_WEIGHTS}"
    )


def _may_download() -> bool:
    """Not when $GANCTL_OFFLINE says so, nor when GitHub does not answer within 3 s (fail fast)."""
    import socket

    from ganctl.data import offline

    if offline():
        return False
    try:
        socket.create_connection(("github.com", 443), timeout=3).close()
    except OSError:
        return False
    return True


def _download_weights(target: Path, log: Log | None) -> Path:
    import socket

    import torch.hub

    if log:
        log(f"Downloading the FID Inception weights (96 MB) to {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a stalled transfer fails instead of hanging
    try:
        torch.hub.download_url_to_file(WEIGHTS_URL, str(target), hash_prefix=OFFICIAL_SHA256, progress=log is not None)
    except Exception as exc:  # URLError, a hash mismatch, a full disk...
        raise GanctlError(
            f"could not download the FID Inception weights ({exc}); put {WEIGHT_NAMES[1]} into {target.parent}/ by hand"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_inception_weights(path: Path) -> tuple[InceptionWeights, dict]:
    """Load ``path`` safely (``weights_only=True``) and check it is the FID Inception state dict."""
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a zip/pickle, a pickle with code in it, truncated...
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise GanctlError(f"{path} is not an Inception weights file: PyTorch cannot load it as plain tensors ({detail})") from None
    expected = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1), "fc.weight": (1008, 2048)}
    if not isinstance(state, dict) or any(
        not isinstance(state.get(k), torch.Tensor) or tuple(state[k].shape) != shape for k, shape in expected.items()
    ):
        raise GanctlError(
            f"{path} is not the FID Inception network's weights (expected the pt_inception-2015-12-05 layout: "
            "Conv2d_1a_3x3 ... Mixed_7c, fc 1008×2048)"
        )
    zeroed = not bool(state["fc.weight"].any()) and not bool(state.get("fc.bias", torch.zeros(1)).any())
    return InceptionWeights(path=path, sha256=file_sha256(path), classifier_zeroed=zeroed), state


def resolve_weights(
    weights: InceptionWeights | Path | str | None, *, download: bool = True, log: Log | None = None
) -> InceptionWeights:
    """Anything that names the weights → a checked ``InceptionWeights`` (checked once per file)."""
    if isinstance(weights, InceptionWeights):
        return weights
    path = find_inception_weights(weights, download=download, log=log).resolve()
    key = (str(path), path.stat().st_mtime_ns, path.stat().st_size)
    with _lock:
        if key not in _checked:
            _checked[key] = check_inception_weights(path)[0]
        return _checked[key]


_lock = threading.Lock()
_checked: dict[tuple, InceptionWeights] = {}
_extractors: dict[tuple, "InceptionFeatures"] = {}


# ----------------------------------------------------------------------------------------
# Feature extraction


class InceptionFeatures:
    """uint8 images (B, 1 or 3, H, W) → 2048-d pool3 features (and logits for IS), on one device.

    ``compile=True`` runs the network through ``torch.compile``: about 1.4x faster on the
    CPU here (measured, same features to ~1e-6) after a compilation of 10-30 s, so it pays
    off from a few thousand images. If compiling fails (no C++ compiler...) it falls back
    to eager mode and says so through ``log``.
    """

    def __init__(
        self, weights: InceptionWeights, device: Any = "cpu", *, logits: bool = False,
        compile: bool = False, log: Log | None = None,
    ):  # fmt: skip
        import torch

        self.weights = weights
        self.device = torch.device(device)
        self.logits = logits
        if logits and weights.classifier_zeroed:
            raise GanctlError(inception_score_refusal(weights))
        features = ["2048", "logits_unbiased"] if logits else ["2048"]
        # channels_last: 1.4-1.8x faster on the CPU, same features to ~1e-6 relative
        self.model = _build_extractor(weights.path, features).to(self.device, memory_format=torch.channels_last)
        # On the CPU, 16 images at a time keep the activations in cache: ~24 img/s on two
        # cores against ~19 at 64 (measured). Compiled, every chunk has the same size (the
        # last one is padded) so that it compiles once.
        self.chunk = CPU_CHUNK if self.device.type == "cpu" else CUDA_CHUNK
        self.compiled = torch.compile(self.model) if compile else None
        self.log = log

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (B, 2048) float32 and, with ``logits``, logits (B, 1008), as NumPy arrays."""
        import torch

        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images (B, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)  # gray → RGB by repetition
        outs = []
        with torch.inference_mode(), _exact_float32(self.device):
            for start in range(0, len(images), self.chunk):
                part = images[start : start + self.chunk].contiguous(memory_format=torch.channels_last)
                outs.append(self._forward(part))
        features = torch.cat([o[0] for o in outs]).float().cpu().numpy()
        return features, (torch.cat([o[1] for o in outs]).float().cpu().numpy() if self.logits else None)

    def _forward(self, part):
        if self.compiled is None:
            return self.model(part)
        import torch

        n = len(part)
        padded = torch.cat([part, part[:1].expand(self.chunk - n, -1, -1, -1)]) if n < self.chunk else part
        try:
            return tuple(o[:n] for o in self.compiled(padded.contiguous(memory_format=torch.channels_last)))
        except Exception as exc:  # inductor needs a working C++ (or CUDA) toolchain
            self.compiled = None
            if self.log:
                self.log(f"torch.compile failed ({type(exc).__name__}); measuring in eager mode")
            return self.model(part)


def inception_score_refusal(weights: InceptionWeights) -> str:
    return (
        f"Inception Score needs the Inception classifier, but the fc layer in {weights.path.name} is all zeros "
        f"(it is good for FID and KID only); use the official {WEIGHT_NAMES[1]} (sha256 {OFFICIAL_SHA256[:8]}...) for IS"
    )


_env_lock = threading.Lock()


def _build_extractor(path: Path, features: list[str]):
    """torch-fidelity's FID Inception, loaded with ``weights_only=True``.

    torch-fidelity calls ``torch.load(path, weights_only=False)``. PyTorch's documented
    switch TORCH_FORCE_WEIGHTS_ONLY_LOAD overrides that, so the file is never unpickled
    with arbitrary code even though the file was already checked by ``check_inception_weights``.
    """
    with _env_lock:
        saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            return FeatureExtractorInceptionV3("inception-v3-compat", features, feature_extractor_weights_path=str(path))
        except ImportError:
            raise GanctlError("FID needs torch-fidelity: pip install torch-fidelity") from None
        except Exception as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise GanctlError(f"{path} could not be loaded into the FID Inception network ({detail})") from None
        finally:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
            os.environ.update({k: v for k, v in saved.items() if v is not None})


@contextlib.contextmanager
def _exact_float32(device) -> Iterator[None]:
    """No TF32 on CUDA while measuring: FID is defined on float32 Inception features."""
    if device.type != "cuda":
        yield
        return
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def feature_extractor(
    weights: InceptionWeights, device: Any, *, logits: bool = False, compile: bool = False, log: Log | None = None
) -> InceptionFeatures:
    """One extractor per (weights, device, logits, compile), kept for the process: the trainer evaluates often."""
    import torch

    key = (str(weights.path), weights.sha256, str(torch.device(device)), logits, compile)
    with _lock:
        if key not in _extractors:
            _extractors[key] = InceptionFeatures(weights, device, logits=logits, compile=compile, log=log)
        return _extractors[key]


def extract(
    batches: Iterable,
    extractor: InceptionFeatures,
    total: int,
    *,
    label: str = "Inception features",
    progress: Progress = no_progress,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run uint8 batches through ``extractor``; features ``(total, 2048)`` float32 (and logits)."""
    features = np.empty((total, FEATURE_DIM), dtype=np.float32)
    logits = np.empty((total, 1008), dtype=np.float32) if extractor.logits else None
    done = 0
    with progress(label, total) as advance:
        for batch in batches:
            f, lg = extractor(batch)
            if done + len(f) > total:
                raise ValueError(f"more images than announced ({total})")
            features[done : done + len(f)] = f
            if logits is not None:
                logits[done : done + len(f)] = lg
            done += len(f)
            advance(len(f))
    if done != total:
        raise ValueError(f"{done} images instead of the announced {total}")
    return features, logits


def tensor_batches(images, batch_size: int) -> Iterator:
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


# ----------------------------------------------------------------------------------------
# Reference statistics (cached)


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
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "ganctl" / "fid-stats"


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


# ----------------------------------------------------------------------------------------
# Evaluation


@dataclass
class SideResult:
    """The measured side of an evaluation (generated or image folder/dataset)."""

    features: np.ndarray
    logits: np.ndarray | None
    protocol: dict[str, Any]
    seconds: float = 0.0
    mu: np.ndarray | None = None  # statistics, when already known
    sigma: np.ndarray | None = None


def side_from_stats(stats: ReferenceStats) -> SideResult:
    """Dataset or folder statistics as the evaluated side of a comparison."""
    protocol = {k: v for k, v in stats.protocol.items() if k not in ("cache_key", "created")}
    return SideResult(
        features=stats.features, logits=None, protocol={"source": "images", **protocol, "cached": stats.cached},
        seconds=0.0 if stats.cached else float(stats.protocol.get("feature_seconds", 0.0)), mu=stats.mu, sigma=stats.sigma,
    )  # fmt: skip


def generated_batches(
    generator,
    latents,
    pixel_range: Sequence[float],
    *,
    device: Any,
    batch_size: int,
    save_to: Path | None = None,
) -> Iterator:
    """uint8 batches from ``generator``, made one batch at a time on ``device`` (optionally saved as PNGs)."""
    import torch

    from ganctl.images import save_png, to_pil
    from ganctl.images import individual_names

    low, high = float(pixel_range[0]), float(pixel_range[1])
    names = individual_names(len(latents)) if save_to is not None else []
    for start in range(0, len(latents), batch_size):
        z = latents[start : start + batch_size].to(device, non_blocking=True)
        with torch.inference_mode():
            images = generator(z).float()
            batch = ((images - low) * (255.0 / (high - low))).round_().clamp_(0, 255).to(torch.uint8)
        if save_to is not None:
            for i, image in enumerate(batch.cpu()):
                save_png(to_pil(image), save_to / names[start + i], durable=False)
        yield batch


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
) -> SideResult:
    """Features of ``n`` images from ``generator`` (z ~ N(0, I) drawn on the CPU from ``seed``)."""
    import torch

    from ganctl.latents import random_latents

    device = torch.device(device)
    latents = random_latents(n, latent_dim, seed)
    extractor = feature_extractor(weights, device, logits=logits, compile=compile, log=log)
    was_training = generator.training
    generator.eval()  # batch norm in inference mode while measuring
    start = time.perf_counter()
    try:
        batches = generated_batches(generator, latents, pixel_range, device=device, batch_size=batch_size, save_to=save_images)
        features, lg = extract(batches, extractor, n, label="Generating and measuring", progress=progress)
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
    return SideResult(features=features, logits=lg, protocol=protocol, seconds=seconds)


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
) -> dict[str, Any]:
    """FID (and KID mean/std) of ``n`` generated images against ``reference``, with the protocol.

    For the trainer: the generator is switched to eval mode for the measurement and put back
    as it was. The Inception network is built once per process and device. Returns
    ``{"fid", "kid_mean", "kid_std", "protocol", "seconds"}``. ``fid_method="eigh"`` is the
    faster equivalent of sqrtm (see ``frechet_distance``) for frequent evaluations.
    """
    if n < 2:
        raise GanctlError(f"n must be at least 2, not {n}")
    check_fid_sample_count(n, "the generated side", allow_small_n)
    check_fid_sample_count(reference.n, "the reference", allow_small_n)
    channels, height, width = _output_shape(generator, latent_dim, device)
    if (channels, height) != (reference.channels, reference.image_size) or height != width:
        raise GanctlError(
            f"the generator makes {height}×{width}×{channels} images but the reference statistics are of "
            f"{reference.image_size}×{reference.image_size}×{reference.channels} images"
        )
    side = generated_features(
        generator, pixel_range, latent_dim, weights=reference.weights, n=n, device=device,
        batch_size=batch_size, seed=seed, compile=compile, progress=progress,
    )  # fmt: skip
    return compare(reference, side, kid=kid, allow_small_n=allow_small_n, seed=seed, fid_method=fid_method)


def _output_shape(generator, latent_dim: int, device: Any) -> tuple[int, int, int]:
    import torch

    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            shape = generator(torch.zeros(1, latent_dim, device=device)).shape
    finally:
        generator.train(was_training)
    return int(shape[1]), int(shape[2]), int(shape[3])
