"""The parts a training step is made of: its networks, its random streams, its share of the
batch, the phases it runs and what one iteration's phases hand each other (``training/step.py``
runs them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganctl.training.ada import AdaptiveAugment
from ganctl.training.augment import AugmentPipeline, DiffAugment
from ganctl.training.batches import RealBatches
from ganctl.training.ema import GeneratorEMA

# The statistics every recipe reports, in the order metrics.jsonl has always written them.
CORE_STATS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")


Draws = dict[str, Any]  # a phase's inputs: real images, labels, latents, augmentation parameters


@dataclass(frozen=True)
class PhaseResult:
    losses: dict[str, torch.Tensor]  # net -> the loss it minimises
    stats: dict[str, torch.Tensor]  # statistic name -> value, in the order metrics.jsonl writes them
    d_images: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None  # a D update's (real, fake, labels)


@dataclass(frozen=True)
class Phase:
    """A phase draws everything random first, then computes from those draws alone.

    ``draw`` (always eager) takes the real batch, latents, classes and augmentation parameters
    from their generators; ``compute`` is a pure function of the draws, so that with
    ``compile=True`` it is traced whole (networks, augmentation, losses and statistics in one
    graph, forward and backward). A phase that is not ``compilable`` (a penalty's double
    backward) always runs eagerly.
    """

    name: str
    nets: tuple[str, ...]  # networks whose optimisers step, in the order their losses back-propagate
    draw: Callable[[Iteration], Draws]
    compute: Callable[[Draws], PhaseResult]
    every: int = 1  # run on iterations i with i % every == 0 (i counted from 0)
    compilable: bool = True


@dataclass
class Networks:
    """The two networks, their optimisers and the generator's moving average (if any)."""

    G: nn.Module
    D: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    ema: GeneratorEMA | None = None


@dataclass
class Streams:
    """Where a step's random inputs come from, each its own checkpointed generator."""

    real: RealBatches
    latents: torch.Generator  # latents and G's classes of the global batch
    penalty: torch.Generator | None = None  # a regulariser's own draws (GP's mixing weights)
    augment: DiffAugment | AugmentPipeline | None = None  # what D's images go through; None: off
    ada: AdaptiveAugment | None = None  # adaptive augmentation's controller (part of ``augment``); None: off


@dataclass(frozen=True)
class Share:
    """This process's part of the global batch under torchrun (one process: all of it)."""

    rank: int = 0
    world: int = 1
    # gradients averaged over the processes before each optimiser step (None: one process)
    average_gradients: Callable[[list[torch.Tensor]], None] | None = None
    average_tensor: Callable[[torch.Tensor], None] | None = None  # a statistic, in place (ADA's)


def split_draws(drawn: Draws, size: int) -> list[Draws]:
    """A phase's draws as equal slices of ``size`` rows (of each half, for a stacked pair).

    Every tensor is sliced along its first dimension, nested dictionaries (augmentation
    parameters) alike; ``aug_pair`` holds the parameters of a real half and a fake half stacked
    (the joint update), sliced so that each slice keeps its real rows and its fake rows."""
    rows = next(v.shape[0] for k, v in drawn.items() if k in ("real", "z") and v is not None)
    k = rows // size

    def cut(value: Any, paired: bool) -> list[Any]:
        if isinstance(value, dict):
            parts = {key: cut(v, paired) for key, v in value.items()}
            return [{key: parts[key][i] for key in parts} for i in range(k)]
        if not isinstance(value, torch.Tensor):
            return [value] * k
        if paired:
            real, fake = value.chunk(2)
            return [torch.cat(pair) for pair in zip(real.chunk(k), fake.chunk(k))]
        return list(value.chunk(k))

    parts = {key: cut(value, key == "aug_pair") for key, value in drawn.items()}
    return [{key: parts[key][i] for key in parts} for i in range(k)]


def join_images(slices: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> tuple:
    """The (real, fake, labels) of a D update's slices, whole again."""
    if len(slices) == 1:
        return slices[0]
    real, fake, labels = zip(*slices)
    return torch.cat(real), torch.cat(fake), None if labels[0] is None else torch.cat(labels)


@dataclass
class Iteration:
    """What the phases of one iteration hand each other, explicitly: the images of its last D
    update (real, fake and their classes), which the fake half-batch and a lazy penalty reuse."""

    index: int  # iterations completed before this one
    real: torch.Tensor | None = None
    fake: torch.Tensor | None = None
    labels: torch.Tensor | None = None
