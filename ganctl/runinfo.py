"""Reading a run folder as it stands: its records, how far it got, and whether it still runs.

``ganctl runs`` and ``ganctl report`` read run folders through this module only. It reads
what is there, so a run that is still training, or was interrupted, reads as far as it got;
a damaged line of ``metrics.jsonl`` is skipped and counted, never fatal. No torch: listing
runs stays fast, and generator files are read for their metadata (safetensors header) only.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganctl import runs
from ganctl.errors import GanctlError

LOCK = ".lock"  # held (fcntl.flock, exclusive) by the process training in the folder


def is_number(value: Any) -> bool:
    """A finite int or float; not a bool (``"best": true`` is no curve)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- metrics.jsonl --------------------------------------------------------------------------
@dataclass
class Metrics:
    """The records of ``metrics.jsonl``, sorted into their three kinds."""

    train: list[dict[str, Any]] = field(default_factory=list)  # step, epoch and statistics
    evals: list[dict[str, Any]] = field(default_factory=list)  # step, epoch, fid, kid_mean, ...
    events: list[dict[str, Any]] = field(default_factory=list)  # step, event, message
    skipped: int = 0  # lines that are not a readable record

    def curve_keys(self) -> list[str]:
        """Every numeric key of the training records but step and epoch, in the order first seen.

        Not a fixed list: a WGAN critic has no accuracy, a recipe may log r1 or a learning rate.
        """
        keys: dict[str, None] = {}
        for record in self.train:
            for key, value in record.items():
                if key not in ("step", "epoch") and is_number(value):
                    keys.setdefault(key)
        return list(keys)

    def series(self, key: str, kind: str = "train") -> tuple[list[int], list[float]]:
        """Steps and values of one statistic, in step order, where the records have it."""
        records = self.train if kind == "train" else self.evals
        pairs = sorted((r["step"], float(r[key])) for r in records if is_number(r.get(key)))
        return [s for s, _ in pairs], [v for _, v in pairs]

    def best_eval(self) -> dict[str, Any] | None:
        """The evaluation record with the lowest FID (the first of equals)."""
        scored = [r for r in self.evals if is_number(r.get("fid"))]
        return min(scored, key=lambda r: (r["fid"], r["step"])) if scored else None

    def last_step(self) -> int:
        return max((r["step"] for r in (*self.train, *self.evals, *self.events)), default=0)

    def step_epoch_pairs(self) -> list[tuple[int, float]]:
        return [(r["step"], float(r["epoch"])) for r in (*self.train, *self.evals) if is_number(r.get("epoch"))]

    def __bool__(self) -> bool:
        return bool(self.train or self.evals or self.events)


def read_metrics(path: Path) -> Metrics:
    """Every readable record of a ``metrics.jsonl``; a missing file reads as no records."""
    metrics = Metrics()
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return metrics
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a torn or damaged line
            metrics.skipped += 1
            continue
        if not isinstance(record, dict) or not is_number(record.get("step")) or record["step"] < 0:
            metrics.skipped += 1
            continue
        record["step"] = int(record["step"])
        if "event" in record:
            record.setdefault("message", "")
            metrics.events.append(record)
        elif "fid" in record:
            metrics.evals.append(record)
        else:
            metrics.train.append(record)
    return metrics


# --- a run folder ---------------------------------------------------------------------------
def read_config(run_dir: Path) -> dict[str, Any]:
    """A run's ``config.json``; a folder without one is not a run."""
    path = Path(run_dir) / runs.CONFIG
    if not path.is_file():
        raise GanctlError(f"{run_dir} is not a ganctl run folder (no {runs.CONFIG})")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GanctlError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("recipe"), dict):
        raise GanctlError(f"{path} is not a ganctl run configuration (it has no recipe)")
    return config


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


def is_running(run_dir: Path) -> bool:
    """Whether a training holds the run's lock now.

    The lock file is opened read-only and never created, truncated or followed through a
    symbolic link; a shared lock that cannot be taken means an exclusive one is held.
    """
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file (never trained, or an older ganctl), or a link
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


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
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass
class Progress:
    """How far a run got and how far it was meant to go."""

    done: int
    planned: int | None
    planned_exact: bool
    per_epoch: StepsPerEpoch | None


def progress(run_dir: Path, config: dict[str, Any], metrics: Metrics) -> Progress:
    """Iterations done (records, checkpoints, the final generator) and planned (epochs × n, capped by max_steps)."""
    run_dir = Path(run_dir)
    pairs = metrics.step_epoch_pairs()
    done = metrics.last_step()
    final = generator_metadata(run_dir / runs.FINAL_GENERATOR)
    files = [final, *(generator_metadata(p) for p in _newest(run_dir / runs.SNAPSHOTS, 1))]
    for meta in files:
        step, epoch = _number((meta or {}).get("step")), _number((meta or {}).get("epoch"))
        if step is not None:
            done = max(done, int(step))
            if epoch is not None:
                pairs.append((int(step), epoch))
    for checkpoint in (run_dir / runs.CHECKPOINTS).glob("step-*.safetensors"):
        digits = checkpoint.name[len("step-") : -len(".safetensors")]
        if digits.isdigit():  # an interrupted run's last checkpoint can be past its last record
            done = max(done, int(digits))
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
    final = generator_metadata(Path(run_dir) / runs.FINAL_GENERATOR)
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
        metrics = read_metrics(run_dir / runs.METRICS)
    except GanctlError as exc:
        return RunSummary(run_dir.name, run_dir, None, None, None, 0, None, False, "unreadable", None, None,
                          size, modified, is_latest, problem=str(exc))  # fmt: skip
    recipe = config["recipe"]
    p = progress(run_dir, config, metrics)
    best = metrics.best_eval()
    return RunSummary(
        name=run_dir.name, path=run_dir, arch=_text(config.get("arch")), dataset=_text(recipe.get("dataset")),
        loss=_text(recipe.get("loss")), steps_done=p.done, steps_planned=p.planned, planned_exact=p.planned_exact,
        state=run_state(run_dir, p.done, p.planned), best_fid=best["fid"] if best else None,
        best_step=best["step"] if best else None, size_bytes=size, modified=modified, latest=is_latest,
        skipped_lines=metrics.skipped,
    )  # fmt: skip


def list_runs(root: Path) -> list[RunSummary]:
    """The runs directly under ``root``, newest change first; folders without config.json are skipped."""
    root = Path(root)
    latest = runs.latest_run(root)
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and runs.is_run_dir(p)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise GanctlError(f"cannot read {root}: {exc.strerror or exc}") from None
    summaries = [summarize(p, latest) for p in folders]
    return sorted(summaries, key=lambda s: (-s.modified, s.name))


def resolve_run(given: Path | None) -> Path:
    """The run folder a user means: a path, a run's name under the runs root, or (None) the latest run."""
    if given is None:
        latest = runs.latest_run()
        if latest is None:
            raise GanctlError(
                f"there is no run to read: {runs.where_runs_are_looked_for()}, name a run folder, "
                "or train one with `ganctl train`"
            )
        return latest
    path = Path(given)
    if not path.exists() and not path.is_absolute() and (runs.runs_root() / path).is_dir():
        path = runs.runs_root() / path  # a bare run name, as `ganctl runs` lists it
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


def _newest(folder: Path, k: int) -> list[Path]:
    try:
        return sorted(folder.glob("generator-*.safetensors"), key=lambda p: p.name)[-k:]
    except OSError:
        return []


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
