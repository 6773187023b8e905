"""Every GPU figure ganctl tracks, from one command that fits in one device call (under 8 minutes).

    python benchmarks/gpu_check.py --out gpu-check.json      # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --dry-run                 # the same sections, tiny, on the CPU

It needs no dataset file (synthetic images only) and no package registry: when ganctl is not
installed it installs this checkout with ``pip install --no-deps --no-build-isolation -e .``.
Sections run in order, each printing its figures as it ends, and each is skipped, saying so,
when the time budget (``--budget-s``) would not hold it; a section that fails prints why and
the others go on. At the end: one JSON object (also written to ``--out``) and the targets.

1. ``device``      torch, the GPU, the default precision
2. ``peak``        the dense bf16 matmul rate measured here (the FLOP floor's denominator)
3. ``bench``       per architecture: the eager baseline, ganctl's default step and, while time
                   allows, the compiled step: iterations/s, images/s, peak memory, FLOP per
                   iteration, TFLOP/s and its share of the measured peak; and the step with
                   every ingredient on (cifar-dcgan), its cost against the plain step
4. ``sample``      seconds to generate 50,000 cifar-dcgan images as uint8 on the host
5. ``train``       wall time of ``ganctl train --arch cifar-dcgan --epochs 200`` on
                   ``synthetic-50k`` (CIFAR-10's 50,000 images: 78,000 iterations); when the
                   budget stops it first, the figure is extrapolated from its metrics, and says so
6. ``streaming``   microseconds per real batch: on the device, streamed from host memory, and
                   from a memory-mapped cache (what a dataset too large for the device costs)
7. ``losses``      loss curves of the fast path (``--compile``, bf16, channels_last) against
                   eager float32 NCHW over 2,000 iterations, and how far apart they are

Targets (H100/H200): the 200-epoch run under 60 s, at least 4x the eager baseline, 50,000
samples under 2 s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR_ITERATIONS = 200 * 390  # 200 epochs of 50,000 images at batch 128
TARGETS = {"train_200_epochs_s": 60.0, "speedup_over_eager": 4.0, "sample_50k_s": 2.0}


class Plan:
    """The sizes of every section: the real check, or a dry run that only proves the script works."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.device = "cpu" if dry_run else "cuda"
        self.archs = ["cifar-dcgan"] if dry_run else None  # None: every registered one
        self.bench = dict(steps=1, warmup=0, batch_size=4) if dry_run else dict(steps=200, warmup=20, batch_size=None)
        self.compile = not dry_run  # compiling takes a minute on the CPU: the dry run shows the section's shape without it
        self.matmul = 256 if dry_run else 8192
        self.samples = 64 if dry_run else 50_000
        self.sample_batch = 32 if dry_run else 2_500
        self.train = (["--dataset", "synthetic", "--limit", "32", "--batch-size", "8", "--epochs", "1"] if dry_run
                      else ["--dataset", "synthetic-50k", "--epochs", "200"])  # fmt: skip
        self.loss_steps, self.loss_log_every = (4, 2) if dry_run else (2000, 100)
        self.loss_data = ["--limit", "32", "--batch-size", "8"] if dry_run else []
        self.streaming = dict(images=512, draws=5) if dry_run else dict(images=50_000, draws=500)


class Check:
    def __init__(self, plan: Plan, budget_s: float) -> None:
        self.plan = plan
        self.deadline = time.monotonic() + budget_s
        self.report: dict = {"dry_run": plan.dry_run, "sections": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, needs_s: float, fn) -> None:
        print(f"\n== {name}", flush=True)
        if self.left() < needs_s:
            print(f"skipped: {self.left():.0f} s left, it needs about {needs_s:.0f} s", flush=True)
            self.report["sections"][name] = {"skipped": f"time budget ({self.left():.0f} s left)"}
            return
        start = time.monotonic()
        try:
            figures = fn()
        except Exception as exc:  # a failed section is reported; the others still run
            traceback.print_exc()
            figures = {"failed": f"{type(exc).__name__}: {exc}"}
        figures["section_s"] = round(time.monotonic() - start, 1)
        self.report["sections"][name] = figures
        print(json.dumps(figures, indent=1), flush=True)


