"""Compatibility: the run folder's names and the runs root now live in ``ganctl.runfolder.layout``.

Kept for plugins and scripts that import ``ganctl.runs``; ganctl itself imports ``ganctl.runfolder``.
"""

from __future__ import annotations

from ganctl.runfolder.config import training_dataset
from ganctl.runfolder.layout import (
    BEST_GENERATOR, CHECKPOINTS, CONFIG, ENV_RUNS_DIR, FINAL_GENERATOR, LOCK, MANIFEST, METRICS, RAW_GENERATOR, SAMPLES,
    SNAPSHOTS, find_generator, is_run_dir, latest_run, new_run_dir, runs_root, set_latest, where_runs_are_looked_for,
)  # fmt: skip

__all__ = [
    "BEST_GENERATOR", "CHECKPOINTS", "CONFIG", "ENV_RUNS_DIR", "FINAL_GENERATOR", "LOCK", "MANIFEST", "METRICS",
    "RAW_GENERATOR", "SAMPLES", "SNAPSHOTS", "find_generator", "is_run_dir", "latest_run", "new_run_dir", "runs_root",
    "set_latest", "training_dataset", "where_runs_are_looked_for",
]  # fmt: skip
