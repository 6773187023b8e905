"""What a run is made from, found before anything is written: its names checked, its images loaded.

Everything that can be wrong with a request (an unknown loss, an architecture that cannot build
at the size, a missing dataset, an evaluation that cannot run) is found here, before the run
folder is made, so bad input never leaves a half-made run behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl import distributed
from ganctl.errors import GanctlError
from ganctl.registry import ARCHITECTURES, LOSSES, REGULARIZERS
from ganctl.runfolder.manifest import Manifest
from ganctl.training.assembly import Hardware, TrainingImages
from ganctl.training.config import Schedule, TrainConfig, real_per_step, schedule


@dataclass(frozen=True)
class StartFacts:
    """What the start of a run tells the user (``ProgressView.start``): counted once loaded."""

    images: int
    classes: int  # 0: unconditional
    steps_per_epoch: int
    total_steps: int
    batch_size: int  # the global batch: images per iteration
    device: str
    bf16: bool  # bf16 autocast (else float32)


@dataclass
class RunInputs:
    """A checked request: where it runs, what it learns from, how long, and its evaluation."""

    hardware: Hardware
    data: TrainingImages
    schedule: Schedule  # the run's length and periods
    evaluation: Any  # a training.evaluation.TrainingEval, or None

    def facts(self, config: TrainConfig) -> StartFacts:
        from ganctl.device import use_amp

        device = self.hardware.device
        return StartFacts(
            images=self.data.images.shape[0], classes=len(self.data.class_names or ()), steps_per_epoch=self.schedule.steps_per_epoch,
            total_steps=self.schedule.total_steps, batch_size=config.recipe.batch_size, device=str(device),
            bf16=use_amp(device, self.hardware.amp),
        )  # fmt: skip

    def manifest(self, config: TrainConfig, processes: distributed.Processes) -> Manifest:
        """What the run folder's manifest.json records of these inputs."""
        classes = ()
        if self.data.class_names:
            from ganctl.conditional import class_counts

            classes = zip(self.data.class_names, class_counts(self.data.labels, len(self.data.class_names)))
        return Manifest.create(
            steps_per_epoch=self.schedule.steps_per_epoch, total_steps=self.schedule.total_steps, epochs=config.recipe.epochs,
            batch_size=config.recipe.batch_size, kimg=config.recipe.kimg,
            images=self.data.images.shape[0], classes=classes, world_size=processes.world, device=self.hardware.device,
        )  # fmt: skip


def load_inputs(config: TrainConfig, processes: distributed.Processes, say: Callable[[str], None]) -> RunInputs:
    """Check the names and load the training images (not yet onto the device)."""
    from ganctl.conditional import check_conditional_arch, check_labelled

    c, r = config, config.recipe
    device = processes.device_for(c.device)
    processes.check_batch(r.batch_size, real_per_step(r), halves=r.d_update in ("separate", "joint"))
    if c.sync_bn and device.type != "cuda":
        raise GanctlError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
    arch = ARCHITECTURES.get(c.arch).obj
    arch.check(**arch.arch_args(r.image_size, r.channels, r.latent_dim))  # before minutes of loading
    if r.conditional:
        check_conditional_arch(arch)
    loss = LOSSES.get(r.loss).obj  # unknown names are refused now, not after the data has loaded
    _check_paired(r.loss, loss, r.d_update)
    if r.regularizer != "none":
        REGULARIZERS.get(r.regularizer)
    data = _load_images(c, say)
    if r.conditional:
        check_labelled(r.dataset, data.labels, data.class_names)
    run_schedule = schedule(r, data.images.shape[0], c.max_steps)
    if c.max_steps is None:  # (a run stopped early on purpose is not "too short")
        short = too_short(c, arch.recipe, run_schedule, data.images.shape[0])
        if short:
            say(f"warning: {short}")
    evaluation = None
    if c.eval_every is not None:
        from ganctl.training.evaluation import TrainingEval

        evaluation = TrainingEval(
            dataset=r.dataset, data_dir=Path(c.data_dir) if c.data_dir else None, image_size=r.image_size,
            channels=r.channels, train_images=data.images.shape[0], n=c.eval_n, inception=c.inception,
            download=c.download, device=device, say=say, processes=processes,
        )  # fmt: skip
    if c.micro_batch is not None:
        share = real_per_step(r) // processes.world  # real images of this process's D update
        if share % c.micro_batch:
            what = "batch" if r.d_update == "simultaneous" else "half-batch of real (and of fake) images"
            raise GanctlError(f"--micro-batch {c.micro_batch} must divide each process's {what}, {share} images")
    hardware = Hardware(device, amp=c.amp, channels_last=c.channels_last, compile=c.compile, sync_bn=c.sync_bn,
                        stream=c.stream_data, micro_batch=c.micro_batch)
    return RunInputs(hardware, data, run_schedule, evaluation)


SHORT_RUN = 1000  # iterations: below this, a recipe's epochs on another dataset are worth a warning


def too_short(config: TrainConfig, own: Any, run_schedule: Schedule, images: int) -> str | None:
    """Why a run is far too short for its recipe, or None.

    A recipe's epochs were chosen for its own dataset; on a small folder they are a few dozen
    iterations (12 epochs of 300 images at batch 64: 48), far from what the recipe needs."""
    r = config.recipe
    from_recipe = r.kimg is None and own.kimg is None and r.epochs == own.epochs  # the length was not given
    if not from_recipe or r.dataset == own.dataset or run_schedule.total_steps >= SHORT_RUN:
        return None
    kimg = SHORT_RUN * 2 * r.batch_size / 1000
    return (
        f"this run is only {run_schedule.total_steps:,} iterations: the recipe's {r.epochs} epochs were meant for "
        f"{own.dataset}, and an epoch of {images:,} images is {run_schedule.steps_per_epoch:,} iteration(s); give the length "
        f"in images shown to D, e.g. --kimg {kimg:g} ({2 * SHORT_RUN:,} iterations), or more --epochs"
    )


def _load_images(c: TrainConfig, say: Callable[[str], None]) -> TrainingImages:
    from ganctl.data import LoadedImages, load_labelled
    from ganctl.data.cache import load_images_to_stream

    r = c.recipe
    options = dict(
        data_dir=Path(c.data_dir) if c.data_dir else None, split="train", image_size=r.image_size,
        channels=r.channels, download=c.download, limit=c.dataset_limit, log=say, fit=c.fit, describe=True,
    )  # fmt: skip
    if c.stream_data and not r.conditional:
        # streamed: a folder comes memory-mapped from its cache file, never whole in memory
        # (the cache holds no labels: a conditional run loads its folder into host memory)
        loaded = LoadedImages(load_images_to_stream(r.dataset, **options))
    else:
        loaded = load_labelled(r.dataset, **options)
    if not r.conditional:  # an unconditional run never sees the labels
        return TrainingImages(loaded.images)
    return TrainingImages(loaded.images, loaded.labels, tuple(loaded.class_names))


def _check_paired(name: str, loss: object, d_update: str) -> None:
    """A relativistic loss (``paired``) trains only with a step that hands it real and fake logits together."""
    if not getattr(loss, "paired", False):
        return
    if d_update == "separate":  # D's halves are separate optimiser steps there: no pairs to compare
        raise GanctlError(f"the {name} loss compares real and fake logits in pairs; use --d-update joint or simultaneous, not separate")
    from ganctl.training.step import TrainStep

    if not getattr(TrainStep, "steps_paired_losses", False):
        raise GanctlError(f"the {name} loss compares real and fake logits in pairs, which this version's training step does not do yet")
