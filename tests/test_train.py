"""`ganctl train` on the CPU with tiny step counts: every architecture and loss, the run folder,
resume determinism, health checks and bad input."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganctl.registry import LOSSES, PluginSource
from ganctl.training.health import BlankWatch, CollapseWatch, DiscriminatorWinsWatch, DiversityWatch, blank_fraction, sample_spread
from ganctl.networks.weights import load_generator, read_info
from tests.formats import write_cifar10, write_mnist
from tests.helpers import QUICK, SIZE, train
from tests.helpers import read_tensors as tensors

runner = CliRunner()



@pytest.mark.parametrize("loss", ["bce", "lsgan", "hinge"])
@pytest.mark.parametrize("arch", ["cifar-dcgan", "mnist-dcgan", "tf-dcgan", "paper-dcgan"])
def test_every_architecture_trains_with_every_loss(arch, loss, tmp_path):
    run = tmp_path / "run"
    result = train("--arch", arch, "--loss", loss, *QUICK, *SIZE.get(arch, []), "--max-steps", "5",
                   "--sample-every", "1", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    stats = [r for r in records if "event" not in r]
    assert [r["step"] for r in stats] == [2, 4, 5]
    for key in ("epoch", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake", "images_per_s"):
        assert key in stats[-1]
    generator, info = load_generator(run / "generator.safetensors")
    assert info.architecture == arch and info.extra["loss"] == loss and info.extra["step"] == "5"
    assert generator(torch.randn(2, info.latent_dim)).shape[1:] == info.image_shape


def test_run_folder_has_everything(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "cifar-dcgan", *QUICK, "--epochs", "3", "--sample-every", "1", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "cifar-dcgan" and config["ganctl_version"]
    assert config["recipe"]["batch_size"] == 16 and config["recipe"]["d_update"] == "separate"
    # a 7x7 grid of the fixed latents every epoch, the same epochs as snapshots
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["epoch-0001.png", "epoch-0002.png", "epoch-0003.png", "real.png"]
    assert Image.open(run / "samples" / "epoch-0001.png").size == (7 * 34 + 2, 7 * 34 + 2)
    # and once, a grid of the real training images of the same size, to compare with
    assert Image.open(run / "samples" / "real.png").size == (7 * 34 + 2, 7 * 34 + 2)
    snapshots = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snapshots == [f"generator-epoch-000{i}.safetensors" for i in (1, 2, 3)]
    assert Image.open(run / "progress.gif").n_frames == 3
    info = read_info(run / "generator.safetensors")
    assert info.arch_args == {"image_size": 32, "channels": 3, "latent_dim": 100}
    assert info.pixel_range == (-1.0, 1.0)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints[-1] == "step-000000012.safetensors" and len(checkpoints) <= 3
    # the latest-run pointer names this run
    assert Path(os.environ["GANCTL_RUNS_DIR"], "LATEST").read_text().strip() == str(run.resolve())


def test_discriminator_learns_on_synthetic_shapes(tmp_path):
    """A short run moves D's accuracy off chance: the data and the update are wired right."""
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "512", "--batch-size", "32",
                   "--quiet", "--max-steps", "30", "--log-every", "10", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert (last["d_acc_real"] + last["d_acc_fake"]) / 2 > 0.6


def test_trains_on_cifar10_pickles_and_mnist_idx_files(tmp_path):
    write_cifar10(tmp_path / "data")
    write_mnist(tmp_path / "data")
    for arch, dataset in (("cifar-dcgan", "cifar10"), ("mnist-dcgan", "mnist"), ("cifar-dcgan", "mnist")):
        run = tmp_path / f"{arch}-{dataset}"
        result = train("--arch", arch, "--dataset", dataset, "--data-dir", str(tmp_path / "data"), "--batch-size", "16",
                       "--quiet", "--max-steps", "2", "--no-download", "--out", str(run))
        assert result.exit_code == 0, result.stderr
        assert (run / "generator.safetensors").exists()


