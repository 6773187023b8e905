"""Adaptive discriminator augmentation: the pipeline, its controller, and a run that uses it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganctl.training.ada import AdaptiveAugment
from tests.helpers import QUICK, read_tensors, train

CPU = torch.device("cpu")


def pipeline(p: float = 0.0, **kw) -> AdaptiveAugment:
    ada = AdaptiveAugment((-1, 1), CPU, seed=0, batch_size=8, **kw)
    ada.p = torch.tensor(p)
    return ada


def test_at_p_zero_images_pass_unchanged_and_at_p_one_every_transform_can_fire():
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    still = pipeline(0.0)
    torch.testing.assert_close(still.apply(x, still.draw(16, 16, 16, CPU)), x, atol=1e-5, rtol=0)
    busy = pipeline(1.0)
    params = busy.draw(16, 16, 16, CPU)
    assert not torch.allclose(params["warp"], torch.eye(3)[:2].expand(16, 2, 3))
    assert not torch.allclose(params["colour"], torch.eye(4).expand(16, 4, 4))
    assert (busy.apply(x, params) - x).abs().amax(dim=(1, 2, 3)).min() > 0.01  # every image changed


def test_an_x_flip_alone_mirrors_the_image_exactly_up_to_sampling():
    ada = pipeline(0.0)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    flip = {"warp": torch.tensor([[[-1.0, 0, 0], [0, 1, 0]]]), "colour": torch.eye(4)[None]}
    torch.testing.assert_close(ada.apply(x, flip), x.flip(3), atol=1e-5, rtol=0)


def test_draws_come_from_its_own_generator():
    a, b = pipeline(0.5), pipeline(0.5)
    torch.manual_seed(1)
    first = a.draw(4, 8, 8, CPU)
    torch.manual_seed(2)  # the global generator does not matter
    second = b.draw(4, 8, 8, CPU)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_p_follows_the_overfitting_heuristic_towards_the_target():
    ada = pipeline(0.0, target=0.6, interval=4, speed_kimg=0.32)  # batch 8 × 4 iterations / 320 images = 0.1 a move
    for i in range(1, 9):  # D says "real" to every real image: overfitting, p rises
        ada.observe(torch.tensor(1.0))
        ada.adjust(i)
    assert ada.p.item() == pytest.approx(0.2)
    for i in range(9, 13):  # D unsure: r_t = 0 < 0.6, p falls
        ada.observe(torch.tensor(0.0))
        ada.adjust(i)
    assert ada.p.item() == pytest.approx(0.1)
    for i in range(13, 200):
        ada.observe(torch.tensor(-1.0))
        ada.adjust(i)
    assert ada.p.item() == 0.0  # clamped


def test_a_run_with_ada_logs_p_and_resumes_bitwise(tmp_path):
    # p moves by 16 × 4 / 640 = 0.1 every 4 iterations; target 0: any lean of D towards "real" raises it
    args = [*QUICK, "--arch", "mnist-dcgan", "--augment", "ada,translation", "--ada-kimg", "0.64", "--ada-target", "0",
            "--log-every", "2", "--checkpoint-every", "4"]  # fmt: skip
    straight = tmp_path / "straight"
    assert train(*args, "--max-steps", "8", "--out", str(straight)).exit_code == 0
    halves = tmp_path / "halves"
    assert train(*args, "--max-steps", "4", "--out", str(halves)).exit_code == 0
    assert train("--resume", "--max-steps", "8", "--out", str(halves), "--quiet").exit_code == 0
    a, b = read_tensors(straight / "generator.safetensors"), read_tensors(halves / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    r = {rec["step"]: rec["ada_r"] for rec in records if "ada_r" in rec}
    p = {rec["step"]: rec["ada_p"] for rec in records if "ada_p" in rec}
    assert sorted(p) == [2, 4, 6, 8]
    # the first adjustment, after iteration 4, from r_t over iterations 1-4 (one D update each);
    # each record holds the mean of p after each iteration of its interval
    r_t = (r[2] + r[4]) / 2
    p_after_4 = min(1.0, max(0.0, 0.1 * math.copysign(1, r_t) if r_t != 0 else 0.0))
    assert p[2] == 0 and p[4] == pytest.approx(p_after_4 / 2, abs=1e-6)


@pytest.mark.parametrize("option,value,message", [
    ("--ada-target", "1.5", "--ada-target must lie in [0, 1)"),
    ("--ada-kimg", "0", "--ada-kimg must be a positive number"),
    ("--augment", "ada,ada", "names a transform twice"),
])  # fmt: skip
def test_bad_ada_options_are_refused_in_one_line(option, value, message, tmp_path):
    result = train(*QUICK, "--arch", "mnist-dcgan", "--augment", "ada", option, value, "--out", str(tmp_path / "run"))
    assert result.exit_code != 0 and message in result.stderr
    assert not (tmp_path / "run").exists()
