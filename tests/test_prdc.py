"""Precision, recall, density and coverage: a hand computation, the known cases, the published
package where it is installed, and ``ganctl eval --prdc``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganctl.errors import GanctlError
from ganctl.metrics import prdc as prdc_module
from ganctl.metrics.prdc import prdc, prdc_of_sides
from tests.helpers import invoke


def test_a_hand_computation_in_one_dimension():
    # real 0, 1, 3: radii (nearest other real) 1, 1, 2; fake 0.5, 10: radii 9.5, 9.5
    real, fake = np.array([[0.0], [1.0], [3.0]]), np.array([[0.5], [10.0]])
    result = prdc(real, fake, k=1)
    assert result["precision"] == 0.5  # 0.5 lies in real 0's ball; 10 in none
    assert result["recall"] == 1.0  # every real lies within 9.5 of 0.5
    assert result["density"] == 1.0  # 0.5 is in two real balls (0 and 1), 10 in none: 2 / (1 · 2)
    assert result["coverage"] == pytest.approx(2 / 3)  # real 3's ball (radius 2) holds no fake


def test_identical_sets_score_one_and_far_sets_zero():
    features = np.random.default_rng(0).standard_normal((60, 16))
    same = prdc(features, features.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] >= 1.0  # each point lies in its own ball and its k neighbours'
    far = prdc(features, features + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((50, 8)), rng.standard_normal((40, 8)) * 1.3 + 0.2
    whole = prdc(real, fake)
    monkeypatch.setattr(prdc_module, "BLOCK", 7)
    assert prdc(real, fake) == whole


@pytest.mark.slow  # importing prdc imports scikit-learn (~3 s)
def test_agrees_with_the_published_prdc_package():
    published = pytest.importorskip("prdc")
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((120, 10)), rng.standard_normal((100, 10)) * 1.2 + 0.3
    theirs = published.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    ours = prdc(real, fake)
    for key in ours:
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-12)


def test_too_few_images_and_subsets():
    with pytest.raises(GanctlError, match="more than 5"):
        prdc(np.zeros((5, 3)), np.zeros((10, 3)))
    rng = np.random.default_rng(3)
    result = prdc_of_sides(rng.standard_normal((30, 4)), rng.standard_normal((30, 4)), max_images=20)
    assert "20 reference and 20 evaluated" in result["prdc_protocol"] and "seed 0" in result["prdc_protocol"]


@pytest.mark.slow  # the Inception pass: ~16 s on two shared cores
def test_eval_reports_prdc_on_inception_features(tmp_path, weights_file):
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        g = torch.Generator().manual_seed(seed)
        for i in range(8):
            pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    args = ["eval", "--real", f"folder:{tmp_path / 'a'}", "--fake", f"folder:{tmp_path / 'b'}", "--no-fid", "--no-kid", "--prdc",
            "--inception", weights_file, "--json", "--batch-size", "8"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"precision", "recall", "density", "coverage"} <= data.keys() and "k = 5" in data["protocol"]["prdc"]
    assert all(0.0 <= data[key] <= 1.0 for key in ("precision", "recall", "coverage"))
    same = json.loads(invoke(*args[:4], f"folder:{tmp_path / 'a'}", *args[5:]).stdout)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
