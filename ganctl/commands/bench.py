"""``ganctl bench``: training and sampling speed against the plain eager baseline."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ganctl.commands.common import AmpOption, DeviceOption, err, handles_errors, out, print_json
from ganctl.commands.tables import dropped_note


BENCH_STEP_LIMIT = 100_000  # a benchmark, not a training
BENCH_BATCH_LIMIT = 65_536  # images a step: beyond any recipe, and a bound on what a step allocates


@handles_errors
def bench_command(
    arch: Annotated[Optional[list[str]], typer.Option(help="Architecture to measure (repeatable; default: all).", metavar="NAME")] = None,
    device: DeviceOption = "auto",
    steps: Annotated[Optional[int], typer.Option(help="Timed iterations (default 200 on CUDA, 5 on the CPU).")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Untimed iterations first (default 20 on CUDA, 2 on the CPU).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipes' batch sizes.")] = None,
    amp: AmpOption = None,
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help="NHWC layout.")] = True,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the networks.")] = False,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also time the plain eager baseline loop.")] = True,
    ingredients: Annotated[bool, typer.Option("--ingredients/--no-ingredients", help="Also time the step with every ingredient on (EMA, DiffAugment, lazy R1, 2 D steps) and its cost against the plain step.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure training iterations/s, images/s, sampling speed and peak memory per architecture, and the speed-up over a plain eager PyTorch loop measured in the same run.

    Progress goes to stderr as each architecture is measured. Narrow terminals leave columns out, in this order: TFLOP/s, GFLOP/it, peak MiB, baseline it/s, sample img/s, batch, cost vs plain, speed-up (--json has all).

    Example: ganctl bench --arch cifar-dcgan --device cuda
    """
    import torch

    from ganctl.bench.harness import bench_arch, bench_ingredients
    from ganctl.errors import GanctlError
    from ganctl.registry import ARCHITECTURES
    from ganctl.device import resolve_device, use_amp

    target = resolve_device(device)
    names = arch or ARCHITECTURES.names()
    for name in names:
        ARCHITECTURES.get(name)  # unknown names fail before anything is measured
    on_gpu = target.type == "cuda"
    steps = steps if steps is not None else (200 if on_gpu else 5)
    warmup = warmup if warmup is not None else (20 if on_gpu else 2)
    if steps < 1 or warmup < 0:
        raise GanctlError("--steps must be at least 1 and --warmup at least 0")
    if batch_size is not None and not 1 <= batch_size <= BENCH_BATCH_LIMIT:
        raise GanctlError(f"--batch-size must be from 1 to {BENCH_BATCH_LIMIT:,}, not {batch_size:,}")
    if steps + warmup > BENCH_STEP_LIMIT:
        raise GanctlError(f"--steps and --warmup together must be at most {BENCH_STEP_LIMIT:,}, not {steps + warmup:,}")
    say = lambda line: err.print(line, markup=False, highlight=False)  # noqa: E731  (stderr: --json stays clean)
    results = []
    options = dict(amp=amp, channels_last=channels_last, compile=compile, batch_size=batch_size)
    for i, name in enumerate(names, 1):
        # a benchmark takes minutes on the CPU: say what is being measured as it goes (on stderr)
        say(f"[{i}/{len(names)}] {name}: the plain step ({warmup} warm-up + {steps} timed iterations)"
            + (", sampling and the eager baseline" if baseline else " and sampling"))
        plain = bench_arch(name, target, steps=steps, warmup=warmup, baseline=baseline, **options)
        results.append(plain.to_dict())
        say(f"[{i}/{len(names)}] {name}: {plain.train_it_per_s:.2f} it/s")
        if ingredients:
            say(f"[{i}/{len(names)}] {name}: the step with every ingredient on")
            results.append(bench_ingredients(name, target, steps=steps, warmup=warmup,
                                             plain_it_per_s=plain.train_it_per_s, **options).to_dict())
    context = {"torch": torch.__version__, "device": _device_name(target), "steps": steps, "warmup": warmup,
               "amp": use_amp(target, amp), "channels_last": channels_last, "compile": compile}
    if as_json:
        print_json({"context": context, "results": results})
        return
    from rich.text import Text

    from ganctl.commands.tables import Column, fitted_table

    precision = "bf16 autocast" if context["amp"] else "float32"
    columns = [(Column("arch", whole=True), "arch"), (Column("step"), "variant"), (Column("batch", "right"), "batch_size"),
               (Column("it/s", "right", whole=True), "train_it_per_s"), (Column("img/s", "right", whole=True), "train_images_per_s"),
               (Column("baseline it/s", "right"), "baseline_it_per_s"), (Column("speed-up", "right"), "speedup"),
               (Column("cost vs plain", "right"), "cost_vs_plain"), (Column("sample img/s", "right"), "sample_images_per_s"),
               (Column("peak MiB", "right"), "peak_memory_mb"), (Column("GFLOP/it", "right"), "gflop_per_iteration"),
               (Column("TFLOP/s", "right"), "achieved_tflop_per_s")]  # fmt: skip
    rows = [[Text("-" if r[key] is None else str(r[key])) for _, key in columns] for r in results]
    table, dropped = fitted_table(out, [c for c, _ in columns], rows, BENCH_DROP_ORDER, title_justify="left",
                                  title=Text(f"ganctl bench on {context['device']} (torch {context['torch']}, {precision})"))
    out.print(table)
    if dropped:
        out.print(dropped_note(dropped), markup=False, style="dim")


# Left out first when the terminal is narrow; the architecture, its step and its rates stay.
BENCH_DROP_ORDER = ("TFLOP/s", "GFLOP/it", "peak MiB", "baseline it/s", "sample img/s", "batch", "cost vs plain", "speed-up")


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
