"""Iterations per second of one process against two gloo processes (torchrun) on the CPU.

    python benchmarks/distributed_cpu.py [--arch cifar-dcgan] [--steps 30] [--batch-size 128]

The same global batch and recipe, one after the other in one run on one machine: one process
with all the cores as threads, one process with one thread, and torchrun with two processes of
one thread each. The figure is the mean images/s of metrics.jsonl after the first log interval
(warm-up), divided by the batch: iterations per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def iterations_per_second(command: list[str], run: Path, threads: int, batch: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GANCTL_RUNS_DIR": str(run.parent)}
    subprocess.run([*command, "--out", str(run)], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in records if "images_per_s" in r][1:]  # the first interval warms up
    return sum(rates) / len(rates) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar-dcgan")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    a = parser.parse_args()
    train = ["train", "--arch", a.arch, "--dataset", "synthetic", "--limit", str(max(1024, 4 * a.batch_size)),
             "--batch-size", str(a.batch_size), "--max-steps", str(a.steps), "--log-every", str(max(1, a.steps // 3)),
             "--device", "cpu", "--quiet"]  # fmt: skip
    single = [sys.executable, "-m", "ganctl", *train]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ganctl", *train]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            (f"1 process, {cores} threads", iterations_per_second(single, Path(tmp) / "one-all", cores, a.batch_size)),
            ("1 process, 1 thread", iterations_per_second(single, Path(tmp) / "one-1", 1, a.batch_size)),
            ("2 gloo processes, 1 thread each", iterations_per_second(two, Path(tmp) / "two", 1, a.batch_size)),
        ]
    print(f"{a.arch}, global batch {a.batch_size}, {a.steps} iterations, {cores} CPU cores")
    for name, rate in rows:
        print(f"  {name:<34} {rate:6.2f} it/s")


if __name__ == "__main__":
    main()
