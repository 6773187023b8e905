"""Every name in a run folder, and where run folders are.

A training writes into one run folder (default ``runs/<arch>-<time>``)::

    config.json                  the resolved configuration (written once, first)
    manifest.json                what the run was set up as: steps per epoch, planned steps, data, versions
    metrics.jsonl                one JSON record a line: statistics, evaluations, events
    .lock                        held (fcntl.flock, exclusive) by the process training in the folder
    checkpoints/step-<9 digits>.safetensors
    samples/epoch-<4 digits>.png, final.png, real.png
    snapshots/generator-<tag>.safetensors
    generator.safetensors, generator-raw.safetensors, best.safetensors
    progress.gif                 the grids as an animation
    tb/                          TensorBoard events (--tensorboard)

No other module spells these names: they ask ``RunFolder`` (or the constants here).
``runs/LATEST`` holds the path of the newest run, so ``ganctl sample`` right after
``ganctl train`` finds its generator without being told.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes, read_regular_file

ENV_RUNS_DIR = "GANCTL_RUNS_DIR"
LATEST = "LATEST"  # under the runs root

CONFIG = "config.json"
MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
SNAPSHOTS = "snapshots"
TENSORBOARD = "tb"
FINAL_GENERATOR = "generator.safetensors"
RAW_GENERATOR = "generator-raw.safetensors"  # the non-averaged generator, beside an EMA run's files
BEST_GENERATOR = "best.safetensors"
PROGRESS_ANIMATION = "progress.gif"

FINAL_TAG = "final"  # the grid of the finished run: samples/final.png (no snapshot)
REAL_TAG = "real"  # the training images the grids are compared with: samples/real.png
FINAL_GRID = f"{FINAL_TAG}.png"
REAL_GRID = f"{REAL_TAG}.png"
GRID_GLOB = "epoch-*.png"  # the epochs' grids, the frames of progress.gif (in name order)
KIMG_GRID_GLOB = "kimg-*.png"  # the same for a run measured in images (kimg)
CHECKPOINT_GLOB = "step-*.safetensors"
SNAPSHOT_GLOB = "generator-*.safetensors"

_CHECKPOINT_NAME = re.compile(r"step-([0-9]{1,15})\.safetensors")  # ASCII digits, at most 15 (below MAX_STEP)
_EPOCH_TAG = re.compile(r"epoch-([0-9]{1,15})")
_KIMG_TAG = re.compile(r"kimg-([0-9]{1,12}\.[0-9]{3})")


# --- names --------------------------------------------------------------------------------
def epoch_tag(epoch: int) -> str:
    """The tag of an epoch's grid and snapshot: ``epoch-0003``."""
    return f"epoch-{epoch:04d}"


def kimg_tag(images: int) -> str:
    """The tag of a grid and snapshot of a run measured in images: ``kimg-000119.808`` (thousands of images seen)."""
    return f"kimg-{images / 1000:010.3f}"


def tag_kimg(tag: str) -> float | None:
    """The thousands of images a ``kimg-NNNNNN.NNN`` tag names; None for any other tag."""
    m = _KIMG_TAG.fullmatch(tag)
    return float(m.group(1)) if m else None


def tag_epoch(tag: str) -> int | None:
    """The epoch an ``epoch-NNNN`` tag (or grid file stem) names; None for any other tag."""
    m = _EPOCH_TAG.fullmatch(tag)
    return int(m.group(1)) if m else None


def grid_name(tag: str) -> str:
    return f"{tag}.png"


def checkpoint_name(step: int) -> str:
    """``step-000000420.safetensors``: names sort in step order."""
    if step < 0:
        raise ValueError(f"a checkpoint's step is at least 0, not {step}")
    return f"step-{step:09d}.safetensors"


def checkpoint_step(name: str) -> int | None:
    """The step a checkpoint file name carries; None for a name that is not a checkpoint's."""
    m = _CHECKPOINT_NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def snapshot_name(tag: str) -> str:
    return f"generator-{tag}.safetensors"


