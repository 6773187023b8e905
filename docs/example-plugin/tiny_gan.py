"""A minimal third-party ganctl plugin: a tiny fully-connected GAN and its recipe.

Install it as a package (see pyproject.toml beside this file) or load the file directly:

    ganctl --plugin tiny_gan.py inspect-arch tiny-mlp-gan
"""

from torch import nn

from ganctl import Recipe, register_architecture

RECIPE = Recipe(
    dataset="synthetic",  # ganctl's built-in procedural shapes: no download needed
    image_size=16,
    channels=1,
    pixel_range=(-1.0, 1.0),
    latent_dim=32,
    loss="bce",
    batch_size=64,
    epochs=5,
    d_update="joint",
    sample_every=1,
    sample_grid=16,
)


@register_architecture(
    "tiny-mlp-gan",
    recipe=RECIPE,
    description="Example plugin: a two-layer MLP generator and discriminator",
    image_sizes=(8, 16, 32),
)
def tiny_mlp_gan(image_size: int, channels: int, latent_dim: int):
    pixels = channels * image_size * image_size
    generator = nn.Sequential(
        nn.Linear(latent_dim, 256),
        nn.ReLU(),
        nn.Linear(256, pixels),
        nn.Tanh(),  # matches pixel_range (-1, 1)
        nn.Unflatten(1, (channels, image_size, image_size)),
    )
    discriminator = nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 1),  # a logit: the loss applies the sigmoid
    )
    return generator, discriminator
