"""Where a cifar-dcgan training iteration spends its time on the CPU, remedy by remedy.

    python benchmarks/cpu_step_breakdown.py [--steps 6]

Each line times the same iteration (recipe batch 128, separate D updates) with one more
change switched on, so the effect of each is visible in one run on one machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from ganctl.bench.harness import ganctl_step


def seconds_per_step(*, channels_last: bool, inplace: bool, amp: bool, steps: int) -> float:
    step, _, _ = ganctl_step("cifar-dcgan", torch.device("cpu"), amp=amp, channels_last=channels_last,
                             compile=False, batch_size=None)
    for module in [*step.G.modules(), *step.D.modules()]:
        if isinstance(module, nn.LeakyReLU):
            module.inplace = inplace
    step(), step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        stats = step()
    stats.tolist()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for label, options in [
        ("eager, NCHW, fp32", dict(channels_last=False, inplace=False, amp=False)),
        ("+ channels_last", dict(channels_last=True, inplace=False, amp=False)),
        ("+ in-place LeakyReLU (ganctl default)", dict(channels_last=True, inplace=True, amp=False)),
        ("+ bf16 autocast (--amp)", dict(channels_last=True, inplace=True, amp=True)),
    ]:
        print(f"{label:40s} {seconds_per_step(steps=args.steps, **options):.3f} s/iteration", flush=True)


if __name__ == "__main__":
    main()