def ensure_installed() -> None:
    """ganctl and its built-in plugins importable: install this checkout, without dependencies, if needed."""
    try:
        importlib.metadata.distribution("ganctl")
    except importlib.metadata.PackageNotFoundError:
        print("installing this checkout: pip install --no-deps --no-build-isolation -e .", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(REPO)],
                       check=True)  # fmt: skip
        importlib.invalidate_caches()
    sys.path[:0] = [str(REPO), str(REPO / "plugins"), str(REPO / "benchmarks")]


# --- the sections ---------------------------------------------------------------------------
def device_section(plan: Plan) -> dict:
    import torch

    from ganctl.device import resolve_device, use_amp

    device = resolve_device(plan.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"torch": torch.__version__, "device": name, "default_amp_bf16": use_amp(device, None)}


def peak_section(plan: Plan) -> dict:
    import torch

    from ganctl.bench.harness import _rate

    device = torch.device(plan.device)
    n = plan.matmul
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    rate = _rate(lambda: a @ b, device, 50 if device.type == "cuda" else 3, 5 if device.type == "cuda" else 1)
    return {"bf16_matmul_tflop_per_s": round(2 * n**3 * rate / 1e12, 1), "matmul_size": n}


def bench_section(plan: Plan, check: Check) -> dict:
    import torch

    from ganctl.bench.harness import bench_arch, bench_ingredients
    from ganctl.registry import ARCHITECTURES

    device = torch.device(plan.device)
    peak = check.report["sections"].get("peak", {}).get("bf16_matmul_tflop_per_s")
    figures: dict = {}
    for arch in plan.archs or ARCHITECTURES.names():
        row = {"default": bench_arch(arch, device, **plan.bench).to_dict()}
        # compiling costs about a minute an architecture: only while the later sections keep their time
        if plan.compile and check.left() > 300:
            try:
                row["compiled"] = bench_arch(arch, device, compile=True, baseline=False, **plan.bench).to_dict()
            except Exception as exc:  # inductor failing on one network is a finding, not the end
                row["compiled"] = {"failed": f"{type(exc).__name__}: {exc}"}
            torch._dynamo.reset()
        if arch == "cifar-dcgan":
            row["all_ingredients"] = bench_ingredients(
                arch, device, plain_it_per_s=row["default"]["train_it_per_s"], **plan.bench).to_dict()
        for result in row.values():
            if peak and "achieved_tflop_per_s" in result:
                result["share_of_peak"] = round(result["achieved_tflop_per_s"] / peak, 4)
        figures[arch] = row
        print(f"{arch}: " + ", ".join(f"{k} {v.get('train_it_per_s', v.get('failed'))} it/s" for k, v in row.items())
              + f" (eager baseline {row['default']['baseline_it_per_s']} it/s)", flush=True)
    return figures


def sample_section(plan: Plan) -> dict:
    import torch

    from ganctl.device import use_amp
    from ganctl.registry import ARCHITECTURES
    from ganctl.latent.sampling import generate

    device = torch.device(plan.device)
    arch = ARCHITECTURES.get("cifar-dcgan").obj
    generator = arch.build_generator().to(device, memory_format=torch.channels_last).eval()
    z = torch.randn(plan.samples, arch.recipe.latent_dim)
    options = dict(device=device, batch_size=plan.sample_batch, amp=use_amp(device, None))
    for _ in generate(generator, z[: plan.sample_batch], arch.recipe.pixel_range, **options):
        pass  # warm-up: cuDNN's algorithm search
    start = time.perf_counter()
    count = sum(batch.shape[0] for batch in generate(generator, z, arch.recipe.pixel_range, **options))
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1),
            "batch_size": plan.sample_batch}  # fmt: skip


