"""An exponential moving average of the generator's weights (Karras et al.; StyleGAN2).

The averaged generator makes visibly smoother, better images than the raw one at no training
cost, so grids, snapshots, evaluation and the final generator file use it when it is on.

The decay is given as a half-life in images, which does not depend on the batch size:
``beta = 0.5 ** (batch / half_life_images)``. Early in training the half-life is capped at
``rampup`` times the images seen so far, so the average does not drag the untrained start
along for thousands of steps. Buffers (batch norm's running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, *, half_life_kimg: float, batch_size: int, rampup: float, start_step: int) -> None:
        self.source = generator
        self.average = copy.deepcopy(generator).eval().requires_grad_(False)
        self.half_life_images = half_life_kimg * 1000
        self.batch_size = batch_size
        self.rampup = rampup
        self.start_step = start_step

    def beta(self, step: int) -> float:
        """The decay applied after iteration ``step`` (1-based): 0 before the start, i.e. a copy."""
        if step <= self.start_step:
            return 0.0
        half_life = self.half_life_images
        if self.rampup > 0:
            half_life = min(half_life, step * self.batch_size * self.rampup)
        return 0.5 ** (self.batch_size / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """average = beta * average + (1 - beta) * generator; buffers copied."""
        beta = self.beta(step)
        averaged = [p for p in self.average.parameters()]
        current = [p.detach() for p in self.source.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - beta)
        for mine, theirs in zip(self.average.buffers(), self.source.buffers()):
            mine.copy_(theirs)
