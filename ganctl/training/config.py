"""The resolved options of a training run, and their checks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ganctl.errors import GanctlError
from ganctl.options import check_fields
from ganctl.recipe import Fit, Recipe


@dataclass
class TrainConfig:
    arch: str
    recipe: Recipe  # the architecture's recipe with the command line's overrides applied
    run_dir: str = ""
    data_dir: str | None = None  # None: ganctl.data.default_data_dir()
    dataset_limit: int | None = None  # use only the first N images (quick experiments)
    fit: Fit = "crop"  # how a folder's non-square images become square: crop | pad | stretch
    init_from: str | None = None  # a run folder or generator file to start from (fine-tuning; a new run only)
    device: str = "auto"  # auto | cpu | cuda | mps
    # bf16 autocast. None (auto): on for CUDA, and for CPUs with native bf16 (AVX-512 BF16, AMX),
    # where it takes about 1.5x less time a step; False: exact float32 (the tutorials' arithmetic).
    amp: bool | None = None
    channels_last: bool = True  # NHWC memory layout: faster convolutions on CPU and GPU
    # The images on the device (False), streamed from host memory (True), or on the device
    # when they fit (None); the same batches either way.
    stream_data: bool | None = None
    compile: bool = False  # torch.compile each phase of the step whole (minutes of warm-up on a CPU)
    micro_batch: int | None = None  # images (of each half) through the networks at a time, gradients accumulated
    sync_bn: bool = False  # under torchrun: batch norm over the global batch (SyncBatchNorm; CUDA only)
    seed: int = 0
    max_steps: int | None = None  # stop after this many iterations (smoke runs)
    checkpoint_every: int | None = None  # iterations between checkpoints; None: once per epoch
    keep_checkpoints: int = 3
    log_every: int = 50  # iterations between metrics records (the only host syncs)
    quiet: bool = False
    eval_every: int | None = None  # epochs between FID/KID evaluations; None: no evaluation
    eval_n: int = 10_000  # generated images per evaluation (and reference images, capped by the dataset)
    inception: str | None = None  # FID Inception weights file; None: $GANCTL_INCEPTION_WEIGHTS or the cache
    download: bool = True
    tensorboard: bool = False  # TensorBoard event files in RUN/tb/ (needs the tensorboard package)
    study: str | None = None  # the study (`ganctl study`) this run is part of; None: a run of its own

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["recipe"] = self.recipe.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["recipe"] = Recipe.from_dict(d["recipe"])
        return cls(**d)


def check(config: TrainConfig) -> None:
    """Refuse impossible numbers with one sentence each: each field's check as ganctl.options
    declares it, then the rules between fields."""
    complaint = check_fields(config)
    if complaint:
        raise GanctlError(complaint)
    r = config.recipe
    if not 0 <= r.beta1 < 1 or not 0 <= r.beta2 < 1:
        raise GanctlError(f"Adam betas must lie in [0, 1), not {r.beta1} and {r.beta2}")
    if r.d_update in ("separate", "joint") and r.batch_size < 2:
        raise GanctlError(f"--batch-size must be at least 2 with d_update '{r.d_update}' (it is split into real and fake halves)")


def real_per_step(recipe: Recipe) -> int:
    """Real images one iteration consumes: half the batch for the Keras recipes, all of it for TF's."""
    return recipe.batch_size if recipe.d_update == "simultaneous" else recipe.batch_size // 2


@dataclass(frozen=True)
class Schedule:
    """How long a run is and what its periodic work counts in."""

    steps_per_epoch: int  # floor(N / batch): the records' "epoch" is step / this
    steps_per_tick: int  # what sample_every and eval_every count: an epoch, or tick_kimg of images
    planned_steps: int  # the recipe's length (a linear LR decay ends there)
    total_steps: int  # planned_steps, capped by --max-steps
    unit: str  # "epoch" or "kimg": how grids and snapshots are named


def schedule(recipe: Recipe, dataset_size: int, max_steps: int | None = None) -> Schedule:
    """The run's length and periods: in epochs of the dataset, or in images shown to D (kimg)."""
    per_epoch = iterations_per_epoch(recipe, dataset_size)
    if recipe.kimg is not None:
        planned = max(1, round(recipe.kimg * 1000 / recipe.batch_size))
        per_tick, unit = max(1, round(recipe.tick_kimg * 1000 / recipe.batch_size)), "kimg"
    else:
        planned, per_tick, unit = recipe.epochs * per_epoch, per_epoch, "epoch"
    total = planned if max_steps is None else min(planned, max_steps)
    return Schedule(per_epoch, per_tick, planned, total, unit)


def iterations_per_epoch(recipe: Recipe, dataset_size: int) -> int:
    """floor(N / batch), as the seeds count (390 for CIFAR-10 at 128)."""
    if recipe.batch_size > dataset_size:
        raise GanctlError(f"--batch-size {recipe.batch_size} is larger than the dataset ({dataset_size} images)")
    return dataset_size // recipe.batch_size


def read_config_file(path) -> TrainConfig:
    """The ``config.json`` of a run folder, checked field by field: one sentence naming what is wrong."""
    from pathlib import Path

    from ganctl.registry import ARCHITECTURES
    from ganctl.runfolder.config import read_config_json

    path = Path(path)
    damaged = f"{path} is damaged"
    data = read_config_json(path)  # JSON, an object, with a recipe object
    if "arch" not in data:
        raise GanctlError(f"{damaged}: it lacks 'arch'; restore it or start a new run")
    _check_fields(TrainConfig, {k: v for k, v in data.items() if k != "recipe"}, "", damaged)
    _check_fields(Recipe, data["recipe"], "recipe.", damaged)
    if data["arch"] not in ARCHITECTURES:
        raise GanctlError(
            f"{path} names the architecture '{data['arch']}', which is not installed; "
            "load the plugin that provides it (--plugin) or start a new run"
        )
    try:
        config = TrainConfig.from_dict(data)
        check(config)
    except GanctlError as exc:
        raise GanctlError(f"{damaged}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise GanctlError(f"{damaged}: {str(exc).splitlines()[0][:120]}") from None
    return config


def _check_fields(cls, values: dict[str, Any], prefix: str, damaged: str) -> None:
    import typing

    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue  # an older ganctl's file: the default
        if not _fits(values[field.name], hints[field.name]):
            shown = repr(values[field.name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise GanctlError(f"{damaged}: '{prefix}{field.name}' is {shown}, not a valid value; restore it or start a new run")


def _fits(value: Any, hint: Any) -> bool:
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(_fits(v, h) for v, h in zip(value, args))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return True
