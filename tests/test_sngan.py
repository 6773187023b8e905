"""The SNGAN architectures (Miyato et al. 2018): layer counts, shapes, their recipes, training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from ganctl.cli import app
from tests.helpers import train
from ganctl.registry import ARCHITECTURES
from ganctl.training.config import schedule
from ganctl.networks.summary import count_params
from ganctl.networks.weights import load_generator
from ganctl_plugins.archs.blocks import DiscBlock, GenBlock
from tests.runfolders import assert_resume_is_bitwise

runner = CliRunner()
SNGAN = ("sngan-cnn", "sngan-resnet", "sngan-cnn-small", "sngan-upconv-small")

# (trainable, non-trainable) of G and D at 32 px, 3 channels, latent 128; spectral norm is the
# trainer's business, so these are the plain modules.
#
# sngan-resnet: the same layers as the authors' Chainer ResNet and mimicry's
#   SNGANGenerator32/SNGANDiscriminator32, every layer with its bias: 4,276,739 and 1,053,825
#   are the counts of their layer lists (the "about 4.3 M" generator).
# sngan-cnn: G has batch norm per channel after the dense layer; the authors' Chainer code
#   (chainer-gan-lib's DCGANGenerator) normalises each of the 8,192 dense features instead,
#   15,360 more scale/shift parameters: 3,828,739. D follows the paper's Table 3, which widens
#   on the 3x3 convs (64, 64, 128, 128, 256, 256, 512); chainer-gan-lib's CNN discriminator
#   widens on the stride-2 convs instead (64, 128, 128, 256, 256, 512, 512): 5,860,865.
COUNTS = {
    "sngan-cnn": ((3_813_379, 1_920), (2_935_873, 0)),
    "sngan-resnet": ((4_276_739, 3_584), (1_053_825, 0)),
    "sngan-cnn-small": ((437_251, 480), (185_617, 0)),  # sngan-cnn at a quarter of its widths
    # the same D; G's 4x4 transposed convs become up-sampling and 3x3 convs (fewer weights)
    "sngan-upconv-small": ((361_987, 480), (185_617, 0)),
}


@pytest.mark.parametrize("name", SNGAN)
def test_parameter_counts_are_pinned(name):
    generator, discriminator = ARCHITECTURES.get(name).obj.build(image_size=32, channels=3, latent_dim=128)
    g_counts, d_counts = COUNTS[name]
    assert count_params(generator) == g_counts
    assert count_params(discriminator) == d_counts


def every_build():
    for name in SNGAN:
        arch = ARCHITECTURES.get(name).obj
        for size in arch.image_sizes:
            for channels in arch.channels:
                yield pytest.param(name, size, channels, id=f"{name}-{size}px-{channels}ch")


@pytest.mark.parametrize("name,size,channels", list(every_build()))
def test_shapes_at_every_registered_size(name, size, channels):
    arch = ARCHITECTURES.get(name).obj
    torch.manual_seed(0)
    generator, discriminator = arch.build(image_size=size, channels=channels)
    images = generator(torch.randn(4, 128))
    assert images.shape == (4, channels, size, size)
    assert images.abs().max() <= 1.0  # tanh: the recipe's [-1, 1]
    assert discriminator(images).shape == (4, 1)  # one logit per image


def test_registered_sizes():
    assert ARCHITECTURES.get("sngan-cnn").obj.image_sizes == (28, 32, 48)
    assert ARCHITECTURES.get("sngan-resnet").obj.image_sizes == (32, 48)
    with pytest.raises(ValueError, match="cannot be built at 64 px"):
        ARCHITECTURES.get("sngan-resnet").obj.factory(64, 3, 128)


def test_cnn_generator_follows_the_paper_table():
    generator, discriminator = ARCHITECTURES.get("sngan-cnn").obj.build(image_size=32)
    deconvs = [m for m in generator if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in deconvs] == [
        (512, 256, (4, 4), (2, 2)), (256, 128, (4, 4), (2, 2)), (128, 64, (4, 4), (2, 2)),
    ]  # fmt: skip
    convs = [m for m in discriminator if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in convs] == [
        (64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2), (512, 3, 1),
    ]  # fmt: skip
    slopes = {m.negative_slope for m in discriminator if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.1}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())


def test_resnet_blocks_change_size_as_named():
    x = torch.randn(2, 16, 8, 8)
    assert GenBlock(16, 32)(x).shape == (2, 32, 16, 16)
    assert DiscBlock(16, 32, downsample=True, optimized=True)(x).shape == (2, 32, 4, 4)
    assert DiscBlock(16, 16, downsample=True)(x).shape == (2, 16, 4, 4)
    plain = DiscBlock(16, 16, downsample=False)
    assert isinstance(plain.shortcut_conv, torch.nn.Identity)  # same shape: the identity shortcut
    assert plain(x).shape == (2, 16, 8, 8)


def test_the_demo_recipe_needs_no_download_and_keeps_to_its_budget():
    r = ARCHITECTURES.get("sngan-upconv-small").obj.recipe
    assert r.dataset == "synthetic" and r.ema_kimg is not None and r.spectral_norm == "d"
    assert r.d_input_scale == 8.0  # what helped most (docs/research/demo-recipe.md)
    # its length in images: the iterations docs/recipes.md timed on the 10,000 shapes, and as
    # many on any other dataset (a grid every 10,000 images: an epoch of the shapes)
    assert schedule(r, 10_000).total_steps == schedule(r, 300).total_steps == 1_872
    assert schedule(r, 10_000).steps_per_tick == 10_000 // r.batch_size == 156


def test_the_readme_demo_is_the_demo_architecture():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "python -m pip install -e . && ganctl train --arch sngan-upconv-small\n" in readme


def test_the_upconv_generator_has_no_transposed_convolution():
    generator, _ = ARCHITECTURES.get("sngan-upconv-small").obj.build(image_size=28, channels=1)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in generator.modules())
    assert generator(torch.randn(2, 128)).shape == (2, 1, 28, 28)


def test_the_upconv_networks_repeat_their_border_pixels():
    # zero padding marks the border at every layer: the demo's G drew coloured rims there
    generator, discriminator = ARCHITECTURES.get("sngan-upconv-small").obj.build(image_size=32, channels=3)
    for network in (generator, discriminator):
        convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(c.padding_mode == "replicate" for c in convs)
    # a flat image stays flat through D's first conv, edges included (zero padding would darken them)
    first = next(m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    out = first(torch.full((1, 3, 32, 32), -0.8))
    assert torch.allclose(out, out[:, :, 16:17, 16:17].expand_as(out), atol=1e-6)


def test_resnet_discriminator_block_does_not_modify_its_input():
    # the first ReLU must not be in place: x also feeds the shortcut
    x = torch.randn(2, 8, 4, 4)
    before = x.clone()
    DiscBlock(8, 8, downsample=False)(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", ["sngan-cnn", "sngan-resnet"])
def test_recipes_are_the_published_ones(name):
    r = ARCHITECTURES.get(name).obj.recipe
    assert (r.dataset, r.image_size, r.channels, r.pixel_range, r.latent_dim) == ("cifar10", 32, 3, (-1.0, 1.0), 128)
    assert (r.loss, r.spectral_norm, r.lr_decay, r.d_update) == ("hinge", "d", "linear", "joint")
    assert r.batch_size == 128  # joint: 64 real + 64 fake per D step, the published batch of 64
    assert r.g_lr == r.d_lr == 2e-4
    iterations_per_epoch = 50_000 // r.batch_size  # one G step each
    if name == "sngan-cnn":
        assert (r.beta1, r.beta2, r.d_steps, r.init) == (0.5, 0.999, 1, "dcgan")
        assert abs(r.epochs * iterations_per_epoch - 100_000) < iterations_per_epoch  # 100k G steps
    else:
        assert (r.beta1, r.beta2, r.d_steps, r.init) == (0.0, 0.9, 5, "keras")
        assert abs(r.epochs * iterations_per_epoch - 50_000) < iterations_per_epoch  # 50k G steps


@pytest.mark.parametrize("name", SNGAN)
def test_trains_with_its_own_recipe(name, tmp_path):
    run = tmp_path / "run"
    result = train("--arch", name, "--dataset", "synthetic", "--limit", "64", "--batch-size", "16",
                   "--max-steps", "3", "--log-every", "1", "--quiet", "--out", str(run))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"]["loss"] == "hinge" and config["recipe"]["spectral_norm"] == "d"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    stats = [r for r in records if "event" not in r]
    assert [r["step"] for r in stats] == [1, 2, 3]
    for record in stats:
        for key in ("d_loss_real", "d_loss_fake", "g_loss"):
            assert math.isfinite(record[key])
        # hinge: D's terms are means of max(0, 1 -/+ logit), never negative
        assert record["d_loss_real"] >= 0 and record["d_loss_fake"] >= 0
    generator, info = load_generator(run / "generator.safetensors")
    assert info.architecture == name and info.latent_dim == 128
    assert generator(torch.randn(2, 128)).shape == (2, 3, 32, 32)


def test_cnn_resume_is_bitwise_identical_with_ema_and_augmentation(tmp_path):
    common = ["--arch", "sngan-cnn", "--dataset", "synthetic", "--limit", "64", "--batch-size", "16",
              "--quiet", "--log-every", "1", "--checkpoint-every", "3", "--seed", "3",
              "--ema-kimg", "0.1", "--augment", "color,translation,cutout"]  # fmt: skip
    assert_resume_is_bitwise(tmp_path, common, stop=3, end=6, files=("generator.safetensors", "generator-raw.safetensors"))


def test_the_readme_first_command_trains(tmp_path):
    """The README's first training command, cut to a few iterations, runs in the normal suite."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "ganctl train --arch" in line and "pip install" in line)
    words = shlex.split(re.sub(r"^.*?&& ganctl ", "", command))
    assert words[:2] == ["train", "--arch"]
    result = runner.invoke(app, [*words, "--limit", "128", "--max-steps", "3", "--quiet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "generator.safetensors").is_file()
