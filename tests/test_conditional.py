"""Class-conditional GANs: labels from the datasets, conditional networks, generator files of
format 2, `train --conditional` (bitwise resume included) and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from ganctl.cli import app
from ganctl.conditional import LabelledImages, allocate, labels_for, parse_classes
from ganctl.data import load_labelled
from ganctl.errors import GanctlError
from ganctl.layers import ConditionalBatchNorm2d, ConditionalSequential, ProjectionDiscriminator
from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import load_generator, read_info, save_generator
from tests.formats import write_cifar10, write_mnist
from tests.helpers import SIZE, quick, read_safetensors, train
from tests.helpers import read_tensors as tensors

runner = CliRunner()
QUICK = quick(limit=96)


# --- labels from the datasets ---------------------------------------------------------------


def test_synthetic_labels_are_the_dominant_shape_whatever_the_size():
    small = load_labelled("synthetic", data_dir=None, image_size=16, channels=1, limit=300)
    large = load_labelled("synthetic", data_dir=None, image_size=48, channels=3, limit=300)
    assert small.class_names == ("circle", "square", "triangle")
    assert torch.equal(small.labels, large.labels)
    assert small.labels.dtype == torch.int64 and set(small.labels.tolist()) == {0, 1, 2}
    # a scene of one shape is labelled by that shape (scene parameters as the loader draws them)
    from ganctl_plugins.datasets import _draw_scene_parameters

    scenes = {k: v[:300] for k, v in _draw_scene_parameters(10_000, np.random.default_rng(1234)).items()}
    single = scenes["present"].sum(axis=1) == 1
    assert torch.equal(small.labels[torch.from_numpy(single)], torch.from_numpy(scenes["kind"][single, 0]))


def test_mnist_and_cifar10_give_labels_and_class_names(tmp_path):
    write_mnist(tmp_path / "labelled", labels=True)
    mnist = load_labelled("mnist", data_dir=tmp_path / "labelled", image_size=28, channels=1, limit=30, download=False)
    assert mnist.class_names == tuple("0123456789") and mnist.labels.tolist() == [i % 10 for i in range(30)]
    write_mnist(tmp_path / "bare")  # images without their label file: still loads, unlabelled
    assert load_labelled("mnist", data_dir=tmp_path / "bare", image_size=28, channels=1, download=False).labels is None
    write_cifar10(tmp_path / "cifar")
    cifar = load_labelled("cifar10", data_dir=tmp_path / "cifar", image_size=32, channels=3, download=False)
    assert cifar.class_names[0] == "airplane" and cifar.class_names[-1] == "truck"
    assert len(cifar.labels) == len(cifar.images) == 100


def test_a_folder_with_one_subfolder_per_class_is_labelled_a_flat_one_is_not(tmp_path):
    for name, colour in (("dog", 200), ("cat", 40)):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), colour).save(tmp_path / "classes" / name / f"{i}.png")
    (tmp_path / "classes" / "dog" / "broken.png").write_bytes(b"not a png")  # skipped: labels stay aligned
    loaded = load_labelled(f"folder:{tmp_path / 'classes'}", data_dir=None, image_size=8, channels=1)
    assert loaded.class_names == ("cat", "dog")
    assert loaded.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert loaded.images[:3].float().mean() < 60 < loaded.images[3:].float().mean()
    (tmp_path / "classes" / "loose.png").write_bytes((tmp_path / "classes" / "cat" / "0.png").read_bytes())
    assert load_labelled(f"folder:{tmp_path / 'classes'}", data_dir=None, image_size=8, channels=1).labels is None


def test_labelled_images_refuse_labels_that_do_not_fit():
    images = np.zeros((3, 4, 4, 1), np.uint8)
    with pytest.raises(GanctlError, match="outside 0..1"):
        LabelledImages(images, np.array([0, 1, 2]), ("a", "b"))
    with pytest.raises(GanctlError, match="2 labels for 3 images"):
        LabelledImages(images, np.array([0, 1]), ("a", "b"))


def test_allocation_and_class_parsing():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3] and sum(allocate(1001, [5, 3, 2])) == 1001
    assert labels_for(5, [0, 1]).tolist() == [1, 1, 1, 1, 1]
    names = ("cat", "dog", "bird")
    assert parse_classes(["dog", "0,bird"], names) == [1, 0, 2]
    with pytest.raises(GanctlError, match="its classes are cat, dog, bird"):
        parse_classes(["horse"], names)
    with pytest.raises(GanctlError, match="from 0 to 2"):
        parse_classes(["3"], names)


# --- layers ---------------------------------------------------------------------------------


def test_conditional_batch_norm_and_projection_depend_on_the_class():
    torch.manual_seed(0)
    norm = ConditionalBatchNorm2d(4, num_classes=3)
    with torch.no_grad():
        norm.gain.weight[1] = 2.0
        norm.bias.weight[2] = 5.0
    x = torch.randn(6, 4, 5, 5)
    plain = torch.nn.BatchNorm2d(4, affine=False)(x)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = norm(x, y)
    assert torch.allclose(out[0], plain[0]) and torch.allclose(out[1], 2 * plain[1]) and torch.allclose(out[2], plain[2] + 5)
    net = ConditionalSequential(torch.nn.Identity(), norm)  # y reaches only the module that takes it
    assert torch.allclose(net(x, y), norm(x, y))
    d = ProjectionDiscriminator(torch.nn.Flatten(), torch.nn.Linear(16, 1), 16, num_classes=3)
    images = torch.randn(2, 1, 4, 4)
    same = images[:1].repeat(2, 1, 1, 1)
    logits = d(same, torch.tensor([0, 1]))
    assert logits.shape == (2, 1) and not torch.allclose(logits[0], logits[1])
    assert torch.allclose(logits[0] - logits[1], ((d.embed.weight[0] - d.embed.weight[1]) * same[0].flatten()).sum())


@pytest.mark.parametrize("name", ["cifar-dcgan", "mnist-dcgan", "tf-dcgan", "paper-dcgan", "sngan-cnn", "sngan-resnet"])
def test_every_built_in_architecture_builds_conditional_and_unconditional_keys_are_unchanged(name):
    arch = ARCHITECTURES.get(name).obj
    assert arch.conditional
    assert set(arch.arch_args()) == {"image_size", "channels", "latent_dim"}  # unconditional: the three, as in format 1
    torch.manual_seed(0)
    plain_g, plain_d = arch.build()
    g, d = arch.build(num_classes=4)
    z, y = torch.randn(2, arch.recipe.latent_dim), torch.tensor([0, 3])
    images = g.eval()(z, y)
    assert images.shape == plain_g.eval()(z).shape and d(images, y).shape == (2, 1)
    assert arch.build_generator(num_classes=4).state_dict().keys() == g.state_dict().keys()
    assert plain_d(images).shape == (2, 1)


def test_a_plugin_factory_of_three_integers_still_builds_and_refuses_conditional(fresh_plugins):
    from ganctl import Recipe, register_architecture

    @register_architecture("three-ints", recipe=Recipe(image_size=8, channels=1, latent_dim=4), description="x", image_sizes=(8,))
    def three_ints(image_size, channels, latent_dim):
        return torch.nn.Sequential(torch.nn.Linear(latent_dim, 64), torch.nn.Unflatten(1, (1, 8, 8))), torch.nn.Flatten()

    arch = ARCHITECTURES.get("three-ints").obj
    assert not arch.conditional
    g, _ = arch.build()
    assert g(torch.zeros(1, 4)).shape == (1, 1, 8, 8)
    with pytest.raises(GanctlError, match="cannot be built class-conditional"):
        arch.build(num_classes=3)


# --- generator files ------------------------------------------------------------------------


def _conditional_file(path: Path) -> Path:
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4, num_classes=3)
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args,
                   pixel_range=(0.0, 1.0), class_names=("a", "b", "c"), class_counts=(5, 3, 2))  # fmt: skip
    return path


def test_generator_file_format_2_records_classes_and_format_1_still_loads(tmp_path):
    info = read_info(_conditional_file(tmp_path / "c.safetensors"))
    assert info.num_classes == 3 and info.class_names == ("a", "b", "c") and info.class_counts == (5, 3, 2)
    generator, _ = load_generator(tmp_path / "c.safetensors")
    assert generator(torch.zeros(2, 4), torch.tensor([0, 2])).shape == (2, 1, 28, 28)
    # a format-1 file, as ganctl wrote them before: three integers, no classes
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    state = arch.build_generator(latent_dim=4).state_dict()
    metadata = {"format": "ganctl-generator", "format_version": "1", "architecture": "mnist-dcgan",
                "arch_args": json.dumps({"image_size": 28, "channels": 1, "latent_dim": 4}), "pixel_range": "[0.0, 1.0]"}  # fmt: skip
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "v1.safetensors"), metadata=metadata)
    old, info = load_generator(tmp_path / "v1.safetensors")
    assert info.num_classes == 0 and info.class_names == () and old(torch.zeros(1, 4)).shape == (1, 1, 28, 28)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": "3"}, "newer ganctl"),
        ({"class_names": '["a", "a", "c"]'}, "distinct"),
        ({"class_names": '["a"]'}, "must list the 3 classes"),
        ({"class_counts": '[1, -2, 3]'}, "class_counts"),
        ({"arch_args": '{"image_size": 28, "channels": 1, "latent_dim": 4, "num_classes": -1}'}, "num_classes"),
    ],
)
def test_damaged_class_metadata_is_one_sentence(tmp_path, change, message):
    path = _conditional_file(tmp_path / "c.safetensors")
    metadata, state = read_safetensors(path)
    save_file(state, str(path), metadata={**metadata, **change})
    with pytest.raises(GanctlError, match=message):
        read_info(path)


# --- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["cifar-dcgan", "mnist-dcgan", "tf-dcgan", "paper-dcgan", "sngan-cnn-small"])
def test_every_built_in_architecture_trains_conditional(arch, tmp_path):
    run = tmp_path / "run"
    result = train("--arch", arch, "--conditional", *QUICK, *SIZE.get(arch, []), "--max-steps", "2", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    info = read_info(run / "generator.safetensors")
    assert info.class_names == ("circle", "square", "triangle") and sum(info.class_counts) == 96
    # the grid: one row per class
    grid = Image.open(run / "samples" / "final.png")
    side = info.image_shape[1] + 2
    assert grid.height == 3 * side + 2


@pytest.mark.slow
def test_sngan_resnet_trains_conditional(tmp_path):
    result = train("--arch", "sngan-resnet", "--conditional", *QUICK, "--max-steps", "1", "--d-steps", "1", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr


def test_conditional_resume_with_ema_and_diffaugment_is_bitwise_identical(tmp_path):
    common = ["--arch", "sngan-cnn-small", "--conditional", "--dataset", "synthetic", "--limit", "64", "--batch-size", "8",
              "--quiet", "--log-every", "2", "--checkpoint-every", "2",
              "--seed", "5", "--ema-kimg", "0.1", "--augment", "color,translation,cutout", "--reg", "r1", "--reg-every", "2"]  # fmt: skip
    assert train(*common, "--max-steps", "6", "--out", str(tmp_path / "straight")).exit_code == 0
    # stopped at step 3, between checkpoints: the resumed run repeats step 3 from the checkpoint of step 2
    assert train(*common, "--max-steps", "3", "--out", str(tmp_path / "broken")).exit_code == 0
    result = train("--resume", "--out", str(tmp_path / "broken"), "--max-steps", "6", "--quiet")
    assert result.exit_code == 0, result.stderr
    for name in ("generator.safetensors", "generator-raw.safetensors"):
        a, b = tensors(tmp_path / "straight" / name), tensors(tmp_path / "broken" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    straight = tensors(tmp_path / "straight" / "generator.safetensors")
    assert any(k.endswith("gain.weight") for k in straight)  # it was conditional batch norm that was compared


def test_conditional_without_labels_is_one_line_before_the_run_folder(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "flat.png")
    run = tmp_path / "run"
    result = train("--arch", "sngan-cnn-small", "--conditional", "--dataset", f"folder:{tmp_path}", "--quiet", "--out", str(run))
    assert result.exit_code != 0
    assert "--conditional needs labelled images" in result.stderr and "subfolder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not run.exists()


def test_conditional_with_an_architecture_that_cannot_is_one_line(tmp_path, fresh_plugins):
    from ganctl import Recipe, register_architecture

    @register_architecture("plain-only", recipe=Recipe(image_size=8, channels=1, latent_dim=4), description="x", image_sizes=(8,))
    def plain_only(image_size, channels, latent_dim):
        raise AssertionError("never built")

    run = tmp_path / "run"
    result = train("--arch", "plain-only", "--conditional", "--quiet", "--out", str(run))
    assert result.exit_code != 0 and "cannot be built class-conditional" in result.stderr
    assert not run.exists()


def test_conditional_cannot_change_on_resume(tmp_path):
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "1", "--out", str(run)).exit_code == 0
    result = train("--resume", "--out", str(run), "--conditional", "--quiet")
    assert result.exit_code != 0 and "--conditional cannot change" in result.stderr


def test_list_says_which_datasets_carry_labels_and_which_architectures_build_conditional():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    datasets = {row["name"]: row["classes"] for row in data["datasets"]}
    assert datasets["synthetic"] == ["circle", "square", "triangle"] and len(datasets["cifar10"]) == 10
    assert all(row["conditional"] for row in data["architectures"] if row["plugin"] == "ganctl_plugins.archs.sngan")
    table = runner.invoke(app, ["list", "*mnist*"], env={"COLUMNS": "200"})
    assert "10 classes" in table.stdout and "--conditional" in table.stdout


def test_an_unconditional_run_on_labelled_data_writes_no_classes(tmp_path):
    run = tmp_path / "run"
    assert train("--arch", "mnist-dcgan", *QUICK, "--max-steps", "1", "--out", str(run)).exit_code == 0
    info = read_info(run / "generator.safetensors")
    assert set(info.arch_args) == {"image_size", "channels", "latent_dim"} and info.class_names == ()
    assert "class_names" not in read_safetensors(run / "generator.safetensors")[0]