def train_section(plan: Plan, check: Check, folder: Path, reserve_s: float) -> dict:
    run = folder / "train-200"
    cifar = check.report["sections"].get("bench", {}).get("cifar-dcgan", {})
    compiled = cifar.get("compiled", {}).get("train_it_per_s", 0) > cifar.get("default", {}).get("train_it_per_s", 0)
    command = [sys.executable, "-m", "ganctl", "train", "--arch", "cifar-dcgan", *plan.train, "--device", plan.device,
               *(["--compile"] if compiled else []), "--quiet", "--out", str(run)]  # fmt: skip
    print("$", " ".join(command[1:]), flush=True)
    timeout = max(10.0, check.left() - reserve_s)
    start = time.perf_counter()
    try:
        subprocess.run(command, check=True, timeout=timeout)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] if (run / "metrics.jsonl").exists() else []
    steps = max((r["step"] for r in records if "step" in r), default=0)
    figures = {"command": " ".join(command[3:-2]), "finished": finished, "wall_s": round(seconds, 1), "iterations": steps}
    if not finished and steps:
        figures["extrapolated_wall_s"] = round(seconds * CIFAR_ITERATIONS / steps, 1)
        figures["note"] = f"stopped by the time budget after {steps} iterations; the 200-epoch time is extrapolated"
    rates = [r["images_per_s"] for r in records if "images_per_s" in r]
    if rates:
        figures["median_images_per_s"] = sorted(rates)[len(rates) // 2]
    return figures


def streaming_section(plan: Plan) -> dict:
    import torch
    from streaming_crossover import crossover

    return crossover(torch.device(plan.device), **plan.streaming)


def losses_section(plan: Plan, folder: Path) -> dict:
    from track_losses import compare, run

    common = ["--arch", "cifar-dcgan", "--dataset", "synthetic", "--device", plan.device, "--max-steps",
              str(plan.loss_steps), "--log-every", str(plan.loss_log_every), "--seed", "0", "--sample-every", "1000", *plan.loss_data]  # fmt: skip
    fast_options = [] if plan.dry_run else ["--compile"]
    eager, eager_s = run("eager", ["--no-amp", "--no-channels-last"], common, folder)
    fast, fast_s = run("fast", fast_options, common, folder)
    print("a = eager float32 NCHW, b = the fast path (" + (" ".join(fast_options) or "the default") + ")")
    summary = compare(eager, fast)
    return {"iterations": plan.loss_steps, "eager_wall_s": round(eager_s, 1), "fast_wall_s": round(fast_s, 1), **summary,
            "curves": {"step": [r["step"] for r in eager], "g_loss_eager": [r["g_loss"] for r in eager],
                       "g_loss_fast": [r["g_loss"] for r in fast]}}  # fmt: skip


def verdict(report: dict) -> dict:
    """The targets against what was measured; None where a figure is missing."""
    sections = report["sections"]
    train = sections.get("train", {})
    wall = train.get("wall_s") if train.get("finished") else train.get("extrapolated_wall_s")
    cifar = sections.get("bench", {}).get("cifar-dcgan", {})
    fastest = max((r.get("train_it_per_s", 0) for k, r in cifar.items() if k in ("default", "compiled")), default=0)
    baseline = cifar.get("default", {}).get("baseline_it_per_s")
    sample = sections.get("sample", {})
    measured = {
        "train_200_epochs_s": wall,
        "speedup_over_eager": round(fastest / baseline, 2) if fastest and baseline else None,
        "sample_50k_s": sample.get("seconds") if sample.get("images") == 50_000 else None,
    }
    better = {"train_200_epochs_s": lambda v, t: v < t, "speedup_over_eager": lambda v, t: v >= t, "sample_50k_s": lambda v, t: v < t}
    return {k: {"measured": v, "target": TARGETS[k], "met": None if v is None else better[k](v, TARGETS[k])} for k, v in measured.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: proves the script, measures nothing")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no section after this long (default 420)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args(argv)
    ensure_installed()
    plan = Plan(args.dry_run)
    check = Check(plan, args.budget_s)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        check.section("device", 0, lambda: device_section(plan))
        check.section("peak", 5, lambda: peak_section(plan))
        check.section("bench", 60, lambda: bench_section(plan, check))
        check.section("sample", 5, lambda: sample_section(plan))
        check.section("train", 30, lambda: train_section(plan, check, folder, reserve_s=0 if plan.dry_run else 150))
        check.section("streaming", 5, lambda: streaming_section(plan))
        check.section("losses", 20, lambda: losses_section(plan, folder))
    check.report["targets"] = "not judged: a dry run measures nothing" if plan.dry_run else verdict(check.report)
    print("\n== targets\n" + json.dumps(check.report["targets"], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(check.report, indent=1) + "\n")
    return check.report


if __name__ == "__main__":
    main()
