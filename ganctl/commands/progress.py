"""What ``ganctl train`` shows while it runs: the progress line, its speed and time left, and
one warning when the machine is oversubscribed.

The speed (images/s) and the time left come from a moving window of the last minutes of
steps, so they do not jump with one slow step; the time left includes the evaluations and
snapshots that recur during the run, as the wall clock does.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

BAR_WIDTH = 10  # columns of the progress bar itself
SPEED_WINDOW_S = 120.0  # the speed is measured over the last two minutes of steps
LOAD_CHECK_AFTER_S = 30.0  # the load average is read once, after this long of steps


def hms(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; -:-- while unknown."""
    if seconds is None:
        return "-:--"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def usable_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def oversubscription_warning(load: float, cores: int) -> str | None:
    """One line when more jobs want to run than there are cores (None: the machine is not busy)."""
    if load <= cores:
        return None
    return (
        f"this machine is oversubscribed (load average {load:.1f} on {cores} cores): training runs slower than it "
        "could; stop other jobs, or start each job with OMP_NUM_THREADS=1 so PyTorch's threads do not compete"
    )


class SpeedWindow:
    """Steps and seconds over a moving window: steps/s and the time left that do not jump."""

    def __init__(self, window_s: float = SPEED_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()  # (time, step)

    def add(self, now: float, step: int) -> None:
        self._samples.append((now, step))
        # keep one sample older than the window, so the window spans it whole
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def steps_per_s(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def measured_s(self) -> float:
        return self._samples[-1][0] - self._samples[0][0] if self._samples else 0.0


class ProgressView:
    """A rich progress bar on stderr: epoch, iteration, losses, images/s, time elapsed and left.

    It fits the terminal: the figures that do not fit are left out whole (the least useful
    first), never cut in the middle of a number. ``before_start(facts)`` is called once, just
    before the first step, with what the trainer loaded (``training.loading.StartFacts``).
    """

    def __init__(
        self,
        before_start: Callable[[Any], None] | None = None,
        console: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        load_average: Callable[[], float] = lambda: os.getloadavg()[0],
        cores: Callable[[], int] = usable_cores,
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from ganctl.commands.common import err

        self._console = console or err
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(bar_width=BAR_WIDTH),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[times]}"),
            console=self._console,
            transient=False,
        )
        self._before_start = before_start
        self._clock, self._load_average, self._cores = clock, load_average, cores
        self._task: Any = None
        self._per_epoch = 1
        self._total = 1
        self._done = 0
        self._batch: int | None = None
        self._record: dict[str, Any] = {}
        self._fid = None
        self._speed = SpeedWindow()
        self._started: float | None = None
        self._load_checked = False

    def start(self, total: int, done: int, per_epoch: int, facts: Any = None) -> None:
        if self._before_start is not None:
            self._before_start(facts)
        self._per_epoch, self._total, self._done = per_epoch, total, done
        self._batch = getattr(facts, "batch_size", None)
        self._started = self._clock()
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=total, completed=done, epoch=self._epoch(done), losses="", times=self._times()
        )

    def advance(self, step: int) -> None:
        now = self._clock()
        self._done = step
        self._speed.add(now, step)
        times = self._times()
        self._progress.update(self._task, completed=step, epoch=self._epoch(step), times=times, losses=self._losses(times))
        if not self._load_checked and self._started is not None and now - self._started >= LOAD_CHECK_AFTER_S:
            self._check_load()

    def show(self, record: dict[str, Any]) -> None:
        self._record = record
        self._refresh()

    def show_eval(self, record: dict[str, Any]) -> None:
        self._fid = record["fid"]
        self._refresh()

    def stop(self) -> None:
        self._progress.stop()

    def _check_load(self) -> None:
        self._load_checked = True
        try:
            load = self._load_average()
        except OSError:  # no load average on this system
            return
        warning = oversubscription_warning(load, self._cores())
        if warning:
            self._console.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)

    def _refresh(self) -> None:
        if self._task is None:
            return
        times = self._times()
        self._progress.update(self._task, times=times, losses=self._losses(times))

    def _epoch(self, step: int) -> str:
        """The epoch being trained (the last one once the run is done), of how many."""
        epochs = max(1, -(-self._total // self._per_epoch))
        return f"{min(step // self._per_epoch + 1, epochs)}/{epochs}"

    def _times(self) -> str:
        elapsed = 0.0 if self._started is None else self._clock() - self._started
        rate = self._speed.steps_per_s()
        left = None if rate is None else (self._total - self._done) / rate
        return f"elapsed {hms(elapsed)}  left {hms(left)}"

    def images_per_s(self) -> float | None:
        """Images a second over the moving window (the records' figure until the window has two steps)."""
        rate = self._speed.steps_per_s()
        if rate is not None and self._batch:
            return rate * self._batch
        return self._record.get("images_per_s")

    def _parts(self) -> list[str]:
        """The figures, most useful first."""
        r, parts = self._record, []
        if "g_loss" in r and "d_loss_real" in r and "d_loss_fake" in r:
            parts.append(f"D {r['d_loss_real']:.3f}/{r['d_loss_fake']:.3f} G {r['g_loss']:.3f}")
        elif "g_loss" in r:
            parts.append(f"G {r['g_loss']:.3f}")
        images_per_s = self.images_per_s()
        if images_per_s is not None:
            parts.append(f"{images_per_s:.0f} img/s")
        if self._fid is not None:
            parts.append(f"FID {self._fid:.1f}")
        if "d_acc_real" in r and "d_acc_fake" in r:  # absent for a WGAN critic
            parts.append(f"acc {r['d_acc_real']:.2f}/{r['d_acc_fake']:.2f}")
        return parts

    def _losses(self, times: str) -> str:
        """As many whole figures as fit beside the other columns, in order of use."""
        epochs = max(1, -(-self._total // self._per_epoch))
        fixed = (
            len("epoch ") + 2 * len(str(epochs)) + 1 + BAR_WIDTH + 2 * len(str(self._total)) + 1 + len(times)
            + 4  # a space between each two of the five columns
        )
        room = self._console.width - fixed - 1
        shown: list[str] = []
        for part in self._parts():
            if len("  ".join([*shown, part])) <= room:
                shown.append(part)
        return "  ".join(shown)
