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
from ganctl.training.config import TrainConfig, iterations_per_epoch, real_per_step


@dataclass
class RunInputs:
    """A checked request: where it runs, what it learns from, how long, and its evaluation."""

    hardware: Hardware
    data: TrainingImages
    steps_per_epoch: int
    total_steps: int  # the recipe's epochs, capped by --max-steps
    evaluation: Any  # a training.evaluation.TrainingEval, or None

    def manifest(self, config: TrainConfig, processes: distributed.Processes) -> Manifest:
        """What the run folder's manifest.json records of these inputs."""
        classes = ()
        if self.data.class_names:
            from ganctl.conditional import class_counts

            classes = zip(self.data.class_names, class_counts(self.data.labels, len(self.data.class_names)))
        return Manifest.create(
            steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps, epochs=config.recipe.epochs,
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
    _check_paired(r.loss, loss)
    if r.regularizer != "none":
        REGULARIZERS.get(r.regularizer)
    data = _load_images(c, say)
    if r.conditional:
        check_labelled(r.dataset, data.labels, data.class_names)
    steps_per_epoch = iterations_per_epoch(r, data.images.shape[0])
    total_steps = r.epochs * steps_per_epoch
    if c.max_steps is not None:
        total_steps = min(total_steps, c.max_steps)
    evaluation = None
    if c.eval_every is not None:
        from ganctl.training.evaluation import TrainingEval

        evaluation = TrainingEval(
            dataset=r.dataset, data_dir=Path(c.data_dir) if c.data_dir else None, image_size=r.image_size,
            channels=r.channels, train_images=data.images.shape[0], n=c.eval_n, inception=c.inception,
            download=c.download, device=device, say=say, processes=processes,
        )  # fmt: skip
    hardware = Hardware(device, amp=c.amp, channels_last=c.channels_last, compile=c.compile, sync_bn=c.sync_bn, stream=c.stream_data)
    return RunInputs(hardware, data, steps_per_epoch, total_steps, evaluation)


def _load_images(c: TrainConfig, say: Callable[[str], None]) -> TrainingImages:
    from ganctl.data import LoadedImages, load_labelled
    from ganctl.data.cache import load_images_to_stream

    r = c.recipe
    options = dict(
        data_dir=Path(c.data_dir) if c.data_dir else None, split="train", image_size=r.image_size,
        channels=r.channels, download=c.download, limit=c.dataset_limit, log=say,
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


def _check_paired(name: str, loss: object) -> None:
    """A relativistic loss (``paired``) trains only with a step that hands it real and fake logits together."""
    if not getattr(loss, "paired", False):
        return
    from ganctl.training.step import TrainStep

    if not getattr(TrainStep, "steps_paired_losses", False):
        raise GanctlError(f"the {name} loss compares real and fake logits in pairs, which this version's training step does not do yet")
