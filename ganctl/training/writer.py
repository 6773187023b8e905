"""What a training writes into its run folder, and the one place that asks which process writes.

``open_run_folder`` makes and locks the folder (rank 0 alone), then returns a ``RunWriter``:
metrics records (and the same record to TensorBoard), grids, generator files, checkpoints. Every
other process gets a ``SilentWriter`` with the same methods that writes nothing, so no part of
the loop asks which rank it is on.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_json
from ganctl.data.images import save_animation_of_files, save_png
from ganctl.runfolder.layout import RunFolder, set_latest
from ganctl.runfolder.lock import RunFolderLock, holds_files, remove_stale_temporaries
from ganctl.runfolder.manifest import Manifest, write_manifest
from ganctl.runfolder.records import MetricsLog
from ganctl.networks.spectral import baked_copy, has_parametrizations
from ganctl.training import checkpoint as ckpt
from ganctl.training.config import TrainConfig
from ganctl.networks.weights import save_generator


class SilentWriter:
    """The writer of a process that does not write (under torchrun, every rank but 0)."""

    writes = False
    tensorboard = None

    def __init__(self, run_dir: Path) -> None:
        self.folder = RunFolder(run_dir)

    def record(self, record: dict[str, Any]) -> None:
        pass

    def grid(self, picture: Any, tag: str, step: int) -> None:
        pass

    def real_grid(self, make_picture: Any) -> None:
        pass

    def generator(self, path: Path, network: torch.nn.Module, **metadata: Any) -> None:
        pass

    def checkpoint(self, state: ckpt.NamedState, step: int, keep: int) -> Path:
        state.collect()  # this process's random states go to rank 0, which writes the file
        return self.folder.checkpoint(step)

    def animation(self) -> None:
        pass

    def start_metrics(self) -> None:
        pass

    def open_tensorboard(self, *, purge_step: int | None, config: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class RunWriter(SilentWriter):
    """Rank 0's outputs into ``run_dir``."""

    writes = True

    def record(self, record: dict[str, Any]) -> None:
        """One line of metrics.jsonl, and the same record to TensorBoard."""
        MetricsLog(self.folder.metrics).append(record)
        if self.tensorboard is not None:
            self.tensorboard.record(record)

    def start_metrics(self) -> None:
        self.folder.metrics.touch()

    def grid(self, picture: Any, tag: str, step: int) -> None:
        save_png(picture, self.folder.grid(tag))
        if self.tensorboard is not None:
            self.tensorboard.image("samples", step, picture)

    def real_grid(self, make_picture: Any) -> None:
        """``real.png``, once: what the model learns from, at its size, beside its grids."""
        path = self.folder.real_grid
        if not path.exists():
            save_png(make_picture(), path)

    def generator(self, path: Path, network: torch.nn.Module, **metadata: Any) -> None:
        """A generator file, spectral norm baked in (``metadata``: save_generator's arguments)."""
        if has_parametrizations(network):
            network = baked_copy(network)
        save_generator(path, network, **metadata)

    def checkpoint(self, state: ckpt.NamedState, step: int, keep: int) -> Path:
        path = self.folder.checkpoint(step)
        state.save(path, step=step)
        if self.tensorboard is not None:  # what precedes a checkpoint is never written again on resume
            self.tensorboard.flush()
        ckpt.prune(self.folder.checkpoints, keep)
        return path

    def animation(self) -> None:
        """progress.gif from the grids so far, built once (at the end or on interruption), not per grid."""
        save_animation_of_files(self.folder.animation_frames(), self.folder.progress_animation, fps=2)

    def open_tensorboard(self, *, purge_step: int | None, config: dict[str, Any]) -> None:
        from ganctl.runfolder.tensorboard import TensorBoardSink

        self.tensorboard = TensorBoardSink(self.folder.path, purge_step=purge_step, config=config)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_run_folder(config: TrainConfig, manifest: Manifest, *, resume: bool, held: contextlib.ExitStack) -> RunWriter:
    """Make and lock the run folder, then write its config and manifest (rank 0 alone: the others never touch it)."""
    run_dir = Path(config.run_dir)
    folder = RunFolder(run_dir)
    _check_empty(run_dir, resume)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot write to {run_dir}: {exc.strerror}") from None
    # The lock before anything is removed or written: a second `train --resume` started
    # while this one runs must not touch its files (its temporary files above all).
    held.enter_context(RunFolderLock(run_dir))
    _check_empty(run_dir, resume)  # again, now that no other training can be writing into it
    try:
        remove_stale_temporaries(run_dir)  # what a killed process left half-written
        # config.json first: once the folder holds anything, it can be resumed
        if not folder.config.exists():
            atomic_write_json(folder.config, {"ganctl_version": __version__, **config.to_dict()})
        write_manifest(run_dir, manifest)  # (a resumed run keeps the manifest of its first start)
        for sub in folder.subfolders():
            sub.mkdir(exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot write to {run_dir}: {exc.strerror}") from None
    set_latest(run_dir)
    return RunWriter(run_dir)


def _check_empty(run_dir: Path, resume: bool) -> None:
    """A new run only goes into an empty folder (stale temporary files and the lock don't count)."""
    if not resume and run_dir.exists() and holds_files(run_dir):
        raise GanctlError(f"{run_dir} already holds files; continue it with --resume or choose another --out")
