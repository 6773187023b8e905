"""``manifest.json``: what a run was set up as, written once when it starts.

``config.json`` holds what was asked; the manifest holds what the trainer found once the data
was loaded: iterations per epoch, the planned iterations (after ``--max-steps``), the training
set's size and classes, the processes, the versions and the device. Readers take the plan from
here instead of reconstructing it from the records' rounded epochs. Runs written by an older
ganctl have none: ``read_manifest`` gives None and readers fall back to the records.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_json, read_regular_file
from ganctl.runfolder.layout import RunFolder

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    steps_per_epoch: int  # iterations per epoch (floor(images / batch))
    total_steps: int  # iterations planned: epochs x steps_per_epoch, capped by --max-steps
    epochs: int
    images: int  # images in the training set (after --limit)
    batch_size: int = 0  # images shown to D per iteration (0: not recorded); images seen = step x this
    kimg: float | None = None  # the length in thousands of images, for a recipe measured that way
    classes: dict[str, int] = field(default_factory=dict)  # class name -> images, in label order; {} unconditional
    world_size: int = 1  # processes training together
    ganctl_version: str = ""
    torch_version: str | None = None
    device: str = "cpu"
    created: str = ""  # ISO 8601, with the time zone
    manifest_version: int = MANIFEST_VERSION

    @classmethod
    def create(
        cls,
        *,
        steps_per_epoch: int,
        total_steps: int,
        epochs: int,
        images: int,
        batch_size: int = 0,
        kimg: float | None = None,
        classes: Mapping[str, int] | Iterable[tuple[str, int]] = (),
        world_size: int = 1,
        device: Any = "cpu",
    ) -> Manifest:
        """A manifest for a run starting now, with this ganctl's and torch's versions."""
        from ganctl import __version__

        pairs = classes.items() if isinstance(classes, Mapping) else classes
        return cls(
            steps_per_epoch=int(steps_per_epoch), total_steps=int(total_steps), epochs=int(epochs), images=int(images),
            batch_size=int(batch_size), kimg=None if kimg is None else float(kimg), classes={str(name): int(count) for name, count in pairs}, world_size=int(world_size),
            ganctl_version=__version__, torch_version=_torch_version(), device=str(device),
            created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_manifest(folder: Path, manifest: Manifest) -> bool:
    """Write the run's manifest unless it has one (a resumed run keeps its first); True if written."""
    path = RunFolder(folder).manifest
    if path.exists() or path.is_symlink():
        return False
    atomic_write_json(path, manifest.to_json())
    return True


def read_manifest(folder: Path) -> Manifest | None:
    """A run's manifest; None if it has none (an older ganctl's run); one-sentence GanctlError if damaged."""
    path = RunFolder(folder).manifest
    damaged = f"{path} is damaged"
    hint = "restore it, or delete it to read the run from its records"
    try:
        data = json.loads(read_regular_file(path, 1 << 24).decode("utf-8"))  # ganctl writes under 1 kB
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise GanctlError(f"{damaged}: it is not JSON; {hint}") from None
    if not isinstance(data, dict):
        raise GanctlError(f"{damaged}: it holds a {type(data).__name__}, not an object; {hint}")
    values: dict[str, Any] = {}
    for name, (check, meaning, required) in _FIELDS.items():
        if name not in data:
            if required:
                raise GanctlError(f"{damaged}: it lacks '{name}'; {hint}")
            continue
        if not check(data[name]):
            shown = repr(data[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise GanctlError(f"{damaged}: '{name}' is {shown}, not {meaning}; {hint}")
        values[name] = data[name]
    values["classes"] = dict(values.get("classes", {}))
    return Manifest(**values)


def _int(low: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**63


def _iso_time(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _classes(v: Any) -> bool:
    return isinstance(v, dict) and all(_int(0)(count) for count in v.values())


# name -> (check, what it must be, required)
_FIELDS = {
    "steps_per_epoch": (_int(1), "a positive integer", True),
    "total_steps": (_int(0), "a non-negative integer", True),
    "epochs": (_int(0), "a non-negative integer", True),
    "images": (_int(0), "a non-negative integer", True),
    "batch_size": (_int(0), "a non-negative integer", False),
    "kimg": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e12), "a positive number", False),
    "classes": (_classes, "an object of class names and image counts", False),
    "world_size": (_int(1), "a positive integer", False),
    "ganctl_version": (lambda v: isinstance(v, str), "a version", False),
    "torch_version": (lambda v: v is None or isinstance(v, str), "a version", False),
    "device": (lambda v: isinstance(v, str), "a device name", False),
    "created": (_iso_time, "an ISO 8601 time", False),
    "manifest_version": (_int(1), "a positive integer", False),
}


def _torch_version() -> str | None:
    """torch's version without importing it (the trainer has; a test may not)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(getattr(torch, "__version__", "")) or None
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version("torch")
    except PackageNotFoundError:
        return None
