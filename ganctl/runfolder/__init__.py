"""The run folder: the one owner of its names, its files' formats and its reading.

layout.py    every path and name pattern of a run folder (``RunFolder``), the runs root, LATEST
manifest.py  manifest.json: the plan and set-up of a run, written once when it starts
records.py   metrics.jsonl: the one writer (``MetricsLog.append``), the one reader, truncation
config.py    config.json: the one parser of its bytes (the raw, checked object)
lock.py      the folder's lock, what counts as empty, stale temporary files
info.py      a run as it stands: progress, state, summaries (``ganctl runs`` and ``report``)

No torch is imported here, by any of them.
"""

from __future__ import annotations

from ganctl.runfolder.config import read_config, read_config_json, training_dataset
from ganctl.runfolder.layout import RunFolder, find_generator, latest_run, new_run_dir, runs_root, set_latest
from ganctl.runfolder.lock import RunFolderLock, holds_files, is_running, remove_stale_temporaries
from ganctl.runfolder.manifest import Manifest, read_manifest, write_manifest
from ganctl.runfolder.records import Metrics, MetricsLog, read_metrics, truncate_after

__all__ = [
    "Manifest", "Metrics", "MetricsLog", "RunFolder", "RunFolderLock", "find_generator", "holds_files", "is_running",
    "latest_run", "new_run_dir", "read_config", "read_config_json", "read_manifest", "read_metrics",
    "remove_stale_temporaries", "runs_root", "set_latest", "training_dataset", "truncate_after", "write_manifest",
]  # fmt: skip
