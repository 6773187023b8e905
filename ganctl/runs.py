"""Run folders and the pointer to the latest one.

A training writes into one run folder (default ``runs/<arch>-<time>``). ``runs/LATEST``
holds the path of the newest run, so ``ganctl sample`` right after ``ganctl train`` finds
its generator without being told.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes

ENV_RUNS_DIR = "GANCTL_RUNS_DIR"
FINAL_GENERATOR = "generator.safetensors"
RAW_GENERATOR = "generator-raw.safetensors"  # the non-averaged generator, beside an EMA run's files
BEST_GENERATOR = "best.safetensors"
CONFIG = "config.json"
LOCK = ".lock"  # held (fcntl.flock, exclusive) by the process training in the folder
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SNAPSHOTS = "snapshots"
SAMPLES = "samples"


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
    atomic_write_bytes(root / "LATEST", (str(Path(run_dir).resolve()) + "\n").encode())


def latest_run(root: Path | None = None) -> Path | None:
    """The run ``LATEST`` under ``root`` (default: the runs root) names, if it still exists."""
    pointer = Path(root if root is not None else runs_root()) / "LATEST"
    try:
        text = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError):  # absent, or not what ganctl wrote
        return None
    try:
        path = Path(text)
        return path if text and path.is_dir() else None
    except (OSError, ValueError):  # a name too long, a NUL byte: not a folder ganctl wrote
        return None


def training_dataset(generator_file: Path) -> str | None:
    """The dataset named in the ``config.json`` of the run a generator file belongs to
    (the file's folder, or the one above for a snapshot); None when there is no readable one."""
    generator_file = Path(generator_file)
    for folder in (generator_file.parent, generator_file.parent.parent):
        config = folder / CONFIG
        if config.is_file():
            try:
                return json.loads(config.read_text())["recipe"]["dataset"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run folder (it holds a config.json), for listing runs."""
    return (Path(path) / CONFIG).is_file()


def find_generator(weights: Path | None) -> Path:
    """The generator file meant by ``--weights`` (a file or a run folder), or the latest run's."""
    if weights is None:
        run = latest_run()
        if run is None:
            raise GanctlError(
                f"no trained generator found: {where_runs_are_looked_for()}, "
                "pass --weights FILE (or a run folder), or train one with `ganctl train`"
            )
        return _generator_in(run)
    weights = Path(weights)
    if weights.is_dir():
        return _generator_in(weights)
    if not weights.exists():
        raise GanctlError(f"{weights} does not exist")
    return weights


def _generator_in(run: Path) -> Path:
    final = run / FINAL_GENERATOR
    if final.is_file():
        return final
    snapshots = sorted((run / SNAPSHOTS).glob("generator-*.safetensors"))
    if snapshots:
        return snapshots[-1]  # an unfinished run: its newest snapshot
    raise GanctlError(f"{run} holds no generator yet (no {FINAL_GENERATOR} and no snapshots)")
