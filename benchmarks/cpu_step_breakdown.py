"""Where a cifar-dcgan training iteration spends its time on the CPU, remedy by remedy.

    python benchmarks/cpu_step_breakdown.py [--steps 6] [--profile]

Each line times the same iteration (recipe batch 128, separate D updates) with one more
change switched on, so the effect of each is visible in one run on one machine. ``--profile``
then prints where the default iteration (channels_last; bf16 where the CPU has native bf16,
``--profile-no-amp`` for float32) spends its time: the top operators, and each convolution
(forward and backward) by input shape.
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
    for module in [*step.step.G.modules(), *step.step.D.modules()]:
        if isinstance(module, nn.LeakyReLU):
            module.inplace = inplace
    step(), step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def profile(steps: int, amp: bool | None) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step, _, _ = ganctl_step("cifar-dcgan", torch.device("cpu"), amp=amp, channels_last=True, compile=False, batch_size=None)
    print(f"profile of the {'bf16' if step.step.amp else 'float32'} iteration")
    step(), step()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    print("convolutions by input shape, ms per iteration (input, weight / grad_output, input, weight):")
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in ("aten::convolution", "aten::convolution_backward"):
            shapes = ", ".join(str(tuple(s)) for s in event.input_shapes[:3] if s)
            print(f"  {event.key[6:]:22s} {event.cpu_time_total / 1e3 / steps:7.1f} ms  {shapes}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--profile", action="store_true", help="also profile the default iteration")
    parser.add_argument("--profile-no-amp", action="store_true", help="profile the float32 iteration instead")
    parser.add_argument("--only-profile", action="store_true", help="skip the remedy-by-remedy timings")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for label, options in [
        ("eager, NCHW, fp32", dict(channels_last=False, inplace=False, amp=False)),
        ("+ channels_last", dict(channels_last=True, inplace=False, amp=False)),
        ("+ in-place LeakyReLU (ganctl default)", dict(channels_last=True, inplace=True, amp=False)),
        ("+ bf16 autocast (default with native bf16)", dict(channels_last=True, inplace=True, amp=True)),
    ]:
        if not args.only_profile:
            print(f"{label:40s} {seconds_per_step(steps=args.steps, **options):.3f} s/iteration", flush=True)
    if args.profile or args.only_profile:
        profile(max(1, args.steps // 2), amp=False if args.profile_no_amp else None)


if __name__ == "__main__":
    main()
