"""One assembly of a run: a recipe, its images and the process layout become the parts that train.

``assemble`` builds, in one fixed order, everything a training step needs: the networks (the
architecture's factory, the recipe's initialisation, spectral norm, memory layout), their Adam
optimisers and learning-rate schedules, the real-image sampler, every random stream, the
generator EMA, DiffAugment, the loss and regulariser, and the step itself with its named
statistics. ``ganctl train`` and ``ganctl bench`` both call it, so the step that bench times is
the step that train runs, spectral norm and label smoothing included.

The order matters: the global seed is set before the networks are built (their
initialisation draws from it), and each stream has its own seed (``seed + 1`` real batches,
``+ 2`` latents, ``+ 3`` the fixed grid latents, ``+ 4`` augmentation, ``+ 5`` penalties), so a
single-process run computes exactly what it always has.

``RunParts.add_state`` lists the parts in the checkpoint's table under the names checkpoints
have always used, so a checkpoint written by an earlier ganctl still resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ganctl import distributed
from ganctl.conditional import GridLayout, class_counts
from ganctl.device import use_amp
from ganctl.recipe import Recipe
from ganctl.registry import ARCHITECTURES, LOSSES, REGULARIZERS
from ganctl.networks.spectral import apply_spectral_norm
from ganctl.training import checkpoint as ckpt
from ganctl.training.ada import AdaptiveAugment
from ganctl.training.augment import AugmentPipeline, DiffAugment, split_policy
from ganctl.training.config import Schedule, real_per_step, schedule
from ganctl.training.ema import GeneratorEMA
from ganctl.training.stats import StepStats
from ganctl.training.step import Networks, Share, Streams, TrainStep
from ganctl.training.streaming import real_batches


@dataclass
class TrainingImages:
    """What a run learns from: uint8 images ``(N, C, H, W)`` in host memory, and their classes."""

    images: torch.Tensor
    labels: torch.Tensor | None = None  # only for a conditional run
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hardware:
    """Where and how the step runs (the run options that do not change its arithmetic's meaning)."""

    device: torch.device
    amp: bool | None = None  # None: device.use_amp decides
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    stream: bool | None = None  # real images streamed from host memory (None: when they do not fit)
    micro_batch: int | None = None  # images (of each half) through the networks at a time; None: the whole batch


@dataclass
class RunParts:
    """Everything ``assemble`` made, by name."""

    recipe: Recipe
    arch_args: dict[str, int]
    device: torch.device
    amp: bool
    schedule: Schedule
    nets: Networks
    schedules: list[Any]
    streams: Streams
    stats: StepStats
    step: TrainStep
    fixed_z: torch.Tensor  # the latents of every grid (on the CPU first: the same grid on any device)
    grid: GridLayout
    class_names: tuple[str, ...]
    class_counts: list[int]
    seed: int
    processes: distributed.Processes
    per_rank: distributed.PerRankParts = field(init=False)

    def __post_init__(self) -> None:
        self.per_rank = distributed.PerRankParts(self.processes)

    @property
    def G(self) -> torch.nn.Module:
        return self.nets.G

    @property
    def ema(self) -> GeneratorEMA | None:
        return self.nets.ema

    def sampling_generator(self) -> torch.nn.Module:
        """What grids, snapshots, evaluations and generator files use: the EMA generator when there is one."""
        return self.nets.ema.average if self.nets.ema is not None else self.nets.G

    # --- the checkpoint's table ------------------------------------------------------------
    def add_state(self, state: ckpt.NamedState, current_step: Callable[[], int]) -> None:
        """The run's stateful parts, under the names checkpoints have always used.

        ``current_step`` gives the restored step, for a process that must start new streams
        because the checkpoint was written by another number of processes.
        """
        n = self.nets
        state.add_module("G", n.G)
        state.add_module("D", n.D)
        state.add_optimizer("opt_G", n.g_optimizer)
        state.add_optimizer("opt_D", n.d_optimizer)
        for name, lr_schedule in zip(("lr_G", "lr_D"), self.schedules):
            state.add(name, lambda s=lr_schedule: ({}, s.state_dict()), lambda _, values, s=lr_schedule: s.load_state_dict(values))
        if n.ema is not None:
            state.add_module("G_ema", n.ema.average)
        real = self.streams.real
        state.add("real", lambda: (real.state(), None), lambda tensors, _: real.load_state(tensors))
        state.add_rng("rng_latent", self.streams.latents)  # the global batch's latents: one stream for all processes

        # each process's own streams: every rank's are saved (one process: as they always were)
        def new_seed() -> int:
            return distributed.rank_seed(self.seed, self.processes.rank, restart_step=max(current_step(), 1))

        def own_rng(generator: torch.Generator, offset: int):
            return self.per_rank.wrap(
                lambda: ({"state": generator.get_state()}, None),
                lambda t, _: generator.set_state(t["state"]),
                lambda: generator.manual_seed(new_seed() + offset),
            )

        state.add("rng_penalty", *own_rng(self.streams.penalty, 5))
        augment, ada = self.streams.augment, self.streams.ada
        if augment is not None and (ada is None or augment.diff is not None):
            state.add("rng_augment", *own_rng(augment.rng if ada is None else augment.diff.rng, 4))
        if ada is not None:  # p is the same on every process (its statistics are averaged); each draws its own
            state.add("ada", lambda: (ada.state(), None), lambda t, _: ada.load_state(t))
            state.add("rng_ada", *own_rng(ada.rng, 7))
        state.add("rng_torch", *self.per_rank.wrap(self._global_rng_state, self._load_global_rng_state, lambda: torch.manual_seed(new_seed())))
        state.add("fixed_z", lambda: ({"z": self.fixed_z}, None), lambda t, _: setattr(self, "fixed_z", t["z"].to(self.device)))
        stats = self.stats
        state.add("stats", *self.per_rank.wrap(stats.state, lambda t, values: stats.load_state(t, values, self.device), stats.reset))

    def _global_rng_state(self) -> tuple[dict[str, torch.Tensor], None]:
        tensors = {"cpu": torch.get_rng_state()}  # dropout and other global draws
        if self.device.type == "cuda":
            tensors["cuda"] = torch.cuda.get_rng_state(self.device)
        return tensors, None

    def _load_global_rng_state(self, tensors: dict[str, torch.Tensor], _: Any) -> None:
        torch.set_rng_state(tensors["cpu"])
        if "cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["cuda"], self.device)


def make_adam(network: torch.nn.Module, recipe: Recipe, lr: float, device: torch.device, lazy_interval: int = 1) -> torch.optim.Optimizer:
    """Adam as the recipe says; for a regulariser applied lazily every N steps, StyleGAN2's adjustment.

    A lazy penalty adds one optimiser step every N iterations; scaling the lr by r = N / (N + 1)
    and raising the betas to the power r keeps the effective step size and the moments' memory
    (in iterations) what they would be without it.
    """
    ratio = lazy_interval / (lazy_interval + 1) if lazy_interval > 1 else 1.0
    return torch.optim.Adam(
        network.parameters(), lr=lr * ratio, betas=(recipe.beta1**ratio, recipe.beta2**ratio), eps=recipe.adam_eps,
        fused=(device.type == "cuda") or None,  # one kernel for the whole Adam update
    )  # fmt: skip


def assemble(
    arch_name: str,
    recipe: Recipe,
    data: TrainingImages,
    hardware: Hardware,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    processes: distributed.Processes | None = None,
    say: Callable[[str], None] | None = None,
) -> RunParts:
    """The parts of a run, built in the one order that keeps a seed's run reproducible.

    ``recipe.batch_size`` is the global batch; under torchrun each process's step sees its share.
    """
    p = processes or distributed.Processes()
    r, device = recipe, hardware.device
    arch = ARCHITECTURES.get(arch_name).obj
    arch_args = arch.arch_args(r.image_size, r.channels, r.latent_dim, num_classes=len(data.class_names))
    run_schedule = schedule(r, data.images.shape[0], max_steps)

    torch.manual_seed(seed)  # initialisation and dropout draw from the global generator
    generator, discriminator = arch.build(init=r.init, **arch_args)
    if r.spectral_norm in ("g", "both"):
        apply_spectral_norm(generator)
    if r.spectral_norm in ("d", "both"):
        apply_spectral_norm(discriminator)
    if r.freeze_d:
        from ganctl.training.finetune import freeze_first_layers

        freeze_first_layers(discriminator, r.freeze_d)
    if p.distributed:
        if hardware.sync_bn:  # batch statistics over the global batch instead of each process's share
            generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
            discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        # the networks start alike on every process; dropout and other global draws differ
        torch.manual_seed(distributed.rank_seed(seed, p.rank))
    layout = torch.channels_last if hardware.channels_last else torch.contiguous_format
    G = generator.to(device, memory_format=layout)
    D = discriminator.to(device, memory_format=layout)
    regularizer = REGULARIZERS.get(r.regularizer).obj() if r.regularizer != "none" else None
    g_opt = make_adam(G, r, r.g_lr, device)
    d_opt = make_adam(D, r, r.d_lr, device, lazy_interval=r.reg_every if regularizer else 1)
    schedules = []
    if r.lr_decay == "linear":
        # to zero at the end of the recipe's length (--epochs or --kimg on resume moves it;
        # --max-steps, a stop for smoke runs, does not)
        planned = run_schedule.planned_steps
        decay = lambda done: max(0.0, 1.0 - done / planned)  # noqa: E731
        schedules = [torch.optim.lr_scheduler.LambdaLR(opt, decay) for opt in (g_opt, d_opt)]

    real = real_batches(
        data.images.contiguous(memory_format=layout), batch=real_per_step(r), sampling=r.sampling,
        pixel_range=r.pixel_range, device=device, seed=seed + 1, labels=data.labels, share=(p.rank, p.world),
        stream=hardware.stream, say=say,
    )  # fmt: skip
    latent_rng = torch.Generator(device=device)
    latent_rng.manual_seed(seed + 2)
    counts = class_counts(data.labels, len(data.class_names)) if data.class_names else []
    # a conditional grid: one row per class, the same latents in every row
    grid = GridLayout.for_run(r.sample_grid, len(data.class_names))
    fixed = torch.Generator().manual_seed(seed + 3)  # on the CPU: the same grid on any device
    fixed_z = torch.randn(grid.latents, r.latent_dim, generator=fixed).repeat(grid.rows_of_latents, 1).to(device)
    # each process's own streams (rank 0's are the single-process ones)
    own_seed = distributed.rank_seed(seed, p.rank)
    adaptive, diff_policy = split_policy(r.augment)
    augment = DiffAugment(diff_policy, r.pixel_range, device, seed=own_seed + 4) if diff_policy else None
    ada = None
    if adaptive:
        ada = AdaptiveAugment(r.pixel_range, device, own_seed + 7, target=r.ada_target, speed_kimg=r.ada_kimg, batch_size=r.batch_size)
        augment = AugmentPipeline(ada, augment)
    penalty_rng = torch.Generator(device=device)
    penalty_rng.manual_seed(own_seed + 5)
    ema = None
    if r.ema_kimg is not None:
        ema = GeneratorEMA(G, half_life_kimg=r.ema_kimg, batch_size=r.batch_size, rampup=r.ema_rampup, start_step=r.ema_start)
    nets = Networks(G, D, g_opt, d_opt, ema)
    streams = Streams(real, latent_rng, penalty_rng, augment, ada)
    stats = StepStats()
    amp = use_amp(device, hardware.amp)
    step = TrainStep(
        nets, streams, recipe=r.replace(batch_size=r.batch_size // p.world), loss=LOSSES.get(r.loss).obj(real_target=1.0 - r.label_smoothing),
        regularizer=regularizer, stats=stats, device=device, amp=amp,
        class_weights=torch.tensor(counts, dtype=torch.float, device=device) if data.class_names else None,
        share=Share(p.rank, p.world, *((p.average_gradients, p.average_tensor) if p.distributed else ())),
        micro_batch=hardware.micro_batch, compile=hardware.compile, log=say,
    )  # fmt: skip
    return RunParts(
        recipe=r, arch_args=arch_args, device=device, amp=amp, schedule=run_schedule, nets=nets,
        schedules=schedules, streams=streams, stats=stats, step=step, fixed_z=fixed_z, grid=grid,
        class_names=tuple(data.class_names), class_counts=counts, seed=seed, processes=p,
    )  # fmt: skip


def synthetic_images(recipe: Recipe, n: int | None = None, seed: int = 0) -> TrainingImages:
    """Random uint8 images at the recipe's size, for timing a step without reading a dataset."""
    n = n or max(8 * recipe.batch_size, 1024)
    generator = torch.Generator().manual_seed(seed)
    shape = (n, recipe.channels, recipe.image_size, recipe.image_size)
    return TrainingImages(torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator))



