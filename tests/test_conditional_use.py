"""Using a class-conditional generator: `sample --class/--per-class`, latent files with their
classes, `latent-walk --class/--class-walk`, `eval` on it with `--per-class` intra-class FID,
and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import save_generator
from tests.helpers import invoke, one_line_error

CLASSES = ("circle", "square", "triangle")


class ClassColourGenerator(torch.nn.Module):
    """A stand-in conditional G whose image is the class's gray level (the class weights' mean for a walk)."""

    def __init__(self) -> None:
        super().__init__()
        self.level = torch.nn.Parameter(torch.tensor([-0.8, 0.0, 0.8]))

    def forward(self, z, y):
        weights = y if y.is_floating_point() else torch.nn.functional.one_hot(y, 3).float()
        return (weights @ self.level)[:, None, None, None].expand(-1, 1, 28, 28) + 0 * z[:, :1, None, None]


@pytest.fixture
def conditional_file(tmp_path) -> Path:
    """A conditional mnist-dcgan file (label embedding beside z) of three classes."""
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4, num_classes=3)
    path = tmp_path / "conditional.safetensors"
    torch.manual_seed(0)
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(0.0, 1.0),
                   class_names=CLASSES, class_counts=(10, 10, 20))  # fmt: skip
    return path


@pytest.fixture
def plain_file(tmp_path) -> Path:
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4)
    path = tmp_path / "plain.safetensors"
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(0.0, 1.0))
    return path


def test_per_class_grid_has_a_row_per_class_with_its_name(conditional_file, tmp_path):
    out = tmp_path / "grid.png"
    result = invoke("sample", "--weights", str(conditional_file), "--per-class", "4", "--class", "triangle,circle",
                 "--seed", "1", "--scale", "1", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "8 images, 4 per row" in result.stdout and "triangle, circle" in result.stdout
    picture = np.asarray(Image.open(out).convert("L"))
    assert picture.shape[0] == 2 * 30 + 2  # two rows of 28 px tiles, padding 2
    legend_width = picture.shape[1] - (4 * 30 + 2)
    assert legend_width > 10 and picture[:, :legend_width].max() > 200  # the names, white on black


def test_class_choice_changes_the_images_and_save_z_keeps_the_classes(conditional_file, tmp_path):
    common = ["sample", "--weights", str(conditional_file), "--n", "6", "--seed", "2"]
    assert invoke(*common, "--class", "0", "--out", str(tmp_path / "a.png")).exit_code == 0
    result = invoke(*common, "--class", "square", "--class", "triangle", "--save-z", str(tmp_path / "z.safetensors"),
                 "--out", str(tmp_path / "b.png"))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "a.png").tobytes() != Image.open(tmp_path / "b.png").tobytes()
    stored = load_file(str(tmp_path / "z.safetensors"))
    assert stored["y"].tolist() == [1, 2, 1, 2, 1, 2] and stored["z"].shape == (6, 4)
    again = invoke("sample", "--weights", str(conditional_file), "--z-file", str(tmp_path / "z.safetensors"), "--out", str(tmp_path / "c.png"))
    assert again.exit_code == 0, again.stderr
    assert Image.open(tmp_path / "b.png").tobytes() == Image.open(tmp_path / "c.png").tobytes()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--class", "hexagon"], ["'hexagon' is not a class", "circle, square, triangle"]),
        (["--class", "3"], ["from 0 to 2"]),
        (["--save-z", "z.npy"], [".npy file cannot hold"]),
        (["--per-class", "2", "--n", "4"], ["--n cannot be used with --per-class"]),
    ],
)
def test_bad_class_choices_are_one_line(conditional_file, tmp_path, args, fragments):
    result = invoke("sample", "--weights", str(conditional_file), *args, "--out", str(tmp_path / "x.png"))
    one_line_error(result, *fragments)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["sample", "--class", "cat"], ["sample", "--per-class", "3"], ["latent-walk", "--class", "1"],
                                     ["latent-walk", "--class-walk", "0,1"]])  # fmt: skip
def test_classes_on_an_unconditional_generator_are_one_line(plain_file, tmp_path, command):
    result = invoke(*command, "--weights", str(plain_file), "--out", str(tmp_path / "x.png"))
    one_line_error(result, "needs a class-conditional generator", "unconditional")
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def class_colour_file(tmp_path, monkeypatch) -> Path:
    """A conditional generator file that loads as ``ClassColourGenerator`` (each class its gray)."""
    import ganctl.networks.weights as weights

    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4, num_classes=3)
    path = tmp_path / "g.safetensors"
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(-1.0, 1.0),
                   class_names=CLASSES)  # fmt: skip
    real_load = weights.load_generator
    monkeypatch.setattr(weights, "load_generator", lambda p, d="cpu": (ClassColourGenerator(), real_load(p, d)[1]))
    return path


def test_latent_walk_with_a_fixed_class_and_a_class_walk(tmp_path, class_colour_file):
    path = class_colour_file
    out = tmp_path / "walk.png"
    result = invoke("latent-walk", "--weights", str(path), "--class-walk", "circle,triangle", "--steps", "4", "--rows", "1",
                 "--seed", "0", "--scale", "1", "--padding", "0", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    picture = np.asarray(Image.open(out).convert("L")).astype(int)
    levels = [picture[14, 28 * i + 14] for i in range(5)]
    assert levels == sorted(levels) and levels[0] < 40 and levels[-1] > 215  # dark circle to bright triangle, smoothly
    result = invoke("latent-walk", "--weights", str(path), "--class", "square", "--rows", "2", "--steps", "2", "--seed", "0",
                 "--scale", "1", "--padding", "0", "--out", str(out), "--force")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert np.all(np.abs(np.asarray(Image.open(out).convert("L")).astype(int) - 128) <= 1)  # every frame the square's gray


def test_latent_walk_through_a_z_file_keeps_its_classes(tmp_path, class_colour_file):
    from safetensors.numpy import save_file

    path = class_colour_file
    z_file, out = tmp_path / "z.safetensors", tmp_path / "walk.png"
    save_file({"z": np.zeros((2, 4), np.float32), "y": np.array([0, 2])}, str(z_file))  # a circle, then a triangle
    common = ["latent-walk", "--weights", str(path), "--z-file", str(z_file), "--steps", "4", "--scale", "1", "--padding", "0"]
    result = invoke(*common, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    picture = np.asarray(Image.open(out).convert("L")).astype(int)
    levels = [picture[14, 28 * i + 14] for i in range(5)]
    assert levels == sorted(levels) and levels[0] < 40 and levels[-1] > 215  # the file's classes, interpolated between
    result = invoke(*common, "--class", "square", "--out", str(out), "--force")  # --class still chooses
    assert result.exit_code == 0, result.stderr
    assert np.all(np.abs(np.asarray(Image.open(out).convert("L")).astype(int) - 128) <= 1)
    save_file({"z": np.zeros((3, 4), np.float32), "y": np.array([2, 2, 2])}, str(z_file))  # one class: whole labels
    result = invoke(*common, "--out", str(out), "--force")
    assert result.exit_code == 0, result.stderr
    assert np.all(np.asarray(Image.open(out).convert("L")).astype(int) > 215)


def labelled_reference(folder: Path, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.random((28, 28)) * 80 + 60 * c).astype(np.uint8)).save(folder / name / f"{i}.png")
    return folder


def test_intra_class_fid_compares_each_class_with_its_own():
    from ganctl.metrics.per_class import intra_class_fid
    from ganctl.metrics.statistics import fid_from_features

    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 8))
    labels = np.repeat([0, 1, 2], 4)
    fake = real + np.where(labels == 2, 3.0, 0.0)[:, None]  # class 2 is off, the others are exact copies
    result = intra_class_fid(real, labels, fake, labels, CLASSES, allow_small_n=True, fid_method="eigh")
    assert result["fid_per_class"]["circle"] == pytest.approx(0, abs=1e-6)
    assert result["fid_per_class"]["triangle"] == pytest.approx(fid_from_features(real[8:], fake[8:], method="eigh"))
    assert result["intra_fid"] == pytest.approx(result["fid_per_class"]["triangle"] / 3)
    assert result["n_per_class"]["square"] == [4, 4]


def test_eval_per_class_needs_a_labelled_reference_and_says_so_before_measuring(conditional_file, tmp_path, weights_file):
    (tmp_path / "flat").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "flat" / "0.png")
    result = invoke("eval", "--weights", str(conditional_file), "--real", f"folder:{tmp_path / 'flat'}", "--per-class",
                 "--inception", str(weights_file), "--allow-small-n")  # fmt: skip
    one_line_error(result, "--per-class needs reference images labelled")


@pytest.mark.slow  # Inception on 18 images: minutes on a busy two-core machine
def test_eval_samples_classes_as_the_reference_does_and_reports_intra_class_fid(conditional_file, tmp_path, weights_file, capsys):
    labelled_reference(tmp_path / "real", 3)
    args = ["eval", "--weights", str(conditional_file), "--real", f"folder:{tmp_path / 'real'}", "--allow-small-n",
            "--fid-method", "eigh", "--inception", str(weights_file), "--batch-size", "9", "--no-kid"]  # fmt: skip
    result = invoke(*args, "--per-class", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["fid_per_class"]) == set(CLASSES) and data["n_per_class"]["square"] == [3, 3]
    assert data["intra_fid"] == pytest.approx(np.mean(list(data["fid_per_class"].values())))
    assert "[3, 3, 3]" in data["protocol"]["evaluated"]["labels"]
    from ganctl.commands.eval_cmd import _print_result

    _print_result(data)  # the text form names the intra-class FID
    assert "Intra-class FID" in capsys.readouterr().out


def test_eval_per_class_refuses_an_unconditional_generator(plain_file, tmp_path, weights_file):
    (tmp_path / "real").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "real" / "a.png")
    result = invoke("eval", "--weights", str(plain_file), "--real", f"folder:{tmp_path / 'real'}", "--per-class",
                 "--inception", str(weights_file), "--allow-small-n")  # fmt: skip
    one_line_error(result, "--per-class needs a class-conditional generator")


def test_the_trainers_evaluation_makes_images_class_by_class_in_the_given_proportions(monkeypatch):
    """evaluate_generator with class weights, Inception replaced by each image's mean gray level."""
    import ganctl.metrics.generated as generated
    from ganctl.metrics.evaluate import evaluate_generator
    from ganctl.metrics.reference import ReferenceStats

    class MeanLevel:
        logits = False

        def __call__(self, batch):
            return batch.float().mean(dim=(1, 2, 3))[:, None].expand(-1, 2048).numpy(), None

    class Weights:
        def describe(self):
            return {"file": "fake"}

    monkeypatch.setattr(generated, "feature_extractor", lambda *a, **k: MeanLevel())
    features = np.random.default_rng(0).normal(size=(30, 2048)).astype(np.float32)
    reference = ReferenceStats(features, features.mean(0), np.cov(features, rowvar=False), {"image_size": 28, "channels": 1}, Weights())
    made = []
    real_generated = generated.generated_features
    monkeypatch.setattr("ganctl.metrics.evaluate.generated_features", lambda *a, **k: made.append(k["labels"]) or real_generated(*a, **k))
    result = evaluate_generator(ClassColourGenerator(), (-1.0, 1.0), 4, reference=reference, n=30, device="cpu", kid=False,
                                fid_method="eigh", allow_small_n=True, class_weights=[1, 1, 4])  # fmt: skip
    assert made[0].tolist() == [0] * 5 + [1] * 5 + [2] * 20
    assert "[5, 5, 20]" in result["protocol"]["evaluated"]["labels"]
