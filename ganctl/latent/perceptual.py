"""Perceptual distances for projection: LPIPS when it is available locally, else Inception features.

Every distance takes two float image batches in [0, 255] (B, 3, H, W), differentiable in the first,
and returns one distance per image.

- ``lpips``: the LPIPS package's learned distance (Zhang et al. 2018) on AlexNet, used only when
  the package is installed and torchvision's AlexNet weights are already in torch hub's cache
  (ganctl never downloads them for this).
- ``inception``: the FID Inception ganctl measures with (``ganctl.metrics``), run on images
  resized to 160 px up to Mixed_5d; LPIPS' recipe without its learned weights: each layer's
  features unit-normalised across channels, squared differences averaged over positions, the
  layers summed.
- ``pixel``: no network (the pixel term of the projection alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ganctl.errors import GanctlError

CHOICES = ("auto", "lpips", "inception", "pixel")
INCEPTION_INPUT = 160  # px: Mixed_5d is 17x17 there; a third of the 299 px cost
LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet weights, as torch hub caches them


@dataclass
class Perceptual:
    name: str  # what the user is told: "LPIPS (AlexNet)", "Inception features (...)", "pixels only"
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None  # None: pixels only


def lpips_available() -> bool:
    try:
        import lpips  # noqa: F401
    except ImportError:
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE).is_file()


def choose(kind: str, inception_weights: Path | None, device: torch.device, note: Callable[[str], None]) -> Perceptual:
    """The distance ``--distance`` asks for; ``auto``: LPIPS, else Inception, else pixels (each said)."""
    if kind == "pixel":
        return Perceptual("pixels only", None)
    if kind in ("auto", "lpips"):
        if lpips_available():
            return _lpips(device)
        if kind == "lpips":
            raise GanctlError(
                f"--distance lpips needs the lpips package and torchvision's AlexNet weights in {torch.hub.get_dir()}/checkpoints "
                "(pip install lpips, then run once online); or use --distance inception"
            )
    try:
        return _inception(inception_weights, device, download=kind == "inception")
    except GanctlError as exc:
        if kind == "inception":
            raise
        note(f"no LPIPS and no Inception weights ({exc}); projecting with the pixel distance alone")
        return Perceptual("pixels only", None)


def _lpips(device: torch.device) -> Perceptual:
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = lpips.LPIPS(net="alex", verbose=False).to(device).eval().requires_grad_(False)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return network(a / 127.5 - 1, b / 127.5 - 1).flatten()

    return Perceptual("LPIPS (AlexNet)", distance)


def inception_distance(network: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The LPIPS-style distance on ``network``'s (torch-fidelity's FID Inception) early layers."""
    layers = [
        ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1"),
        ("Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2"),
        ("Mixed_5b", "Mixed_5c", "Mixed_5d"),
    ]

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=(INCEPTION_INPUT, INCEPTION_INPUT), mode="bilinear", align_corners=False)
        x = (x - 128) / 128
        out = []
        for stage in layers:
            for name in stage:
                x = getattr(network, name)(x)
            out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = features(b)
        return sum(((fa - fb) ** 2).sum(dim=1).mean(dim=(1, 2)) for fa, fb in zip(features(a), target))

    return distance


def _inception(weights_path: Path | None, device: torch.device, download: bool) -> Perceptual:
    from ganctl.metrics.features import _build_extractor
    from ganctl.metrics.inception_weights import resolve_weights

    weights = resolve_weights(weights_path, download=download)
    network = _build_extractor(weights.path, ["2048"]).to(device).eval().requires_grad_(False)
    return Perceptual(f"Inception features (FID Inception, {weights.path.name}, Mixed_5d at {INCEPTION_INPUT} px)", inception_distance(network))
