"""Do two ways of running the same recipe learn the same way? Their loss curves side by side.

    python benchmarks/track_losses.py --arch cifar-dcgan --dataset synthetic --steps 300 \\
        --a "--no-amp" --b "--amp"                        # bf16 autocast on the CPU vs fp32
    python benchmarks/track_losses.py --device cuda --steps 2000 \\
        --a "--no-compile --no-amp" --b "--compile"       # the GPU fast path vs eager

Both runs start from the same seed and draw the same batches; each is an ordinary
``ganctl train`` into a temporary folder. The script prints, per log interval, the D and G
losses and D accuracies of both, the mean absolute difference of each statistic over the
run, and the seconds per iteration of each. GAN losses are chaotic: the two curves stay close
in level and trend, not step for step, once rounding differs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")


def run(label: str, options: list[str], common: list[str], folder: Path) -> tuple[list[dict], float]:
    out = folder / label
    command = [sys.executable, "-m", "ganctl", "train", *common, *options, "--quiet", "--out", str(out)]
    print("$", shlex.join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "d_loss_real" in r], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="cifar-dcgan")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--a", default="--no-amp", help="options of the first run (the reference)")
    parser.add_argument("--b", default="--amp", help="options of the second run")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two run folders here (a/ and b/)")
    args = parser.parse_args()

    common = ["--arch", args.arch, "--dataset", args.dataset, "--device", args.device, "--max-steps", str(args.steps),
              "--log-every", str(args.log_every), "--seed", str(args.seed), "--sample-every", "1000"]  # fmt: skip
    if args.data_dir:
        common += ["--data-dir", args.data_dir, "--no-download"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        a, seconds_a = run("a", shlex.split(args.a), common, folder)
        b, seconds_b = run("b", shlex.split(args.b), common, folder)

    compare(a, b)
    print(f"\nwall time (including start-up and data loading): a {seconds_a:.1f} s, b {seconds_b:.1f} s "
          f"for {args.steps} iterations each")  # fmt: skip


def compare(a: list[dict], b: list[dict]) -> dict:
    """Print the two curves side by side and how far apart they are; return the summary figures."""
    print(f"\n{'step':>6} " + " ".join(f"{s + ' a/b':>23}" for s in STATS))
    for ra, rb in zip(a, b):
        print(f"{ra['step']:>6} " + " ".join(f"{ra[s]:>11.4f} {rb[s]:>11.4f}" for s in STATS))
    pairs = list(zip(a, b))
    summary = {"mean_abs_difference": {s: sum(abs(ra[s] - rb[s]) for ra, rb in pairs) / len(pairs) for s in STATS}}
    print("\nmean |a - b| over the run: " + ", ".join(f"{s} {v:.4f}" for s, v in summary["mean_abs_difference"].items()))
    for label, records in (("a", a), ("b", b)):
        late = records[len(records) // 2 :]
        summary[f"second_half_means_{label}"] = means = {s: sum(r[s] for r in late) / len(late) for s in STATS}
        print(f"{label}: second-half means " + ", ".join(f"{s} {v:.4f}" for s, v in means.items()))
    return summary


if __name__ == "__main__":
    main()
