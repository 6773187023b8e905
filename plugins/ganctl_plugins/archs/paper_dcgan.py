"""The DCGAN of Radford et al. (2015), in the canonical PyTorch layout.

G projects z to a 4x4 (or 7x7) map with a transposed conv, then doubles the size with
k4/s2 transposed convs, batch norm and ReLU, ending in tanh with no batch norm. D mirrors
it with k4/s2 convs and LeakyReLU 0.2, no batch norm on its first layer, and a last conv
to one logit. Where batch norm follows, convs have no bias.

Sizes are base * 2**k with base 4 or 7 and k >= 2: 28, 32, 56, 64, 112, 128, ...

Class-conditional (``num_classes``): G's batch norms become conditional batch norm and D a
projection discriminator on its last feature map, sum-pooled (``ganctl.layers``).
"""

from __future__ import annotations

from torch import nn

from ganctl import Recipe, register_architecture
from ganctl.layers import SumPool, batch_norm_2d, projection_or_plain, sequential

BASE_FILTERS = 64  # ngf and ndf of the paper's 64x64 model

PAPER_RECIPE = Recipe(
    dataset="cifar10",  # upscaled to 64x64, as PyTorch's DCGAN example does
    image_size=64,
    channels=3,
    pixel_range=(-1.0, 1.0),
    latent_dim=100,
    init="dcgan",  # weights N(0, 0.02), batch-norm scale N(1, 0.02)
    loss="bce",
    batch_size=128,
    epochs=25,
    g_lr=2e-4,
    d_lr=2e-4,
    beta1=0.5,
    d_update="simultaneous",  # real and fake through D in separate passes: BN never mixes them
    sampling="shuffle",
    sample_every=1,
    sample_grid=64,
)

SIZES = (28, 32, 56, 64, 112, 128)


def doublings(image_size: int) -> tuple[int, int]:
    """``(base, k)`` with ``image_size == base * 2**k``, base 4 or 7, k >= 2."""
    for base in (4, 7):
        k, size = 0, base
        while size < image_size:
            size, k = size * 2, k + 1
        if size == image_size and k >= 2:
            return base, k
    raise ValueError(f"paper-dcgan cannot be built at {image_size} px")


def paper_generator(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> nn.Module:
    base, k = doublings(image_size)
    widest = BASE_FILTERS * 2 ** (k - 1)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (latent_dim, 1, 1)),
        nn.ConvTranspose2d(latent_dim, widest, base, stride=1, padding=0, bias=False),
        batch_norm_2d(widest, num_classes),
        nn.ReLU(True),
    ]
    width = widest
    for _ in range(k - 1):
        layers += [
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
            batch_norm_2d(width // 2, num_classes),
            nn.ReLU(True),
        ]
        width //= 2
    layers += [nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1, bias=False), nn.Tanh()]
    return sequential(*layers, num_classes=num_classes)


def paper_discriminator(image_size: int, channels: int, num_classes: int = 0) -> nn.Module:
    base, k = doublings(image_size)
    layers: list[nn.Module] = [
        nn.Conv2d(channels, BASE_FILTERS, 4, stride=2, padding=1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
    ]
    width = BASE_FILTERS
    for _ in range(k - 1):
        layers += [
            nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width * 2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width *= 2
    head = [nn.Conv2d(width, 1, base, stride=1, padding=0, bias=False), nn.Flatten()]
    return projection_or_plain(layers, head, feature_dim=width, num_classes=num_classes, pool=SumPool())


@register_architecture(
    "paper-dcgan",
    recipe=PAPER_RECIPE,
    description="Radford et al. DCGAN: all-convolutional, batch norm, ReLU/LeakyReLU; 28 to 128 px",
    image_sizes=SIZES,
    size_rule="4·2^k or 7·2^k px with k ≥ 2 (28, 32, 56, 64, 112, 128)",
    generator_factory=paper_generator,
)
def paper_dcgan(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return paper_generator(image_size, channels, latent_dim, num_classes), paper_discriminator(image_size, channels, num_classes)
