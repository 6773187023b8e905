"""What a training writes into its run folder, and the one place that asks which process writes.

``open_run_folder`` makes and locks the folder (rank 0 alone), then returns a ``RunWriter``:
metrics records (and the same record to TensorBoard), grids, generator files, checkpoints. Every
other process gets a ``SilentWriter`` with the same methods that writes nothing, so no part of
the loop asks which rank it is on.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from ganctl import __version__, runs
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_json
from ganctl.images import save_animation_of_files, save_png
from ganctl.spectral import baked_copy, has_parametrizations
from ganctl.training import checkpoint as ckpt
from ganctl.training.config import TrainConfig
from ganctl.training.run_folder import RunFolderLock, holds_files, remove_stale_temporaries
from ganctl.weights import save_generator


class SilentWriter:
    """The writer of a process that does not write (under torchrun, every rank but 0)."""

    writes = False
    tensorboard = None

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

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
        return ckpt.checkpoint_path(self.run_dir / runs.CHECKPOINTS, step)

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
        with open(self.run_dir / runs.METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.record(record)

    def start_metrics(self) -> None:
        (self.run_dir / runs.METRICS).touch()

    def grid(self, picture: Any, tag: str, step: int) -> None:
        save_png(picture, self.run_dir / runs.SAMPLES / f"{tag}.png")
        if self.tensorboard is not None:
            self.tensorboard.image("samples", step, picture)

    def real_grid(self, make_picture: Any) -> None:
        """``real.png``, once: what the model learns from, at its size, beside its grids."""
        path = self.run_dir / runs.SAMPLES / "real.png"
        if not path.exists():
            save_png(make_picture(), path)

    def generator(self, path: Path, network: torch.nn.Module, **metadata: Any) -> None:
        """A generator file, spectral norm baked in (``metadata``: save_generator's arguments)."""
        if has_parametrizations(network):
            network = baked_copy(network)
        save_generator(path, network, **metadata)

    def checkpoint(self, state: ckpt.NamedState, step: int, keep: int) -> Path:
        folder = self.run_dir / runs.CHECKPOINTS
        path = ckpt.checkpoint_path(folder, step)
        state.save(path, step=step)
        if self.tensorboard is not None:  # what precedes a checkpoint is never written again on resume
            self.tensorboard.flush()
        ckpt.prune(folder, keep)
        return path

    def animation(self) -> None:
        """progress.gif from the grids so far, built once (at the end or on interruption), not per grid."""
        samples = self.run_dir / runs.SAMPLES
        frames = sorted(samples.glob("epoch-*.png"))
        if (samples / "final.png").exists():
            frames.append(samples / "final.png")
        save_animation_of_files(frames, self.run_dir / "progress.gif", fps=2)

    def open_tensorboard(self, *, purge_step: int | None, config: dict[str, Any]) -> None:
        from ganctl.tensorboard_sink import TensorBoardSink

        self.tensorboard = TensorBoardSink(self.run_dir, purge_step=purge_step, config=config)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_run_folder(config: TrainConfig, *, resume: bool, held: contextlib.ExitStack) -> RunWriter:
    """Make and lock the run folder, then write its config (rank 0 alone: the others never touch it)."""
    run_dir = Path(config.run_dir)
    _check_empty(run_dir, resume)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot write to {run_dir}: {exc.strerror}") from None
    # The lock before anything is removed or written: a second `train --resume` started
    # while this one runs must not touch its files (its temporary files above all).
    held.enter_context(RunFolderLock(run_dir))
    _check_empty(run_dir, resume)  # again, now that no other training can be writing into it
    config_file = run_dir / runs.CONFIG
    try:
        remove_stale_temporaries(run_dir)  # what a killed process left half-written
        # config.json first: once the folder holds anything, it can be resumed
        if not config_file.exists():
            atomic_write_json(config_file, {"ganctl_version": __version__, **config.to_dict()})
        for sub in (runs.CHECKPOINTS, runs.SAMPLES, runs.SNAPSHOTS):
            (run_dir / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise GanctlError(f"cannot write to {run_dir}: {exc.strerror}") from None
    runs.set_latest(run_dir)
    return RunWriter(run_dir)


def _check_empty(run_dir: Path, resume: bool) -> None:
    """A new run only goes into an empty folder (stale temporary files and the lock don't count)."""
    if not resume and run_dir.exists() and holds_files(run_dir):
        raise GanctlError(f"{run_dir} already holds files; continue it with --resume or choose another --out")
