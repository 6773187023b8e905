"""A run folder's lock, what counts as empty, and cleaning up after a kill.

The process training in a run folder holds ``.lock`` (``fcntl.flock``, exclusive); the kernel
drops it if the process dies. No torch here: ``ganctl train --resume`` asks ``holds_files``
before anything heavy is imported, and ``ganctl runs`` asks ``is_running``.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from ganctl.errors import GanctlError
from ganctl.runfolder.layout import LOCK, RunFolder


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
        path = RunFolder(self.run_dir).lock
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
        if entry.name == LOCK:
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


def is_running(run_dir: Path) -> bool:
    """Whether a training holds the run's lock now.

    The lock file is opened read-only and never created, truncated or followed through a
    symbolic link; a shared lock that cannot be taken means an exclusive one is held.
    """
    try:
        fd = os.open(RunFolder(run_dir).lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO: no wait
    except OSError:  # no lock file (never trained, or an older ganctl), or a link
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # no training locks a FIFO or a device
            return False
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
