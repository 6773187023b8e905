"""Measuring the training step and sampling, with the baseline in the same run.

Figures come from synthetic uint8 images already on the device (no dataset is read), after
warm-up steps, with the device synchronised around the timed region only.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ganctl.bench.baseline import BaselineLoop
from ganctl.device import autocast, use_amp
from ganctl.registry import ARCHITECTURES
from ganctl.training.assembly import Hardware, assemble, synthetic_images
from ganctl.training.step import TrainStep


@dataclass
class BenchResult:
    arch: str
    variant: str  # "plain" (the recipe as it is) or "all ingredients" (INGREDIENTS on top)
    device: str
    batch_size: int
    train_it_per_s: float
    train_images_per_s: float
    baseline_it_per_s: float | None
    speedup: float | None  # ganctl's iterations/s over the baseline's
    cost_vs_plain: float | None  # an iteration's time over the plain step's (the ingredients row)
    sample_images_per_s: float | None
    peak_memory_mb: float  # CUDA: peak allocated; CPU: the process's peak resident set
    gflop_per_iteration: float
    achieved_tflop_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, device: torch.device, steps: int, warmup: int) -> float:
    """Calls per second of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return steps / (time.perf_counter() - start)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class IteratingStep:
    """A TrainStep called with no arguments, counting its own iterations (for timing loops)."""

    def __init__(self, step: TrainStep) -> None:
        self.step, self.iteration = step, 0

    def __call__(self) -> None:
        self.step(self.iteration)
        self.iteration += 1


# Every training ingredient at once, for the row that shows what they cost: the generator EMA,
# DiffAugment, R1 applied lazily, and two D updates per G update. R1 every 4 iterations (not
# StyleGAN2's 16) so that a short timed window holds whole intervals.
INGREDIENTS = dict(ema_kimg=10.0, augment="color,translation,cutout", regularizer="r1", reg_weight=1.0, reg_every=4, d_steps=2)


def ganctl_step(arch_name: str, device: torch.device, *, amp: bool | None, channels_last: bool, compile: bool,
                batch_size: int | None, ingredients: bool = False):
    """The recipe's own step, assembled exactly as ``ganctl train`` assembles it (spectral norm,
    label smoothing, D's input scale and all), on random images already in memory."""
    recipe = ARCHITECTURES.get(arch_name).obj.recipe.replace(batch_size=batch_size, **(INGREDIENTS if ingredients else {}))
    hardware = Hardware(device, amp=amp, channels_last=channels_last, compile=compile, stream=False)
    parts = assemble(arch_name, recipe, synthetic_images(recipe), hardware, seed=0)
    return IteratingStep(parts.step), parts.G, recipe


def _time_step(step: IteratingStep, device: torch.device, *, steps: int, warmup: int) -> tuple[float, float, float]:
    """(iterations/s, FLOPs of one iteration, peak memory in MiB) of a training step."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()  # builds lazily-initialised state (Adam moments, compiled graphs) before counting
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return _rate(step, device, steps, warmup), counter.get_total_flops(), _peak_memory_mb(device)


def bench_arch(
    arch_name: str,
    device: torch.device,
    *,
    steps: int,
    warmup: int,
    amp: bool | None = None,
    channels_last: bool = True,
    compile: bool = False,
    baseline: bool = True,
    batch_size: int | None = None,
) -> BenchResult:
    step, generator, recipe = ganctl_step(arch_name, device, amp=amp, channels_last=channels_last, compile=compile, batch_size=batch_size)
    it_per_s, flops, peak = _time_step(step, device, steps=steps, warmup=warmup)

    sample_batch = 500
    z = torch.randn(sample_batch, recipe.latent_dim, device=device)
    generator.eval()

    @torch.inference_mode()
    def sample() -> None:
        with autocast(device, use_amp(device, amp)):
            generator(z)

    sample_rate = _rate(sample, device, max(2, steps // 4), 1) * sample_batch

    baseline_rate = None
    if baseline:
        arch = ARCHITECTURES.get(arch_name).obj
        torch.manual_seed(0)
        g, d = arch.build()
        low, high = recipe.pixel_range
        data = np.random.default_rng(0).uniform(low, high, (max(8 * recipe.batch_size, 1024), recipe.channels, recipe.image_size, recipe.image_size)).astype(np.float32)
        loop = BaselineLoop(g, d, recipe, data, device)
        baseline_rate = _rate(loop.step, device, steps, warmup)

    return _result(arch_name, "plain", device, recipe, it_per_s, flops, peak, baseline_rate=baseline_rate,
                   sample_rate=sample_rate)


def bench_ingredients(arch_name: str, device: torch.device, *, steps: int, warmup: int, plain_it_per_s: float,
                      amp: bool | None = None, channels_last: bool = True, compile: bool = False,
                      batch_size: int | None = None) -> BenchResult:
    """The step with every ingredient on (INGREDIENTS), its cost against the plain step's rate."""
    step, _, recipe = ganctl_step(arch_name, device, amp=amp, channels_last=channels_last, compile=compile,
                                  batch_size=batch_size, ingredients=True)
    interval = recipe.reg_every
    # the timed window holds whole regularisation intervals, starting at one: the lazy phase's share is exact
    steps = -(-steps // interval) * interval
    warmup = -(-(warmup + 2) // interval) * interval - 2  # + the two calls _time_step makes first
    it_per_s, flops, peak = _time_step(step, device, steps=steps, warmup=warmup)
    return _result(arch_name, "all ingredients", device, recipe, it_per_s, flops, peak, cost_vs_plain=plain_it_per_s / it_per_s)


def _result(arch_name, variant, device, recipe, it_per_s, flops, peak, *, baseline_rate=None, sample_rate=None,
            cost_vs_plain=None) -> BenchResult:
    return BenchResult(
        arch=arch_name,
        variant=variant,
        device=str(device),
        batch_size=recipe.batch_size,
        train_it_per_s=round(it_per_s, 3),
        train_images_per_s=round(it_per_s * recipe.batch_size, 1),
        baseline_it_per_s=round(baseline_rate, 3) if baseline_rate else None,
        speedup=round(it_per_s / baseline_rate, 2) if baseline_rate else None,
        cost_vs_plain=round(cost_vs_plain, 2) if cost_vs_plain else None,
        sample_images_per_s=round(sample_rate, 1) if sample_rate else None,
        peak_memory_mb=round(peak, 1),
        gflop_per_iteration=round(flops / 1e9, 2),
        achieved_tflop_per_s=round(flops * it_per_s / 1e12, 4),
    )
