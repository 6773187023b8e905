"""The FID Inception weights: finding, downloading and checking them (never unpickled)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError

ENV_WEIGHTS = "GANCTL_INCEPTION_WEIGHTS"
WEIGHT_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

Log = Callable[[str], None]


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

    from ganctl.environment import offline

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
        # torch's own text is no help here (a bare number from the unpickler, or advice to load unsafely)
        with open(path, "rb") as f:
            head = f.read(4)
        torch_file = head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch.save's zip, or its legacy pickle
        objects = torch_file and "Unsupported global" in str(exc)
        why = ("it holds Python objects besides tensors, which ganctl never loads (they could run code)" if objects
               else "it is not a PyTorch weights file (another format, or damaged)")  # fmt: skip
        raise GanctlError(f"{path} is not an Inception weights file: {why}") from None
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


_lock = threading.Lock()
_checked: dict[tuple, InceptionWeights] = {}  # (path, mtime, size) -> checked once per process


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



def inception_score_refusal(weights: InceptionWeights) -> str:
    return (
        f"Inception Score needs the Inception classifier, but the fc layer in {weights.path.name} is all zeros "
        f"(it is good for FID and KID only); use the official {WEIGHT_NAMES[1]} (sha256 {OFFICIAL_SHA256[:8]}...) for IS"
    )

