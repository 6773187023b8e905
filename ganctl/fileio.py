"""Writing files so that a crash never leaves a half-written one behind.

Every file ganctl writes that a later run reads (weights, checkpoints, JSON) goes through
``atomic_write_bytes``: the bytes go to a temporary file in the same folder, are flushed
to disk, and the temporary file is renamed over the target. A reader sees the old file or
the new one, never a torn one, even after ``kill -9`` or a power cut. ``read_regular_file`` is
the other side: it reads a file ganctl wrote, refusing a FIFO or device put in its place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` in one rename.

    ``durable=False`` skips the fsyncs: still whole-or-absent if the process dies, but a power
    cut may lose the file. For thousands of small outputs (``sample --individual``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; ours are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)  # make the rename itself durable


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    A FIFO, a device or a folder put where a file should be is refused without being waited on
    (opened non-blocking, checked before a byte is read); a file over ``limit`` is refused before
    it is read into memory. FileNotFoundError passes through (callers treat absence themselves);
    every other refusal is a one-sentence ``GanctlError`` naming the file and the limit.
    """
    import stat

    from ganctl.errors import GanctlError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO, a socket or a device"
            raise GanctlError(f"{path} is {kind}, not a regular file; ganctl reads only regular files")
        if info.st_size > limit:
            raise GanctlError(f"{path} is {info.st_size:,} bytes, more than the {limit:,} bytes ganctl reads for it")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:  # grew while being read
                raise GanctlError(f"{path} is more than the {limit:,} bytes ganctl reads for it")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
