"""`ganctl latent-arith`: concept means, their combination, the picture and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganctl.latent import arithmetic as latent_arithmetic
from ganctl.latent import sampling
from ganctl.latent.latents import read_latents
from ganctl.cli import app
from ganctl.errors import GanctlError
from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import load_generator, save_generator

runner = CliRunner()


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path, np.ndarray]:
    """An mnist-dcgan generator file and a .npy of 12 latents."""
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    torch.manual_seed(0)
    generator, _ = arch.build()
    weights = tmp_path / "g.safetensors"
    save_generator(weights, generator, architecture="mnist-dcgan", arch_args=arch.arch_args(), pixel_range=arch.recipe.pixel_range)
    z = np.random.default_rng(0).standard_normal((12, 100)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    return weights, tmp_path / "z.npy", z


def arith(*args: str):
    return runner.invoke(app, ["latent-arith", *args])


def test_concepts_and_expressions_are_parsed():
    assert latent_arithmetic.parse_concept("smiling_woman=3, 17,42") == ("smiling_woman", [3, 17, 42])
    assert latent_arithmetic.parse_expression("a - b + 0.5*c", "abc") == [(1.0, "a"), (-1.0, "b"), (0.5, "c")]
    assert latent_arithmetic.parse_expression(" -2 * a+b ", "ab") == [(-2.0, "a"), (1.0, "b")]


@pytest.mark.parametrize("spec", ["a", "=1,2", "a b=1", "a=", "a=1,x"])
def test_malformed_concepts_are_refused(spec):
    with pytest.raises(GanctlError, match="--concept"):
        latent_arithmetic.parse_concept(spec)


@pytest.mark.parametrize("expression, fragment", [("a b", "joined by"), ("a +", "joined by"), ("a - d", "'d'"), ("", "empty"), ("a * b", "joined by")])
def test_malformed_expressions_are_refused(expression, fragment):
    with pytest.raises(GanctlError, match=fragment):
        latent_arithmetic.parse_expression(expression, "abc")


def test_means_and_their_combination():
    z = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    means = latent_arithmetic.concept_means(z, {"a": [0, 1, 2], "b": [3], "c": [4, 5]})
    torch.testing.assert_close(means["a"], z[:3].mean(0))
    result = latent_arithmetic.combine(means, [(1.0, "a"), (-1.0, "b"), (0.5, "c")])
    torch.testing.assert_close(result, z[:3].mean(0) - z[3] + 0.5 * z[4:].mean(0))
    with pytest.raises(GanctlError, match="index 6 is outside"):
        latent_arithmetic.concept_means(z, {"a": [0, 6]})


def test_the_picture_and_the_saved_result(files, tmp_path):
    weights, z_file, z = files
    out, saved = tmp_path / "arith.png", tmp_path / "result.npy"
    result = arith("--weights", str(weights), "--z-file", str(z_file), "--concept", "a=0,1,2", "--concept", "b=3,4,5",
                   "--concept", "c=6", "--expr", "a - b + c", "--out", str(out), "--save-z", str(saved),
                   "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "a - b + c" in result.stdout
    expected = z[0:3].mean(0) - z[3:6].mean(0) + z[6]
    latents = np.load(saved)
    assert latents.shape == (8, 100)  # the result and 7 variations
    np.testing.assert_allclose(latents[0], expected, rtol=1e-5, atol=1e-5)
    assert 0 < np.abs(latents[1:] - latents[0]).std() < 0.5  # noise of std 0.25 around it
    # 4 rows (3 concepts, the result) × 8 columns (widest: result + 7) of 28 px with 2 px padding
    picture = Image.open(out)
    assert picture.mode == "L" and picture.size == ((8 * 30 + 2) * 3, (4 * 30 + 2) * 3)
    # the result's cell is the generator's image of the result latent
    generator, info = load_generator(weights)
    (image,) = sampling.generate(generator, torch.from_numpy(latents[:1]), info.pixel_range, device=torch.device("cpu"))
    cell = np.asarray(picture)[::3, ::3][3 * 30 + 2 : 3 * 30 + 30, 2:30]  # undo the default 3× (nearest)
    assert np.array_equal(cell, image[0, 0].numpy())


def test_no_noise_repeats_the_result(files, tmp_path):
    weights, z_file, _ = files
    saved = tmp_path / "r.safetensors"
    result = arith("--weights", str(weights), "--z-file", str(z_file), "--concept", "a=0,1", "--expr", "2*a",
                   "--variations", "2", "--noise", "0", "--out", str(tmp_path / "a.png"), "--save-z", str(saved), "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    latents = read_latents(saved, 100)
    assert latents.shape == (3, 100) and torch.equal(latents[0], latents[1]) and torch.equal(latents[0], latents[2])


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--concept", "a=0,99", "--expr", "a"], "index 99 is outside"),
        (["--concept", "a=0", "--expr", "a + b"], "'b'"),
        (["--concept", "a=0", "--concept", "a=1", "--expr", "a"], "given twice"),
        (["--concept", "a:0", "--expr", "a"], "NAME=I,J,K"),
        (["--concept", "a=0", "--expr", "a", "--out", "x.jpg"], ".png"),
        (["--concept", "a=0", "--expr", "a", "--variations", "-1"], "--variations"),
        (["--concept", "a=0", "--expr", "a", "--save-z", "r.txt"], ".npy or .safetensors"),
    ],
)
def test_bad_input_is_one_line(files, tmp_path, monkeypatch, extra, fragment):
    weights, z_file, _ = files
    monkeypatch.chdir(tmp_path)
    result = arith("--weights", str(weights), "--z-file", str(z_file), *extra)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "arith.png").exists()


def test_an_existing_picture_is_kept_without_force(files, tmp_path):
    weights, z_file, _ = files
    out = tmp_path / "arith.png"
    out.write_bytes(b"keep me")
    args = ["--weights", str(weights), "--z-file", str(z_file), "--concept", "a=0", "--expr", "a", "--out", str(out), "-q"]
    result = arith(*args)
    assert result.exit_code == 2 and "--force" in result.stderr and out.read_bytes() == b"keep me"
    assert arith(*args, "--force").exit_code == 0 and Image.open(out).size == ((8 * 30 + 2) * 5, (2 * 30 + 2) * 5)