def test_dry_run_prints_the_resolved_recipe_and_writes_nothing(tmp_path):
    result = train("--arch", "tf-dcgan", "--lr", "3e-4", "--dry-run", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0
    assert "simultaneous" in result.stdout and "0.0003" in result.stdout
    assert not (tmp_path / "run").exists()


def test_resumed_run_is_bitwise_identical_on_cpu(tmp_path):
    common = ["--arch", "tf-dcgan", *QUICK, "--checkpoint-every", "3", "--seed", "7"]
    assert train(*common, "--max-steps", "10", "--out", str(tmp_path / "straight")).exit_code == 0
    # the same run stopped at step 5 (between checkpoints), then resumed to step 10
    assert train(*common, "--max-steps", "5", "--out", str(tmp_path / "broken")).exit_code == 0
    result = train("--resume", "--out", str(tmp_path / "broken"), "--max-steps", "10", "--quiet")
    assert result.exit_code == 0, result.stderr
    a, b = tensors(tmp_path / "straight" / "generator.safetensors"), tensors(tmp_path / "broken" / "generator.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # each step logged once: the stopped run's own last record, then the resumed run's
    steps = [json.loads(line)["step"] for line in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 5, 6, 8, 10]


def test_resume_refuses_to_change_the_recipe(tmp_path):
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "1", "--out", str(run)).exit_code == 0
    result = train("--resume", "--out", str(run), "--lr", "1e-3")
    assert result.exit_code != 0 and "--g-lr, --d-lr cannot change when resuming" in result.stderr


def test_resume_without_a_run_is_one_line(tmp_path):
    result = train("--resume")
    assert result.exit_code != 0 and "no run to resume" in result.stderr and "GANCTL_RUNS_DIR" in result.stderr


def test_second_training_in_the_same_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "1", "--out", str(run)).exit_code == 0
    with open(run / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = train("--resume", "--out", str(run), "--max-steps", "2")
    assert result.exit_code != 0 and "already running" in result.stderr


class NaNLoss(LOSSES.get("bce").obj):
    def g(self, fake_logits):
        return super().g(fake_logits) * float("nan")


@pytest.fixture
def nan_loss():
    LOSSES.add("test-nan", NaNLoss, "always NaN", PluginSource("test"))
    yield "test-nan"
    LOSSES.remove("test-nan")


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, nan_loss):
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", *QUICK, "--loss", nan_loss, "--max-steps", "10", "--out", str(run))
    assert result.exit_code == 3
    assert "training diverged: non-finite loss by step 2" in result.stderr
    assert not list((run / "checkpoints").iterdir())  # nothing non-finite was saved
    assert not (run / "generator.safetensors").exists()


def test_collapse_and_diversity_watches():
    watch = CollapseWatch(threshold=0.05, window=3)
    assert [watch.update(x) for x in (0.6, 0.01, 0.01, 0.01, 0.01, 0.7, 0.01, 0.01, 0.01)] == [
        False, False, False, True, False, False, False, False, True,
    ]
    diversity = DiversityWatch()
    assert not diversity.update(0.01)  # an untrained generator: low, but never higher
    assert not diversity.update(0.2)
    assert diversity.update(0.02)
    same = torch.zeros(8, 3, 4, 4)
    assert sample_spread(same, (-1, 1)) == 0
    assert sample_spread(torch.rand(8, 3, 4, 4) * 2 - 1, (-1, 1)) > 0.1


def test_discriminator_wins_and_blank_watches():
    wins = DiscriminatorWinsWatch(window=3)
    seen = [wins.update(r, f) for r, f in ((1, 1), (1, 1), (1, 0.9), (1, 1), (1, 1), (1, 1), (1, 1))]
    assert seen == [False, False, False, False, False, True, False]  # a sustained window, reported once
    assert blank_fraction(torch.full((4, 3, 8, 8), -1.0), (-1, 1)) == 1.0
    varied = torch.rand(4, 3, 8, 8) * 2 - 1
    assert blank_fraction(varied, (-1, 1)) == 0.0
    assert blank_fraction(torch.cat([varied[:2], torch.full((2, 3, 8, 8), 0.3)]), (-1, 1)) == 0.5
    blank = BlankWatch()
    assert [blank.update(x) for x in (0.1, 1.0, 1.0, 0.0, 0.95)] == [False, True, False, False, True]


