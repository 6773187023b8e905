"""`ganctl train --eval-every`: FID/KID records in metrics.jsonl and best.safetensors.

The bookkeeping is tested with a scripted measurement; the whole path once with the Inception
of ``weights_file`` (conftest.py: the real weights when present, else random ones); one slow
check runs the real Inception at the real minimum of 2,048 images.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from ganctl import metrics
from ganctl.training.evaluation import TrainingEval
from ganctl.networks.weights import load_generator, read_info
from tests.helpers import QUICK, REAL_WEIGHTS, train
from tests.helpers import read_tensors as tensors


@pytest.fixture
def scripted_fid(monkeypatch):
    """Evaluations return the FIDs of ``scripted_fid.values`` in turn, and record what they measured."""

    class Script:
        values: list[float] = []
        measured: list[torch.Tensor] = []
        seconds = 0.0  # how long a measurement takes

    def measure(self, generator, pixel_range, latent_dim):
        time.sleep(Script.seconds)
        Script.measured.append(generator(torch.zeros(1, latent_dim)).detach().clone())
        fid = Script.values.pop(0)
        return {"fid": fid, "kid_mean": fid / 1000, "kid_std": 0.0001, "seconds": {"features": 1.0, "metrics": 0.5},
                "protocol": {"n_evaluated": 16, "n_reference": 16}}  # fmt: skip

    monkeypatch.setattr(metrics.statistics, "MIN_FID_SAMPLES", 16)  # the tiny dataset is enough for the bookkeeping
    monkeypatch.setattr(metrics, "resolve_weights", lambda *a, **k: "weights")
    monkeypatch.setattr(TrainingEval, "measure", measure)
    Script.values, Script.measured, Script.seconds = [], [], 0.0
    return Script


def eval_records(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "fid" in r]


def test_evaluations_are_recorded_and_the_best_generator_is_kept(tmp_path, scripted_fid):
    scripted_fid.values = [5.0, 3.0, 4.0]
    run = tmp_path / "run"
    result = train("--arch", "cifar-dcgan", *QUICK, "--epochs", "3", "--eval-every", "1", "--eval-n", "16", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    records = eval_records(run)
    # one per epoch (4 iterations each); the last epoch's is also the final one, not repeated
    assert [r["step"] for r in records] == [4, 8, 12]
    assert [r["fid"] for r in records] == [5.0, 3.0, 4.0]
    assert [r["best"] for r in records] == [True, True, False]
    assert records[0]["kid_mean"] == 0.005 and records[0]["protocol"]["n_evaluated"] == 16
    generator, info = load_generator(run / "best.safetensors")
    assert info.extra["step"] == "8" and info.extra["fid"] == "3.0" and info.extra["eval_n"] == "16"
    # best.safetensors holds the generator as it was measured at step 8, not the final one
    # (to rounding: the trainer's copy is channels_last, the loaded one is not)
    torch.testing.assert_close(generator(torch.zeros(1, info.latent_dim)), scripted_fid.measured[1])
    best, final = tensors(run / "best.safetensors"), tensors(run / "generator.safetensors")
    assert any(not torch.equal(best[name], final[name]) for name in best)


def test_images_per_second_do_not_count_the_evaluation(tmp_path, scripted_fid):
    scripted_fid.values, scripted_fid.seconds = [1.0, 2.0], 3.0  # at step 4, and the final one at 6
    run = tmp_path / "run"
    # 4 iterations an epoch, logged at 2 and 4 (the evaluation, 3 s) and at 6
    result = train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "6", "--eval-every", "1", "--eval-n", "16", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["images_per_s"] for r in records if "images_per_s" in r}
    assert rates[6] > 32 / 3.0  # 2 iterations of 16 images: far faster than if the 3 s counted


def test_the_final_generator_is_evaluated_when_no_epoch_boundary_was(tmp_path, scripted_fid):
    scripted_fid.values = [7.0]
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "3", "--eval-every", "5", "--eval-n", "16", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    assert [(r["step"], r["fid"], r["best"]) for r in eval_records(run)] == [(3, 7.0, True)]
    assert read_info(run / "best.safetensors").extra["step"] == "3"


def test_the_best_fid_survives_a_resume(tmp_path, scripted_fid):
    scripted_fid.values = [5.0, 3.0, 4.0]
    run = tmp_path / "run"
    options = ["--arch", "cifar-dcgan", *QUICK, "--eval-every", "1", "--eval-n", "16", "--out", str(run)]
    assert train(*options, "--epochs", "2").exit_code == 0
    result = train(*options, "--epochs", "3", "--resume")
    assert result.exit_code == 0, result.stderr
    records = eval_records(run)
    assert [(r["step"], r["best"]) for r in records] == [(4, True), (8, True), (12, False)]
    assert read_info(run / "best.safetensors").extra["step"] == "8"  # 4.0 at step 12 did not beat 3.0


def test_resuming_a_finished_run_does_not_measure_it_again(tmp_path, scripted_fid):
    scripted_fid.values = [7.0]  # a second measurement would find the script empty
    run = tmp_path / "run"
    options = ["--arch", "mnist-dcgan", *QUICK, "--epochs", "1", "--eval-every", "5", "--eval-n", "16", "--out", str(run)]
    assert train(*options).exit_code == 0
    result = train(*options, "--resume")
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in eval_records(run)] == [4]


def test_eval_can_be_added_when_resuming_but_eval_n_cannot_change(tmp_path, scripted_fid):
    scripted_fid.values = [2.0]
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--epochs", "1", "--out", str(run)).exit_code == 0
    result = train("--arch", "mnist-dcgan", *QUICK, "--epochs", "2", "--eval-n", "999", "--resume", "--out", str(run))
    assert result.exit_code == 2 and "--eval-n cannot change" in result.stderr
    result = train("--epochs", "2", "--eval-every", "2", "--quiet", "--resume", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in eval_records(run)] == [8]


def test_the_real_measurement_path_with_a_cached_reference(tmp_path, weights_file, monkeypatch):
    monkeypatch.setattr(metrics.statistics, "MIN_FID_SAMPLES", 16)  # 2,048 images would take minutes on a CPU
    options = ["--arch", "mnist-dcgan", *QUICK, "--max-steps", "4", "--eval-every", "1", "--eval-n", "16",
               "--inception", str(weights_file)]  # fmt: skip
    for name in ("first", "second"):
        result = train(*options, "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.stderr
    first, second = (eval_records(tmp_path / name)[0] for name in ("first", "second"))
    assert first["step"] == 4 and first["best"] and first["fid"] > 0 and first["kid_std"] >= 0
    protocol = first["protocol"]
    assert protocol["n_evaluated"] == 16 and protocol["n_reference"] == 16
    assert protocol["reference"]["dataset"] == "synthetic" and protocol["reference"]["split"] == "train"
    assert protocol["inception"]["file"] == weights_file.name and not protocol["reference_cached"]
    assert second["protocol"]["reference_cached"]  # the second run measured only its own images
    assert second["fid"] == first["fid"]  # same seed, same generator, same latents, same figure
    assert read_info(tmp_path / "first" / "best.safetensors").extra["fid"] == str(first["fid"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eval-every", "0"], "--eval-every must be at least 1"),
        (["--eval-every", "1", "--eval-n", "100"], "--eval-n must be at least 2,048"),
        (["--eval-every", "1", "--eval-n", "4096"], "needs at least 2,048 training images for FID; synthetic has 64"),
        (["--eval-every", "1", "--limit", "4096", "--eval-n", "2048"], "the FID Inception weights are missing"),
        (["--eval-every", "1", "--limit", "4096", "--inception", "/nonexistent/inception.pth"], "does not exist"),
    ],
)
def test_bad_evaluation_options_fail_before_the_run_folder_exists(extra, message, tmp_path):
    run = tmp_path / "run"
    options = [*QUICK, *extra] if "--limit" not in extra else [o for o in QUICK if o not in ("--limit", "64")] + extra
    result = train("--arch", "mnist-dcgan", *options, "--out", str(run))
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not run.exists()


@pytest.mark.slow
@pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="the Inception weights are absent ($GANCTL_TEST_DATA/inception, README, Tests)")
def test_real_fid_during_training(tmp_path):
    """2,048 synthetic images against 2,048 generated: about 4 minutes on two CPU cores."""
    run = tmp_path / "run"
    result = train("--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "2048", "--batch-size", "32", "--quiet",
                   "--max-steps", "3", "--eval-every", "1", "--eval-n", "2048", "--inception", str(REAL_WEIGHTS),
                   "--out", str(run))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (record,) = eval_records(run)
    assert record["best"] and record["fid"] > 50  # an untrained generator is far from the shapes
    assert record["protocol"]["n_evaluated"] == 2048 and record["protocol"]["reference"]["dataset"] == "synthetic"
    assert read_info(run / "best.safetensors").extra["fid"] == str(record["fid"])
