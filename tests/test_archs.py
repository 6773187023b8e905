"""Every registered architecture, parametrised over the registry itself."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganctl.registry import ARCHITECTURES
from ganctl.networks.summary import count_params

ARCHS = ARCHITECTURES.names()
# The paper-size StyleGAN2s take seconds a build on one CPU thread; stylegan2-small runs the same
# code in the default run (test_stylegan2.py counts the paper sizes' parameters).
PAPER_SIZE = {"stylegan2", "stylegan2-cifar"}


def builds():
    for name in ARCHS:
        arch = ARCHITECTURES.get(name).obj
        for size in arch.image_sizes:
            for channels in arch.channels:
                slow = (pytest.mark.slow,) if size > 64 or name in PAPER_SIZE else ()
                yield pytest.param(name, size, channels, id=f"{name}-{size}px-{channels}ch", marks=slow)


def test_the_four_seeds_are_registered():
    assert {"cifar-dcgan", "mnist-dcgan", "tf-dcgan", "paper-dcgan"} <= set(ARCHS)


@pytest.mark.parametrize("name,size,channels", list(builds()))
def test_builds_with_right_shapes_and_range(name, size, channels):
    arch = ARCHITECTURES.get(name).obj
    torch.manual_seed(0)
    generator, discriminator = arch.build(image_size=size, channels=channels)
    z = torch.randn(3, arch.recipe.latent_dim)
    images = generator(z)
    assert images.shape == (3, channels, size, size)
    low, high = arch.recipe.pixel_range
    if not getattr(generator, "unbounded_output", False):  # StyleGAN2 has no final tanh, as its reference
        assert images.min() >= low and images.max() <= high
    assert discriminator(images).shape == (3, 1)  # one logit per image


# (trainable, non-trainable) as the seeds' Keras summaries count them
SEED_COUNTS = {
    ("cifar-dcgan", None): ((1_466_115, 0), (522_497, 0)),
    ("mnist-dcgan", None): ((1_164_289, 0), (40_705, 0)),
    ("tf-dcgan", None): ((2_305_472, 25_472), (212_865, 0)),
    ("paper-dcgan", 64): ((3_576_704, 1_920), (2_765_568, 1_792)),
}


@pytest.mark.parametrize("name,size", list(SEED_COUNTS))
def test_parameter_counts_match_the_seeds(name, size):
    generator, discriminator = ARCHITECTURES.get(name).obj.build(image_size=size)
    g_counts, d_counts = SEED_COUNTS[(name, size)]
    assert count_params(generator) == g_counts
    assert count_params(discriminator) == d_counts


def test_tf_dcgan_total_is_the_tutorials():
    generator, _ = ARCHITECTURES.get("tf-dcgan").obj.build()
    assert sum(count_params(generator)) == 2_330_944


def test_keras_initialisation_zeroes_biases_and_uses_glorot():
    generator, _ = ARCHITECTURES.get("cifar-dcgan").obj.build()
    dense = generator[0]
    assert torch.count_nonzero(dense.bias) == 0
    limit = (6 / (100 + 4096)) ** 0.5
    assert dense.weight.abs().max() <= limit
    assert dense.weight.std() > limit / 3  # uniform over [-limit, limit]: std = limit/sqrt(3)


def test_dcgan_initialisation_is_normal_002():
    generator, discriminator = ARCHITECTURES.get("paper-dcgan").obj.build()
    conv = generator[1]
    assert abs(conv.weight.std().item() - 0.02) < 0.002
    bn = discriminator[3]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.count_nonzero(bn.bias) == 0


@pytest.mark.parametrize("name", [pytest.param(n, marks=(pytest.mark.slow,) if n in PAPER_SIZE else ()) for n in ARCHS])
def test_the_generator_alone_is_the_generator_of_the_pair(name):
    arch = ARCHITECTURES.get(name).obj
    generator, _ = arch.build()
    assert arch.generator_factory is not None, f"{name} builds a discriminator to load a generator"
    alone = dataclasses.replace(arch, factory=None).build_generator()  # the pair's factory is never called
    assert {k: v.shape for k, v in alone.state_dict().items()} == {k: v.shape for k, v in generator.state_dict().items()}


def test_a_plugin_without_generator_factory_still_builds_its_generator(fresh_plugins):
    from torch import nn

    from ganctl import Recipe, register_architecture

    built = []

    @register_architecture("pair-only", recipe=Recipe(image_size=8, channels=1, latent_dim=4), description="G and D together")
    def pair(image_size, channels, latent_dim):
        built.append("both")
        return nn.Sequential(nn.Linear(latent_dim, 64), nn.Unflatten(1, (1, 8, 8))), nn.Sequential(nn.Flatten(), nn.Linear(64, 1))

    generator = ARCHITECTURES.get("pair-only").obj.build_generator()
    assert generator(torch.zeros(2, 4)).shape == (2, 1, 8, 8) and built == ["both"]