# --- one run folder -----------------------------------------------------------------------
@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder; nothing is read or made until asked."""

    path: Path

    def __init__(self, path: Path | str) -> None:
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    # files
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def final_generator(self) -> Path:
        return self.path / FINAL_GENERATOR

    @property
    def raw_generator(self) -> Path:
        return self.path / RAW_GENERATOR

    @property
    def best_generator(self) -> Path:
        return self.path / BEST_GENERATOR

    @property
    def progress_animation(self) -> Path:
        return self.path / PROGRESS_ANIMATION

    # folders
    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    @property
    def snapshots(self) -> Path:
        return self.path / SNAPSHOTS

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    def subfolders(self) -> tuple[Path, ...]:
        """The folders the trainer makes when the run starts."""
        return (self.checkpoints, self.samples, self.snapshots)

    def is_run(self) -> bool:
        """Whether the folder is a run (it holds a config.json), for listing runs."""
        return self.config.is_file()

    # checkpoints
    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / checkpoint_name(step)

    def list_checkpoints(self) -> list[Path]:
        """The checkpoints, oldest first (by the step in their names)."""
        return list_checkpoints(self.checkpoints)

    # grids
    def grid(self, tag: str) -> Path:
        return self.samples / grid_name(tag)

    def epoch_grid(self, epoch: int) -> Path:
        return self.grid(epoch_tag(epoch))

    @property
    def final_grid(self) -> Path:
        return self.samples / FINAL_GRID

    @property
    def real_grid(self) -> Path:
        return self.samples / REAL_GRID

    def epoch_grids(self) -> list[Path]:
        """The grids made along the run (by epoch, or by thousands of images), oldest first."""
        return _sorted_glob(self.samples, GRID_GLOB) or _sorted_glob(self.samples, KIMG_GRID_GLOB)

    def animation_frames(self) -> list[Path]:
        """progress.gif's frames: the epochs' grids, then the final grid if there is one."""
        return self.epoch_grids() + ([self.final_grid] if self.final_grid.exists() else [])

    # generator snapshots
    def snapshot(self, tag: str) -> Path:
        return self.snapshots / snapshot_name(tag)

    def list_snapshots(self) -> list[Path]:
        """The generator snapshots, oldest first."""
        return _sorted_glob(self.snapshots, SNAPSHOT_GLOB)


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in a ``checkpoints/`` folder, oldest first; other names, and anything that is not a
    regular file (a folder, a FIFO no reader may open, a dangling link), are ignored."""
    try:
        found = [(step, p) for p in Path(folder).glob(CHECKPOINT_GLOB) if (step := checkpoint_step(p.name)) is not None and p.is_file()]
    except OSError:
        return []
    return [p for _, p in sorted(found)]


def _sorted_glob(folder: Path, pattern: str) -> list[Path]:
    """The regular files matching ``pattern``, by name (a FIFO among grids would block the reader)."""
    try:
        return sorted((p for p in Path(folder).glob(pattern) if p.is_file()), key=lambda p: p.name)
    except OSError:
        return []


# --- the runs root --------------------------------------------------------------------------
def runs_root() -> Path:
    return Path(os.environ.get(ENV_RUNS_DIR, "runs"))


def where_runs_are_looked_for() -> str:
    """Where ganctl looked for runs and how to point it elsewhere, for "no run found" messages."""
    root = runs_root()
    shown = root if ENV_RUNS_DIR in os.environ else f"{root}/ (relative to the current folder)"
    return (
        f"looked in {shown}, that is {root.resolve()}; run ganctl from the folder you trained in, "
        f"or set {ENV_RUNS_DIR}=DIR to the folder holding the runs"
    )


def new_run_dir(arch: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = runs_root() / f"{arch}-{stamp}"
    n = 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = runs_root() / f"{arch}-{stamp}-{n}"
    return path


def set_latest(run_dir: Path) -> None:
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / LATEST, (str(Path(run_dir).resolve()) + "\n").encode())


def latest_run(root: Path | None = None) -> Path | None:
    """The run ``LATEST`` under ``root`` (default: the runs root) names, if it still exists."""
    pointer = Path(root if root is not None else runs_root()) / LATEST
    try:
        text = read_regular_file(pointer, 1 << 16).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError, GanctlError):  # absent, or not what ganctl wrote (a FIFO, a large file)
        return None
    try:
        path = Path(text)
        return path if text and path.is_dir() else None
    except (OSError, ValueError):  # a name too long, a NUL byte: not a folder ganctl wrote
        return None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run folder (it holds a config.json), for listing runs."""
    return RunFolder(path).is_run()


def run_of_file(file: Path) -> RunFolder | None:
    """The run a file in it belongs to: its folder, or the one above (a snapshot, a checkpoint)."""
    file = Path(file)
    for folder in (file.parent, file.parent.parent):
        if RunFolder(folder).is_run():
            return RunFolder(folder)
    return None


def find_generator(weights: Path | None) -> Path:
    """The generator file meant by ``--weights`` (a file, a run folder or an exported model folder), or the latest run's."""
    if weights is None:
        run = latest_run()
        if run is None:
            raise GanctlError(
                f"no trained generator found: {where_runs_are_looked_for()}, "
                "pass --weights FILE (or a run folder), or train one with `ganctl train`"
            )
        return generator_in(run)
    weights = Path(weights)
    if weights.is_dir():
        from ganctl.interop.hf_folder import is_hf_folder, model_file_in  # an exported model folder

        return model_file_in(weights) if is_hf_folder(weights) else generator_in(weights)
    if not weights.exists():
        raise GanctlError(f"{weights} does not exist")
    return weights


def generator_in(run: Path) -> Path:
    """A run's generator: the final one, else (an unfinished run) its newest snapshot."""
    folder = RunFolder(run)
    if folder.final_generator.is_file():
        return folder.final_generator
    snapshots = folder.list_snapshots()
    if snapshots:
        return snapshots[-1]
    raise GanctlError(f"{run} holds no generator yet (no {FINAL_GENERATOR} and no snapshots)")
