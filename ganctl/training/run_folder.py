"""A run folder's housekeeping: its lock, what counts as empty, and cleaning up after a kill.

No torch here: ``ganctl train --resume`` asks ``holds_files`` before anything heavy is imported.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from ganctl import runs
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes


class RunFolderLock:
    """An exclusive lock on a run folder; the kernel drops it if the process dies.

    ``.lock`` is opened without following links and never truncated: a ``.lock`` that is a
    link or not a regular file is refused, and the PID is written only into a lock file this
    process created itself.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.fd = -1

    def __enter__(self) -> RunFolderLock:
        path = self.run_dir / runs.LOCK
        flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        created = False
        try:
            try:
                self.fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                self.fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            if path.is_symlink() or (path.exists() and not path.is_file()):
                kind = "a symbolic link" if path.is_symlink() else "not a regular file"
                raise GanctlError(f"{path} is {kind}; {self._remove_hint()}") from None
            raise GanctlError(f"cannot open {path}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise GanctlError(f"{path} is not a regular file; {self._remove_hint()}")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise GanctlError(f"another training is already running in {self.run_dir}") from None
        if created:  # never write into a file this process did not make
            try:
                os.write(self.fd, f"{os.getpid()}\n".encode())
            except OSError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def _remove_hint(self) -> str:
        return f"remove it if no training is running in {self.run_dir}, then try again"


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything but the lock and temporary files a killed write left."""
    for entry in Path(folder).iterdir():
        if entry.name == runs.LOCK:
            continue
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            continue
        return True
    return False


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files a process killed mid-write left (only under the lock)."""
    for stale in Path(folder).rglob(".*.tmp"):
        if stale.is_symlink() or not stale.is_dir():  # a link itself goes, never its target
            stale.unlink(missing_ok=True)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records written after the checkpoint a run resumes from (and torn or damaged lines)."""
    kept = []
    if path.exists():
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise GanctlError(f"cannot read {path}: {exc.strerror}") from None
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # a torn or damaged line
                continue
            if isinstance(record, dict) and _is_number(record.get("step")) and record["step"] <= step:
                kept.append(line)
    atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
