"""Reading a run folder as it stands: how far it got, how far it was meant to go, its state.

``ganctl runs`` and ``ganctl report`` read run folders through this package only. It reads
what is there, so a run that is still training, or was interrupted, reads as far as it got.
The plan (iterations per epoch, iterations planned) comes from ``manifest.json``; a run written
by an older ganctl has none, and the plan is reconstructed from the records' rounded epochs.
No torch: listing runs stays fast, and generator files are read for their metadata only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.runfolder import layout
from ganctl.runfolder.config import read_config
from ganctl.runfolder.layout import RunFolder
from ganctl.runfolder.lock import is_running
from ganctl.runfolder.manifest import Manifest, read_manifest
from ganctl.runfolder.records import MAX_STEP, Metrics, read_metrics

_UNREAD: Any = object()


def generator_metadata(path: Path) -> dict[str, str] | None:
    """The safetensors metadata of a generator or checkpoint file; None if absent or unreadable.

    Only the header is read (numpy framework: no torch, no tensors).
    """
    from safetensors import safe_open

    if not Path(path).is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            return f.metadata() or {}
    except Exception:  # noqa: BLE001  (safetensors raises several kinds for a damaged file)
        return None


@dataclass(frozen=True)
class StepsPerEpoch:
    """Iterations per epoch as far as the records pin it down: ``low <= n <= high``, best guess ``n``."""

    n: int
    low: int
    high: float  # math.inf when no record bounds it from above

    @property
    def exact(self) -> bool:
        return self.low == self.high


def steps_per_epoch(pairs: Iterable[tuple[int, float]]) -> StepsPerEpoch | None:
    """Iterations per epoch from (step, epoch) pairs as the trainer writes them.

    The trainer writes ``epoch = round(step / n, 4)``; N (the dataset's size) is in no file.
    Each pair bounds n; the pairs together usually pin it down exactly. None without a pair.
    """
    pairs = [(s, e) for s, e in pairs if s > 0 and e > 0]
    if not pairs:
        return None
    low, high = 1, math.inf
    for step, epoch in pairs:
        low = max(low, math.ceil(step / (epoch + 5e-5) - 1e-9))
        if epoch > 5e-5:
            high = min(high, math.floor(step / (epoch - 5e-5) + 1e-9))
    step, epoch = max(pairs)
    guess = max(1, round(step / epoch))
    if low > high:  # the pairs disagree (an edited file): trust the largest step
        return StepsPerEpoch(guess, guess, guess)
    if high - low <= 64:  # keep only the n that reproduce every written epoch
        fits = [n for n in range(low, int(high) + 1) if all(round(s / n, 4) == e for s, e in pairs)]
        if fits:
            low, high = fits[0], fits[-1]
    return StepsPerEpoch(min(max(guess, low), high), low, high)


@dataclass
class RunSummary:
    """One line of ``ganctl runs``."""

    name: str
    path: Path
    arch: str | None
    dataset: str | None
    loss: str | None
    steps_done: int
    steps_planned: int | None  # None: not known yet (no record with an epoch)
    planned_exact: bool  # False: steps_planned is an estimate
    state: str  # finished | running | interrupted | unreadable
    best_fid: float | None
    best_step: int | None
    size_bytes: int
    modified: float  # seconds since the epoch, of the newest file
    latest: bool
    skipped_lines: int = 0
    problem: str | None = None  # why the state is "unreadable"
    study: str | None = None  # the study (`ganctl study`) the run is part of

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "arch": self.arch,
            "dataset": self.dataset,
            "loss": self.loss,
            "steps_done": self.steps_done,
            "steps_planned": self.steps_planned,
            "steps_planned_exact": self.planned_exact,
            "state": self.state,
            "best_fid": self.best_fid,
            "best_fid_step": self.best_step,
            "size_bytes": self.size_bytes,
            "modified": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.modified)),
            "latest": self.latest,
            "skipped_lines": self.skipped_lines,
            "study": self.study,
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass
class Progress:
    """How far a run got and how far it was meant to go."""

    done: int
    planned: int | None
    planned_exact: bool
    per_epoch: StepsPerEpoch | None


def progress(run_dir: Path, config: dict[str, Any], metrics: Metrics, manifest: Manifest | None = _UNREAD) -> Progress:
    """Iterations done (records, checkpoints, the final generator) and planned: the manifest's plan,
    or for a run without one, epochs × n (n from the records' epochs), capped by max_steps."""
    folder = RunFolder(run_dir)
    if manifest is _UNREAD:
        manifest = read_manifest(folder.path)
    pairs = metrics.step_epoch_pairs()
    done = metrics.last_step()
    final = generator_metadata(folder.final_generator)
    files = [final, *(generator_metadata(p) for p in folder.list_snapshots()[-1:])]
    for meta in files:
        step, epoch = _number((meta or {}).get("step")), _number((meta or {}).get("epoch"))
        if step is not None and 0 <= step <= MAX_STEP:  # else not a step ganctl wrote
            done = max(done, int(step))
            if epoch is not None:
                pairs.append((int(step), epoch))
    checkpoints = folder.list_checkpoints()
    if checkpoints:  # an interrupted run's last checkpoint can be past its last record
        done = max(done, layout.checkpoint_step(checkpoints[-1].name) or 0)
    if manifest is not None:
        n = manifest.steps_per_epoch
        return Progress(done, manifest.total_steps, True, StepsPerEpoch(n, n, n))
    per_epoch = steps_per_epoch(pairs)
    recipe = config.get("recipe", {})
    epochs, max_steps = recipe.get("epochs"), config.get("max_steps")
    if not isinstance(epochs, int) or per_epoch is None:
        return Progress(done, None, False, per_epoch)
    if isinstance(max_steps, int) and epochs * per_epoch.low >= max_steps:
        return Progress(done, max_steps, True, per_epoch)
    planned = epochs * per_epoch.n
    if isinstance(max_steps, int):
        planned = min(planned, max_steps)
    return Progress(done, planned, per_epoch.exact, per_epoch)


def run_state(run_dir: Path, done: int, planned: int | None) -> str:
    """finished: the final generator is there, made at the last step, and the plan is done;
    running: a training holds the lock; interrupted: anything else (stopped, killed, crashed)."""
    if is_running(run_dir):
        return "running"
    final = generator_metadata(RunFolder(run_dir).final_generator)
    if final is not None and planned is not None and done >= planned:
        final_step = _number(final.get("step"))
        if final_step is None or final_step >= done:  # not trained on past it (a later resume)
            return "finished"
    return "interrupted"


def summarize(run_dir: Path, latest: Path | None = None) -> RunSummary:
    """Everything ``ganctl runs`` shows about one run folder."""
    run_dir = Path(run_dir)
    size, modified = disk_usage(run_dir)
    is_latest = latest is not None and _same(run_dir, latest)
    try:
        config = read_config(run_dir)
        metrics = read_metrics(RunFolder(run_dir).metrics)
        manifest = read_manifest(run_dir)
    except GanctlError as exc:
        return RunSummary(run_dir.name, run_dir, None, None, None, 0, None, False, "unreadable", None, None,
                          size, modified, is_latest, problem=str(exc))  # fmt: skip
    recipe = config["recipe"]
    p = progress(run_dir, config, metrics, manifest)
    best = metrics.best_eval()
    return RunSummary(
        name=run_dir.name, path=run_dir, arch=_text(config.get("arch")), dataset=_text(recipe.get("dataset")),
        loss=_text(recipe.get("loss")), steps_done=p.done, steps_planned=p.planned, planned_exact=p.planned_exact,
        state=run_state(run_dir, p.done, p.planned), best_fid=best["fid"] if best else None,
        best_step=best["step"] if best else None, size_bytes=size, modified=modified, latest=is_latest,
        skipped_lines=metrics.skipped, study=_text(config.get("study")),
    )  # fmt: skip


def list_runs(root: Path) -> list[RunSummary]:
    """The runs directly under ``root``, newest change first; folders without config.json are skipped."""
    root = Path(root)
    latest = layout.latest_run(root)
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and layout.is_run_dir(p)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise GanctlError(f"cannot read {root}: {exc.strerror or exc}") from None
    summaries = [summarize(p, latest) for p in folders]
    return sorted(summaries, key=lambda s: (-s.modified, s.name))


def resolve_run(given: Path | None) -> Path:
    """The run folder a user means: a path, a run's name under the runs root, or (None) the latest run."""
    if given is None:
        latest = layout.latest_run()
        if latest is None:
            raise GanctlError(
                f"there is no run to read: {layout.where_runs_are_looked_for()}, name a run folder, "
                "or train one with `ganctl train`"
            )
        return latest
    path = Path(given)
    if not path.exists() and not path.is_absolute() and (layout.runs_root() / path).is_dir():
        path = layout.runs_root() / path  # a bare run name, as `ganctl runs` lists it
    if not path.exists():
        raise GanctlError(f"{given} does not exist")
    if not path.is_dir():
        raise GanctlError(f"{given} is a file, not a run folder")
    read_config(path)  # a run folder, or one sentence saying why not
    return path


# --- files ----------------------------------------------------------------------------------
def disk_usage(folder: Path) -> tuple[int, float]:
    """Bytes of the files under ``folder`` (links not followed) and the newest modification time."""
    total, newest = 0, 0.0
    stack = [Path(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    newest = max(newest, st.st_mtime)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        total += st.st_size
        except OSError:
            continue
    if newest == 0.0:
        try:
            newest = Path(folder).stat().st_mtime
        except OSError:
            pass
    return total, newest


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _same(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
