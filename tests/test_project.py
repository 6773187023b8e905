"""``ganctl project``: projection finds a generator's own image back, its latents reproduce the
reconstruction, and bad input is refused before any work."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganctl.latent import perceptual
from ganctl.latent.projection import learning_rate, load_targets, noise_scale
from ganctl.networks.weights import save_generator
from ganctl.registry import ARCHITECTURES
from tests.helpers import invoke, one_line_error, random_inception_file


def _varied_generator(path, arch_name: str = "mnist-dcgan"):
    """A generator whose images depend clearly on z (an untrained one barely does)."""
    arch = ARCHITECTURES.get(arch_name).obj
    torch.manual_seed(0)
    generator = arch.build_generator()
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.weight.mul_(3.0)
    save_generator(path, generator, architecture=arch_name, arch_args=arch.arch_args(), pixel_range=arch.recipe.pixel_range)
    return path


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float64)


def test_schedule_is_the_stylegan2_projectors():
    assert learning_rate(0.0) == 0.0 and math.isclose(learning_rate(0.5), 0.1)
    assert math.isclose(learning_rate(0.025), 0.05) and learning_rate(0.999) < 1e-3
    assert math.isclose(noise_scale(0.0), 0.05) and noise_scale(0.75) == 0.0 and noise_scale(0.9) == 0.0


def test_projection_finds_the_generators_own_image_and_its_latents_reproduce_it(tmp_path):
    g = _varied_generator(tmp_path / "g.safetensors")
    assert invoke("sample", "--weights", g, "--n", "2", "--seed", "3", "--individual", tmp_path / "own").exit_code == 0
    targets = [tmp_path / "own" / "000000.png", tmp_path / "own" / "000001.png"]
    result = invoke("project", *targets, "--weights", g, "--distance", "pixel", "--steps", "40", "--gif", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "p" / "projection.json").read_text())
    for entry in report["images"]:
        assert entry["final_loss"] < 0.2 * entry["loss_at_zero"]
    for target in targets:
        found = _pixels(tmp_path / "p" / "images" / target.name)
        assert np.abs(found - _pixels(target)).mean() < 8  # of 255: found back closely
    assert Image.open(tmp_path / "p" / "projection.gif").n_frames > 2
    assert Image.open(tmp_path / "p" / "comparison.png").size[0] > 2 * 28
    # the latent file, given to sample, gives the reconstructions bit for bit
    again = invoke("sample", "--weights", g, "--z-file", tmp_path / "p" / "latents.safetensors", "--individual", tmp_path / "again")
    assert again.exit_code == 0, again.output
    for target in targets:
        assert (tmp_path / "again" / target.name).read_bytes() == (tmp_path / "p" / "images" / target.name).read_bytes()


def test_wrong_size_and_channels_are_converted_and_said(tmp_path):
    Image.new("RGBA", (60, 40), (200, 10, 10, 128)).save(tmp_path / "wide.png")
    notes = []
    images = load_targets([tmp_path / "wide.png"], 28, 1, notes.append)
    assert images.shape == (1, 1, 28, 28) and images.dtype == torch.uint8
    assert "RGBA converted to L" in notes[0] and "centre-cropped from 60x40 to 40x40" in notes[0] and "resized from 40 to 28" in notes[0]
    Image.new("L", (28, 28), 7).save(tmp_path / "gray.png")
    notes.clear()
    assert load_targets([tmp_path / "gray.png"], 28, 3, notes.append).shape == (1, 3, 28, 28) and "L converted to RGB" in notes[0]


def test_project_refuses_before_any_work(tmp_path):
    g = _varied_generator(tmp_path / "g.safetensors")
    Image.new("L", (28, 28)).save(tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("not an image")
    out = ["--out", tmp_path / "p"]
    one_line_error(invoke("project", tmp_path / "ok.png", "--weights", g, "--steps", "0", *out), "--steps")
    one_line_error(invoke("project", tmp_path / "notes.txt", "--weights", g, *out), "notes.txt", "not an image")
    one_line_error(invoke("project", tmp_path / "missing.png", "--weights", g, *out), "missing.png")
    one_line_error(invoke("project", tmp_path / "ok.png", "--weights", g, "--distance", "vgg", *out), "--distance")
    one_line_error(invoke("project", tmp_path / "ok.png", "--weights", g, "--distance", "inception", "--inception", tmp_path / "none.pth", *out), "none.pth")
    assert not (tmp_path / "p").exists()


def test_auto_distance_falls_back_and_says_so(monkeypatch):
    monkeypatch.setattr(perceptual, "lpips_available", lambda: False)
    notes = []
    chosen = perceptual.choose("auto", None, torch.device("cpu"), notes.append)  # the tests have no Inception weights
    assert chosen.distance is None and "pixel distance alone" in notes[0]


@pytest.mark.slow
def test_inception_distance_reduces_on_the_generators_own_image(tmp_path):
    """The Inception feature distance, on a random-weight FID Inception (the real weights are not in CI)."""
    weights = random_inception_file(tmp_path / "inception.pth")
    g = _varied_generator(tmp_path / "g.safetensors", "cifar-dcgan")
    assert invoke("sample", "--weights", g, "--n", "1", "--seed", "1", "--individual", tmp_path / "own").exit_code == 0
    result = invoke("project", tmp_path / "own" / "000000.png", "--weights", g, "--distance", "inception", "--inception", weights,
                    "--steps", "20", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert "Inception features" in result.stderr
    entry = json.loads((tmp_path / "p" / "projection.json").read_text())["images"][0]
    assert entry["final_loss"] < entry["loss_at_zero"]
