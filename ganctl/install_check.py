"""Whether this Python's PyTorch install works for ganctl, and what to do when it does not.

The check that matters most is torch against torchvision: pip can install a pair that does not
work together (a CPU torch from one index beside a torchvision built for another torch), and
then ``import torchvision.ops`` fails with "operator torchvision::nms does not exist". The CIFAR-10
and MNIST loaders and FID (torch-fidelity) need torchvision, so ``ganctl train`` and ``ganctl
eval`` run ``torchvision_problem()`` first: it loads torchvision's compiled operators into this
torch (milliseconds), without importing the whole of torchvision.

Torch-free at import.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

INSTALL_DOC = "docs/install.md"


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def paired_torchvision(torch_version: str) -> str | None:
    """The torchvision release made for a torch 2.x release: 0.(minor + 15), e.g. 2.14 -> 0.29."""
    parts = torch_version.split("+")[0].split(".")
    if len(parts) < 2 or parts[0] != "2" or not parts[1].isdigit():
        return None
    return f"0.{int(parts[1]) + 15}"


def _release(version: str) -> str:
    """2.14.1+cpu -> 2.14 (the part that pairs)."""
    return ".".join(version.split("+")[0].split(".")[:2])


def _fix(torch_version: str) -> str:
    paired = paired_torchvision(torch_version)
    pin = f"torchvision=={paired}.*" if paired else "torchvision"
    return (
        f"install the torchvision made for torch {torch_version} from the same place torch came from, e.g. "
        f"`pip install --force-reinstall --no-deps '{pin}'` (see {INSTALL_DOC})"
    )


def torchvision_problem() -> str | None:
    """One sentence when torchvision cannot work with this torch (None: it can). Cheap: imports torch only."""
    import torch

    torch_version = torch.__version__
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return f"torchvision is not installed; {_fix(torch_version)}"
    vision_version = installed_version("torchvision") or "?"
    folder = Path(spec.origin).parent
    libraries = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    if not libraries:
        return f"torchvision {vision_version} has no compiled operators (no _C library in {folder}); {_fix(torch_version)}"
    try:
        torch.ops.load_library(str(libraries[0]))
    except (OSError, RuntimeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        return (
            f"torchvision {vision_version} does not work with torch {torch_version} (its operators do not load: "
            f"{detail}); {_fix(torch_version)}"
        )
    paired = paired_torchvision(torch_version)
    if paired is not None and vision_version != "?" and _release(vision_version) != paired:
        return f"torchvision {vision_version} is not the release made for torch {torch_version} ({paired}); {_fix(torch_version)}"
    return None


def warn_if_torchvision_broken(say) -> None:
    """``train`` and ``eval``: one line naming the fix when torchvision cannot work with this torch."""
    problem = torchvision_problem()
    if problem:
        say(f"warning: {problem}")
