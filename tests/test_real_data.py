"""Integration checks on the real datasets ($GANCTL_TEST_DATA; skipped when absent, see README, Tests)."""

from __future__ import annotations

import json
import lzma
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganctl.cli import app
from tests.helpers import NO_REAL_DATA, SHARED_DATA as SHARED
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SHARED.is_dir(), reason=NO_REAL_DATA)]


def test_short_mnist_dcgan_run_on_real_mnist(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED / "mnist").glob("*.gz"):
        shutil.copy(path, raw / path.name)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--arch", "mnist-dcgan", "--data-dir", str(tmp_path / "data"), "--no-download",
        "--batch-size", "64", "--max-steps", "60", "--log-every", "20", "--quiet", "--out", str(run),
    ])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "event" not in r][-1]
    assert (last["d_acc_real"] + last["d_acc_fake"]) / 2 > 0.6  # D tells real from fake: off chance
    grid = Image.open(run / "samples" / "final.png")
    assert grid.mode == "L" and grid.size == (5 * 30 + 2, 5 * 30 + 2)
    assert len(np.unique(np.asarray(grid))) > 10  # not a blank or constant picture


def test_cifar10_loads_for_training(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for path in (SHARED / "cifar-10").glob("*.xz"):
        (folder / path.stem).write_bytes(lzma.decompress(path.read_bytes()))
    result = CliRunner().invoke(app, [
        "train", "--arch", "cifar-dcgan", "--data-dir", str(tmp_path / "data"), "--no-download",
        "--max-steps", "2", "--batch-size", "32", "--quiet", "--out", str(tmp_path / "run"),
    ])
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["dataset"] == "cifar10"
