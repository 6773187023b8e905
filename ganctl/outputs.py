"""Output paths, checked before any work, so a refusal costs nothing and writes nothing.

Shared by every command that writes files (``sample``, ``latent-walk``, ``latent-arith``,
``eval``). Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ganctl.errors import GanctlError


def check_output_file(path: Path, force: bool) -> None:
    """Refuse an output that exists (without ``force``), is a folder, or cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise GanctlError(f"{path} is a folder; name a file")
    if path.exists() and not force:
        raise GanctlError(f"{path} already exists; pass --force to overwrite it")
    _check_can_create(path.parent)


def check_output_folder(folder: Path, names: Sequence[str], force: bool) -> None:
    """Refuse a folder that is a file, cannot be created, or (without ``force``) holds one of ``names``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanctlError(f"{folder} is a file, not a folder")
    if folder.is_dir():
        taken = set(os.listdir(folder)).intersection(names)
        if taken and not force:
            raise GanctlError(
                f"{folder} already holds {len(taken):,} of the files to write (e.g. {min(taken)}); "
                "pass --force to overwrite them"
            )
    _check_can_create(folder)


def make_folder(folder: Path) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None


def _check_can_create(path: Path) -> None:
    """Files can be written in folder ``path``: it, or its nearest existing ancestor, is a writable folder."""
    ancestor = Path(path).absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GanctlError(f"cannot write under {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GanctlError(f"cannot write under {path}: the folder {ancestor} is not writable")


def individual_names(n: int) -> list[str]:
    """``000000.png``, ``000001.png``...: six digits, more when ``n`` needs them, so names sort."""
    digits = max(6, len(str(n - 1)))
    return [f"{i:0{digits}d}.png" for i in range(n)]
