"""Run folders for the tests of `ganctl runs`, `ganctl report` and the TensorBoard sink.

``train_tiny`` makes a real one with `ganctl train` (seconds on a CPU); ``write_run`` lays one
out by hand, in the same formats, for the states and records a real run takes long to reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from tests.helpers import read_tensors, train


def train_tiny(run: Path, *extra: str) -> Path:
    """A real 8-step mnist-dcgan run on synthetic images: 4 steps an epoch, records every 2."""
    result = train(
        "--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "64", "--batch-size", "16",
        "--max-steps", "8", "--log-every", "2", "--sample-every", "1", "--quiet", "--out", str(run), *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def train_record(step: int, per_epoch: int, **stats: float) -> dict[str, Any]:
    record = {"step": step, "epoch": round(step / per_epoch, 4), "d_loss_real": 0.7 - step / 1000,
              "d_loss_fake": 0.6 - step / 2000, "g_loss": 0.8 + step / 1000, "d_acc_real": 0.5, "d_acc_fake": 0.6,
              "images_per_s": 1000.0 + step}  # fmt: skip
    record.update(stats)
    return record


def eval_record(step: int, per_epoch: int, fid: float, best: bool) -> dict[str, Any]:
    return {"step": step, "epoch": round(step / per_epoch, 4), "fid": fid, "kid_mean": fid / 1000, "kid_std": 0.001,
            "best": best, "eval_seconds": 12.5, "protocol": {"n_evaluated": 2048}}  # fmt: skip


def write_run(
    folder: Path,
    *,
    records: list[dict[str, Any]],
    epochs: int = 4,
    max_steps: int | None = None,
    per_epoch: int = 10,
    grids: int = 3,
    final: bool = True,
    best: bool = False,
    arch: str = "mnist-dcgan",
    loss: str = "bce",
    extra_lines: list[str] = (),
) -> Path:
    """A run folder as ganctl writes it: config.json, metrics.jsonl, grids, generator files."""
    folder.mkdir(parents=True)
    recipe = {"dataset": "synthetic", "image_size": 28, "channels": 1, "pixel_range": [0.0, 1.0], "latent_dim": 100,
              "loss": loss, "batch_size": 16, "epochs": epochs, "g_lr": 0.0002, "d_lr": 0.0002, "sample_every": 1}  # fmt: skip
    config = {"ganctl_version": "0.1.0", "arch": arch, "recipe": recipe, "run_dir": str(folder), "seed": 0,
              "max_steps": max_steps, "eval_every": None, "log_every": 2}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    rng = np.random.default_rng(0)
    (folder / "samples").mkdir()
    for epoch in range(1, grids + 1):
        Image.fromarray(rng.integers(0, 256, (62, 62), dtype=np.uint8)).save(folder / "samples" / f"epoch-{epoch:04d}.png")
    last = max((r["step"] for r in records), default=0)
    if final:
        write_generator(folder / "generator.safetensors", arch, step=last, epoch=last / per_epoch)
    if best:
        write_generator(folder / "best.safetensors", arch, step=last // 2, epoch=last / 2 / per_epoch, fid=12.5)
    return folder


def write_generator(path: Path, arch: str, **extra: Any) -> None:
    """A generator file's metadata, as ganctl.networks.weights.save_generator writes it (one dummy tensor)."""
    metadata = {"format": "ganctl-generator", "format_version": "1", "architecture": arch,
                "arch_args": json.dumps({"image_size": 28, "channels": 1, "latent_dim": 100}), "latent_dim": "100",
                "image_shape": "[1, 28, 28]", "pixel_range": "[0.0, 1.0]", "latent_distribution": "normal",
                "ganctl_version": "0.1.0", **{k: str(v) for k, v in extra.items()}}  # fmt: skip
    save_file({"weight": np.zeros(4, dtype=np.float32)}, str(path), metadata=metadata)


def assert_resume_is_bitwise(folder: Path, args: list[str], *, stop: int, end: int, files: tuple[str, ...]) -> None:
    """Train ``args`` to step ``end`` straight, and to ``stop`` then ``--resume`` to ``end``: ``files`` are equal, bit for bit."""
    import torch

    for name, steps in (("straight", end), ("broken", stop)):
        result = train(*args, "--max-steps", str(steps), "--out", str(folder / name))
        assert result.exit_code == 0, result.stderr
    result = train("--resume", "--out", str(folder / "broken"), "--max-steps", str(end), "--quiet")
    assert result.exit_code == 0, result.stderr
    for file in files:
        a, b = read_tensors(folder / "straight" / file), read_tensors(folder / "broken" / file)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file
