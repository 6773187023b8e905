"""Kill a training with SIGKILL at random moments, many times: every resume succeeds, no
checkpoint on disk is ever unreadable, and the final generator equals an uninterrupted run's:
for a seed recipe, and with every ingredient of the rebuilt step on at once (EMA, lazy R1,
5 D steps, DiffAugment, linear LR decay, spectral norm)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganctl.cli import app
from tests.helpers import read_tensors
from ganctl.training.checkpoint import list_checkpoints, load_checkpoint

ARGS = ["--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "256", "--batch-size", "16",
        "--max-steps", "48", "--checkpoint-every", "2", "--log-every", "4", "--sample-every", "1",
        "--seed", "5", "--quiet",
        "--no-amp"]  # the killed runs are other processes, where conftest's float32 CPU does not reach
EVERYTHING = ["--ema-kimg", "0.1", "--reg", "r1", "--reg-every", "4", "--reg-weight", "1", "--d-steps", "5",
              "--augment", "color,translation,cutout", "--lr-decay", "linear", "--spectral-norm", "d"]


def launch(run: Path, args: list[str]) -> subprocess.Popen:
    resume = ["--resume"] if (run / "config.json").exists() else []
    return subprocess.Popen(
        [sys.executable, "-m", "ganctl", "train", *args, *resume, "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(),
    )


# the seed recipe's path is a subset of everything-on's; it runs with the slow checks
@pytest.mark.parametrize("ingredients", [pytest.param([], marks=pytest.mark.slow), EVERYTHING], ids=["seed-recipe", "everything-on"])
def test_sigkill_at_random_moments_then_resume_is_bitwise_identical(ingredients, tmp_path):
    args = [*ARGS, *ingredients]
    straight = tmp_path / "straight"
    result = CliRunner().invoke(app, ["train", *args, "--out", str(straight)])
    assert result.exit_code == 0, result.stderr

    run = tmp_path / "killed"
    chance = random.Random(1234)
    kills = 0
    for attempt in range(40):
        process = launch(run, args)
        if kills < 8:
            time.sleep(chance.uniform(0.5, 4.0))  # start-up, mid-step, mid-checkpoint: anywhere
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
        _, stderr = process.communicate(timeout=300)
        assert process.returncode in (0, -signal.SIGKILL), stderr.decode()
        for path in list_checkpoints(run / "checkpoints"):
            load_checkpoint(path)  # raises if any checkpoint on disk is unreadable
        if process.returncode == 0:
            break
    assert kills >= 4, "the run finished before it could be interrupted often enough"
    for name in ("generator.safetensors", *(["generator-raw.safetensors"] if ingredients else [])):
        a, b = read_tensors(straight / name), read_tensors(run / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    args = [a if a != "48" else "100000" for a in ARGS]
    process = subprocess.Popen(
        [sys.executable, "-m", "ganctl", "train", *args, "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not list_checkpoints(run / "checkpoints") and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "stopped at step" in stderr.decode() and "Traceback" not in stderr.decode() and "Error" not in stderr.decode()
    newest = list_checkpoints(run / "checkpoints")[-1]
    assert load_checkpoint(newest).step > 0