def test_d_wins_and_blank_samples_are_reported_with_remedies(tmp_path, monkeypatch):
    import ganctl.training.events as loop_module

    class Eager(DiscriminatorWinsWatch):  # any accuracy counts, from the first record
        def __init__(self):
            super().__init__(threshold=0.0, window=1)

    monkeypatch.setattr(loop_module, "DiscriminatorWinsWatch", Eager)
    monkeypatch.setattr(loop_module, "blank_fraction", lambda images, pixel_range: 1.0)
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "32", "--batch-size", "16",
                   "--log-every", "1", "--max-steps", "2", "--out", str(run))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = {r["event"]: r["message"] for r in records if "event" in r}
    assert "won outright" in events["d_wins"] and "--spectral-norm d" in events["d_wins"]
    assert "blank" in events["blank_samples"] and "--d-lr" in events["blank_samples"]
    assert "warning: the discriminator has won outright" in result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--arch", "cifar-dcgn"], "did you mean 'cifar-dcgan'"),
        (["--arch", "cifar-dcgan", "--loss", "bcee"], "unknown loss 'bcee'"),
        (["--arch", "cifar-dcgan", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--arch", "cifar-dcgan", "--epochs", "0"], "--epochs must be at least 1"),
        (["--arch", "cifar-dcgan", "--batch-size", "-4"], "--batch-size must be at least 1"),
        (["--arch", "cifar-dcgan", "--dataset", "synthetic", "--limit", "8", "--batch-size", "16"], "larger than the dataset"),
        (["--arch", "cifar-dcgan", "--device", "tpu"], "unknown device 'tpu'"),
        (["--arch", "cifar-dcgan", "--image-size", "30"], "cannot be built at 30 px"),
        ([], "choose an architecture with --arch"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, message, tmp_path):
    result = train(*args, "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_out_and_existing_runs_are_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = train("--arch", "mnist-dcgan", *QUICK, "--out", str(blocker / "run"))
    assert result.exit_code != 0 and "cannot write to" in result.stderr
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "1", "--out", str(run)).exit_code == 0
    before = (run / "generator.safetensors").read_bytes()
    result = train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "2", "--out", str(run))
    assert result.exit_code != 0 and "already holds files" in result.stderr
    assert (run / "generator.safetensors").read_bytes() == before
    assert blocker.read_text() == "keep me"


# ----------------------------------------------------------------------------------------
# What train prints: a missing dataset first and alone; a progress bar that fits


def test_a_missing_dataset_is_reported_alone_before_any_table(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "cifar-dcgan", "--no-download", "--data-dir", str(tmp_path / "empty"), "--out", str(run))
    assert result.exit_code != 0
    assert "cifar-10-python.tar.gz" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Training cifar-dcgan" not in result.stdout and str(run) not in result.stdout
    assert not run.exists()


def test_the_table_is_printed_once_the_run_starts(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "32", "--batch-size", "16",
                   "--max-steps", "1", "--out", str(run))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Training mnist-dcgan" in result.stdout and str(run) in result.stdout


def test_dry_run_says_the_run_folder_is_not_created(tmp_path):
    result = train("--arch", "tf-dcgan", "--dry-run", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0 and "not created: --dry-run" in result.stdout


def _rendered_bar(width: int, record: dict, fid: float | None = None, step: int = 1000) -> str:
    import io

    from rich.console import Console

    from ganctl.commands.train import ProgressView

    buffer = io.StringIO()
    view = ProgressView(console=Console(file=buffer, width=width, force_terminal=False))
    view.start(total=1000, done=0, per_epoch=200)
    view.show(record)
    if fid is not None:
        view.show_eval({"fid": fid})
    view.advance(step)
    view.stop()
    return buffer.getvalue().rstrip("\n")


RECORD = {"d_loss_real": 0.6931, "d_loss_fake": 0.70001, "g_loss": 1.234, "d_acc_real": 0.5, "d_acc_fake": 0.25,
          "images_per_s": 1234.5}  # fmt: skip


def test_the_progress_bar_fits_80_columns_dropping_whole_figures():
    line = _rendered_bar(80, RECORD, fid=166.43)
    assert len(line) <= 80 and "…" not in line
    assert "D 0.693/0.700 G 1.234" in line  # the losses come first
    assert "elapsed " in line and "left " in line
    wide = _rendered_bar(160, RECORD, fid=166.43)
    for figure in ("D 0.693/0.700 G 1.234", "FID 166.4", "acc 0.50/0.25", "1234 img/s"):
        assert figure in wide
    narrow = _rendered_bar(64, RECORD)
    assert len(narrow) <= 64 and "…" not in narrow and "0.6" not in narrow  # dropped whole, not cut


def test_the_epoch_shown_is_the_one_being_trained():
    assert "epoch 5/5" in _rendered_bar(120, RECORD, step=1000)  # the end of a 5-epoch run: not "epoch 6"
    assert "epoch 1/5" in _rendered_bar(120, RECORD, step=0)
    assert "epoch 2/5" in _rendered_bar(120, RECORD, step=200)
