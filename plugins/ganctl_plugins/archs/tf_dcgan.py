"""The TensorFlow tutorial's batch-norm DCGAN, MNIST at 28x28.

Keras defaults that differ from PyTorch's are spelt out: LeakyReLU slope 0.3, batch-norm
momentum 0.99 (PyTorch's ``momentum=0.01``) and epsilon 1e-3, Adam beta1 0.9, epsilon 1e-7.
Keras ``padding='same'`` for a k5/s2 transposed conv is padding 2 with output_padding 1.
Conditional as the Keras seeds (``keras_dcgan``): label embedding beside z, label channel for D.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ganctl import Recipe, register_architecture
from ganctl.layers import label_concat_generator, label_concat_pair

TF_RECIPE = Recipe(
    dataset="mnist",
    image_size=28,
    channels=1,
    pixel_range=(-1.0, 1.0),
    latent_dim=100,
    init="keras",
    loss="bce",
    batch_size=256,  # 256 real and 256 generated images per step
    epochs=100,
    g_lr=1e-4,
    d_lr=1e-4,
    beta1=0.9,  # tf.keras.optimizers.Adam(1e-4): Keras' default betas
    adam_eps=1e-7,
    d_update="simultaneous",
    sampling="shuffle",
    sample_every=1,  # the tutorial saves an image of its fixed 16 latents every epoch
    sample_grid=16,
)


def _bn(features: int, dims: int) -> nn.Module:
    bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return bn(features, eps=1e-3, momentum=0.01)  # Keras BatchNormalization defaults


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.3, inplace=True)  # Keras' default slope


def tf_generator(image_size: int, channels: int, latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 7 * 7 * 256, bias=False),
        _bn(7 * 7 * 256, 1),
        _lrelu(),
        nn.Unflatten(1, (256, 7, 7)),
        nn.ConvTranspose2d(256, 128, 5, stride=1, padding=2, bias=False),  # 7x7
        _bn(128, 2),
        _lrelu(),
        nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1, bias=False),  # 14x14
        _bn(64, 2),
        _lrelu(),
        nn.ConvTranspose2d(64, channels, 5, stride=2, padding=2, output_padding=1, bias=False),  # 28x28
        nn.Tanh(),
    )


def tf_discriminator(image_size: int, channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 64, 5, stride=2, padding=2),  # 14x14
        _lrelu(),
        nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, stride=2, padding=2),  # 7x7
        _lrelu(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1),
    )


@register_architecture(
    "tf-dcgan",
    recipe=TF_RECIPE,
    description="TensorFlow DCGAN tutorial: dense to 7x7x256 with batch norm, k5 transposed convs, tanh",
    generator_factory=partial(label_concat_generator, tf_generator),
)
def tf_dcgan(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return label_concat_pair(tf_generator, tf_discriminator, image_size, channels, latent_dim, num_classes)
