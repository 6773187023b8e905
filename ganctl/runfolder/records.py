"""``metrics.jsonl``: the one writer and the one reader of a run's records.

One JSON object a line, three kinds: training statistics (``step``, ``epoch``, statistics),
evaluations (with ``fid``) and events (with ``event`` and ``message``). The reader reads what
is there: a torn or damaged line is skipped and counted, never fatal. Resuming cuts the file
back to the checkpoint's step through the same reader (``truncate_after``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganctl.fileio import atomic_write_bytes, read_regular_file


# The largest step a record may carry: a float holds every whole number up to it exactly, and no
# run takes that many steps. A larger one (a hand-edited or foreign line) is a damaged line.
MAX_STEP = 2**53
MAX_BYTES = 1 << 30  # a metrics.jsonl larger than this is read by no command (a long run's is tens of MB)


def is_number(value: Any) -> bool:
    """A finite int or float that a float holds; not a bool (``"best": true`` is no curve)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float (JSON allows 1 followed by 400 zeros)
        return False


@dataclass
class Metrics:
    """The records of ``metrics.jsonl``, sorted into their three kinds."""

    train: list[dict[str, Any]] = field(default_factory=list)  # step, epoch and statistics
    evals: list[dict[str, Any]] = field(default_factory=list)  # step, epoch, fid, kid_mean, ...
    events: list[dict[str, Any]] = field(default_factory=list)  # step, event, message
    skipped: int = 0  # lines that are not a readable record

    def add(self, record: dict[str, Any]) -> None:
        if "event" in record:
            self.events.append(record)
        elif "fid" in record:
            self.evals.append(record)
        else:
            self.train.append(record)

    def curve_keys(self) -> list[str]:
        """Every numeric key of the training records but step and epoch, in the order first seen.

        Not a fixed list: a WGAN critic has no accuracy, a recipe may log r1 or a learning rate.
        """
        keys: dict[str, None] = {}
        for record in self.train:
            for key, value in record.items():
                if key not in ("step", "epoch", "kimg") and is_number(value):
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


def parse_record(line: str) -> dict[str, Any] | None:
    """One line's record (``step`` made an int), or None for a line that is no record.

    A record is a JSON object with a ``step`` in 0..MAX_STEP; an event's name is text (its message
    is made text); statistics that are not finite numbers a float holds are kept but never plotted.
    """
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # a torn or damaged line
        return None
    if not isinstance(record, dict) or not is_number(record.get("step")) or not 0 <= record["step"] <= MAX_STEP:
        return None
    record["step"] = int(record["step"])
    if "event" in record:
        if not isinstance(record["event"], str):
            return None
        message = record.get("message", "")
        record["message"] = message if isinstance(message, str) else json.dumps(message)
    return record


class MetricsLog:
    """A run's ``metrics.jsonl``: records appended one a line, read back, cut back on resume."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Add one record (a JSON object with an integer ``step``) as one line."""
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _lines(self) -> list[str] | None:
        """The file's lines; None when there is no file."""
        try:
            text = read_regular_file(self.path, MAX_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        return text.splitlines()

    def read(self) -> Metrics:
        """Every readable record; a missing file reads as no records."""
        metrics = Metrics()
        for line in self._lines() or []:
            if not line.strip():
                continue
            record = parse_record(line)
            if record is None:
                metrics.skipped += 1
            else:
                metrics.add(record)
        return metrics

    def truncate_after(self, step: int) -> None:
        """Keep the records up to ``step`` (the checkpoint a run resumes from); drop later and damaged lines."""
        kept = [line for line in self._lines() or [] if (r := parse_record(line)) is not None and r["step"] <= step]
        atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())


def read_metrics(path: Path) -> Metrics:
    """Every readable record of a ``metrics.jsonl``; a missing file reads as no records."""
    return MetricsLog(path).read()


def truncate_after(path: Path, step: int) -> None:
    """``MetricsLog(path).truncate_after(step)``: the records after a resumed checkpoint go."""
    MetricsLog(path).truncate_after(step)
