"""Reading a run's ``config.json``: the one place its bytes are parsed.

``read_config_json`` gives the raw object, checked only as far as every reader needs (an
object with a ``recipe`` object); ``training.config.read_config_file`` checks it field by field
into a ``TrainConfig``. No torch, no registry: ``ganctl runs`` and ``ganctl report`` use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.fileio import read_regular_file
from ganctl.runfolder.layout import CONFIG, RunFolder, run_of_file

MAX_BYTES = 1 << 24  # ganctl writes a few kB; 16 MiB is no configuration


def read_config_json(path: Path) -> dict[str, Any]:
    """A ``config.json`` file's object; one-sentence GanctlError if it is unreadable or no run configuration."""
    path = Path(path)
    damaged = f"{path} is damaged"
    try:
        data = json.loads(read_regular_file(path, MAX_BYTES).decode("utf-8"))
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:80]
        raise GanctlError(f"{damaged}: it is not JSON ({first}); restore it or start a new run") from None
    if not isinstance(data, dict):
        raise GanctlError(f"{damaged}: it holds a {type(data).__name__}, not an object; restore it or start a new run")
    if "recipe" not in data:
        raise GanctlError(f"{damaged}: it lacks 'recipe'; restore it or start a new run")
    if not isinstance(data["recipe"], dict):
        raise GanctlError(f"{damaged}: 'recipe' is not an object; restore it or start a new run")
    return data


def read_config(run_dir: Path) -> dict[str, Any]:
    """A run's ``config.json``; a folder without one is not a run."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise GanctlError(f"{run_dir} is not a ganctl run folder (no {CONFIG})")
    return read_config_json(folder.config)


def training_dataset(generator_file: Path) -> str | None:
    """The dataset named in the ``config.json`` of the run a generator file belongs to
    (the file's folder, or the one above for a snapshot); None when there is no readable one."""
    run = run_of_file(generator_file)
    if run is None:
        return None
    try:
        dataset = read_config_json(run.config)["recipe"].get("dataset")
    except GanctlError:
        return None
    return dataset if isinstance(dataset, str) else None
