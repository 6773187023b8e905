"""The two Keras-tutorial DCGANs: the CIFAR-10 one and the MNIST one.

Layer for layer as the tutorials build them. Keras' ``padding='same'`` becomes explicit
PyTorch padding: k3/s2 convs use padding 1 and k4/s2 transposed convs padding 1, which
give the same output sizes. The discriminators end in a logit; the sigmoid the tutorials
put there lives in the loss, where BCE is computed stably.

Class-conditional (``--conditional``) as the Keras conditional-GAN tutorials build them: the
label embedded in 50 numbers and concatenated to z for G, and embedded, mapped to a full-size
map and stacked as an extra image channel for D (``ganctl.layers.label_concat_pair``).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ganctl import Recipe, register_architecture
from ganctl.layers import label_concat_generator, label_concat_pair

CIFAR_RECIPE = Recipe(
    dataset="cifar10",
    image_size=32,
    channels=3,
    pixel_range=(-1.0, 1.0),
    latent_dim=100,
    init="keras",
    loss="bce",
    batch_size=128,  # 64 real + 64 fake for D, 128 latents for G
    epochs=200,
    g_lr=2e-4,
    d_lr=2e-4,
    beta1=0.5,
    adam_eps=1e-7,
    d_update="separate",
    sampling="random",
    sample_every=10,
    sample_grid=49,
)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)  # in place: less memory traffic


def cifar_generator(image_size: int, channels: int, latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 256 * 4 * 4),
        _lrelu(),
        nn.Unflatten(1, (256, 4, 4)),
        nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1),  # 8x8
        _lrelu(),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),  # 16x16
        _lrelu(),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),  # 32x32
        _lrelu(),
        nn.Conv2d(128, channels, 3, padding=1),
        nn.Tanh(),
    )


def cifar_discriminator(image_size: int, channels: int) -> nn.Module:
    # The original Keras CIFAR-10 tutorial gives the first conv stride 1; a later copy's
    # listing says 2 but its own prose and shapes say 1.
    return nn.Sequential(
        nn.Conv2d(channels, 64, 3, padding=1),  # 32x32
        _lrelu(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1),  # 16x16
        _lrelu(),
        nn.Conv2d(128, 128, 3, stride=2, padding=1),  # 8x8
        _lrelu(),
        nn.Conv2d(128, 256, 3, stride=2, padding=1),  # 4x4
        _lrelu(),
        nn.Flatten(),
        nn.Dropout(0.4),
        nn.Linear(256 * 4 * 4, 1),
    )


@register_architecture(
    "cifar-dcgan",
    recipe=CIFAR_RECIPE,
    description="Keras CIFAR-10 DCGAN tutorial: dense to 4x4x256, three k4 transposed convs, tanh",
    generator_factory=partial(label_concat_generator, cifar_generator),
)
def cifar_dcgan(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return label_concat_pair(cifar_generator, cifar_discriminator, image_size, channels, latent_dim, num_classes)


MNIST_RECIPE = Recipe(
    dataset="mnist",
    image_size=28,
    channels=1,
    pixel_range=(0.0, 1.0),  # the tutorial scales by 1/255 and ends G in a sigmoid
    latent_dim=100,
    init="keras",
    loss="bce",
    batch_size=256,  # 128 real + 128 fake stacked for D, 256 latents for G
    epochs=50,
    g_lr=2e-4,
    d_lr=2e-4,
    beta1=0.5,
    adam_eps=1e-7,
    d_update="joint",
    sampling="random",
    sample_every=10,
    sample_grid=25,  # the tutorial plots 5x5
)


def mnist_generator(image_size: int, channels: int, latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 128 * 7 * 7),
        _lrelu(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),  # 14x14
        _lrelu(),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),  # 28x28
        _lrelu(),
        nn.Conv2d(128, channels, 7, padding=3),
        nn.Sigmoid(),
    )


def mnist_discriminator(image_size: int, channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 64, 3, stride=2, padding=1),  # 14x14
        _lrelu(),
        nn.Dropout(0.2),
        nn.Conv2d(64, 64, 3, stride=2, padding=1),  # 7x7
        _lrelu(),
        nn.Dropout(0.2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1),
    )


@register_architecture(
    "mnist-dcgan",
    recipe=MNIST_RECIPE,
    description="Keras MNIST DCGAN tutorial: dense to 7x7x128, two k4 transposed convs, sigmoid output, [0,1] data",
    generator_factory=partial(label_concat_generator, mnist_generator),
)
def mnist_dcgan(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return label_concat_pair(mnist_generator, mnist_discriminator, image_size, channels, latent_dim, num_classes)
