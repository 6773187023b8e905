"""The two SNGAN architectures of Miyato et al. (2018), "Spectral Normalization for GANs".

``sngan-cnn``: the paper's "standard CNN" (Table 3, appendix B.4).

    G: z (128) -> dense to M_g x M_g x 512 -> BN, ReLU
       4x4 stride-2 deconv 256, BN, ReLU
       4x4 stride-2 deconv 128, BN, ReLU
       4x4 stride-2 deconv  64, BN, ReLU
       3x3 stride-1 conv to the image channels, tanh
    D: 3x3 s1 conv 64, 4x4 s2 conv 64, 3x3 s1 conv 128, 4x4 s2 conv 128,
       3x3 s1 conv 256, 4x4 s2 conv 256, 3x3 s1 conv 512   (each LeakyReLU 0.1)
       dense M_d x M_d x 512 -> 1 logit

  M_g = M_d = 4 at 32 px and 6 at 48 px (the paper's CIFAR-10 and STL-10 sizes). The table
  lists no normalisation after the dense layer; the authors' Chainer code puts batch norm and
  ReLU there, and so does this module (per channel, after the reshape; the Chainer code
  normalises each of the M_g*M_g*512 features, 15,360 more parameters at 32 px).
  28 px (MNIST) is this module's own variant: M_g = 7, and the first of the three up-sampling
  layers becomes a 3x3 stride-1 deconv (7 -> 7) so the other two double 7 -> 14 -> 28; D is
  unchanged and its last map is 3x3 (M_d = 3).

``sngan-resnet``: the 32 px ResNet of the paper's appendix (the authors' Chainer
``ResNetGenerator``/``SNResNetDiscriminator``; mimicry's ``SNGANGenerator32``).

    G: z (128) -> dense to 4 x 4 x 256
       GenBlock 256 -> 256 (up to 8), GenBlock (16), GenBlock (32)
       BN, ReLU, 3x3 conv to the image channels, tanh
    D: DiscBlock optimised 128 (down to 16), DiscBlock 128 down (8),
       DiscBlock 128, DiscBlock 128, ReLU, global sum pooling, dense 128 -> 1

  At 48 px the same network starts from a 6 x 6 map (D needs no change: it sums over
  whatever map it ends with). That is not the paper's STL-10 ResNet, which is wider.

Spectral normalisation is not built in: the recipes set ``spectral_norm="d"`` and the
trainer applies it to every conv and dense layer of D. All layers keep their biases, as in
the references, so the parameter counts can be compared with theirs.

Class-conditional (``num_classes``, ``--conditional``): Miyato & Koyama (2018), as their
CIFAR-10 ResNet and mimicry's cSNGAN build it: G's batch norms become conditional batch norm
(the ResNet's blocks; its last batch norm stays plain, as in their code), and D a projection
discriminator on the features its dense layer reads (``ganctl.layers``).
"""

from __future__ import annotations

from torch import nn

from ganctl import Recipe, register_architecture
from ganctl.layers import SumPool, batch_norm_2d, projection_or_plain, sequential
from ganctl_plugins.archs.blocks import DiscBlock, GenBlock

# --- sngan-cnn -------------------------------------------------------------------------------

CNN_RECIPE = Recipe(
    dataset="cifar10",
    image_size=32,
    channels=3,
    pixel_range=(-1.0, 1.0),
    latent_dim=128,  # z in R^128, N(0, I) (Table 3)
    init="dcgan",  # the authors' Chainer code draws every weight from N(0, 0.02)
    loss="hinge",  # the paper's best CNN results use the hinge loss
    # The published loop: each D step sees 64 fresh real and 64 fresh fake images, then G steps
    # on fresh latents. "joint" does exactly that with batch_size 128 = 64 real + 64 fake; its
    # only differences are that D's loss is the mean of the two halves (the published loss is
    # their sum: a constant factor, which Adam divides out) and that G steps on 128 latents
    # (the authors' ResNet config draws 128 for G as well; the CNN's G batch is not stated).
    # "simultaneous" would take G's step from D's forward pass before D's update.
    batch_size=128,
    d_update="joint",
    sampling="shuffle",  # Chainer's iterator walks shuffled epochs
    # 100k G updates in the paper; an epoch is floor(50000 / 128) = 390 iterations, one G step
    # each: 256 epochs = 99,840 G steps.
    epochs=256,
    g_lr=2e-4,  # setting C of Table 1 (alpha 2e-4, beta1 .5, beta2 .999, n_dis 1): the
    d_lr=2e-4,  # paper's best standard-CNN setting with spectral norm
    beta1=0.5,
    beta2=0.999,
    d_steps=1,
    spectral_norm="d",
    # Linear decay to 0, as the authors' ResNet config does; whether the CNN runs decayed is
    # not stated in the paper.
    lr_decay="linear",
    sample_every=8,  # 32 grids over the run
    sample_grid=64,
)

CNN_SIZES = (28, 32, 48)


def cnn_bottom_width(image_size: int) -> int:
    """M_g: the side of the map the dense layer makes (also D's last map, M_d, but at 28 px)."""
    widths = {28: 7, 32: 4, 48: 6}
    if image_size not in widths:
        raise ValueError(f"sngan-cnn cannot be built at {image_size} px")
    return widths[image_size]


def cnn_generator(
    image_size: int,
    channels: int,
    latent_dim: int,
    width: int = 512,
    num_classes: int = 0,
    *,
    upsample: str = "transposed",
    padding_mode: str = "zeros",
) -> nn.Module:
    """The standard CNN's G; ``width`` is the widest map's channels (512 in the paper), halved per layer.

    ``upsample="transposed"``: the paper's 4x4 stride-2 transposed convolutions; ``"nearest"``:
    2x nearest up-sampling and a 3x3 convolution instead (no checkerboard; sngan-upconv-small).
    ``padding_mode`` of the 3x3 convolutions (torch's: "zeros", "replicate", ...).
    """
    bottom = cnn_bottom_width(image_size)
    w, k = width, num_classes

    def up(c_in: int, c_out: int, scale: bool = True) -> list[nn.Module]:
        # at 28 px the first up-sampling layer keeps 7x7 (3x3, stride 1); otherwise it doubles
        if not scale and upsample == "transposed":
            return [nn.ConvTranspose2d(c_in, c_out, 3, stride=1, padding=1)]
        if not scale:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding_mode)]
        if upsample == "transposed":
            return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding_mode)]

    first_up = up(w, w // 2, scale=image_size != 28)  # made before the dense layer: a seed's draws as they always were
    return sequential(
        nn.Linear(latent_dim, bottom * bottom * w),
        nn.Unflatten(1, (w, bottom, bottom)),
        batch_norm_2d(w, k), nn.ReLU(),
        *first_up, batch_norm_2d(w // 2, k), nn.ReLU(),
        *up(w // 2, w // 4), batch_norm_2d(w // 4, k), nn.ReLU(),
        *up(w // 4, w // 8), batch_norm_2d(w // 8, k), nn.ReLU(),
        nn.Conv2d(w // 8, channels, 3, stride=1, padding=1, padding_mode=padding_mode),
        nn.Tanh(),
        num_classes=num_classes,
    )  # fmt: skip


def cnn_discriminator(
    image_size: int, channels: int, width: int = 512, num_classes: int = 0, *, padding_mode: str = "zeros"
) -> nn.Module:
    """The standard CNN's D; ``width`` is its last conv's channels (512 in the paper); ``padding_mode`` of every conv."""
    # the three 4x4 stride-2 convs take 32 -> 4, 48 -> 6, 28 -> 3
    last = image_size
    for _ in range(3):
        last = (last + 2 - 4) // 2 + 1
    w1, w2, w3 = width // 8, width // 4, width // 2

    def conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1, padding_mode=padding_mode)

    features = [
        conv(channels, w1, 3, 1), nn.LeakyReLU(0.1),
        conv(w1, w1, 4, 2), nn.LeakyReLU(0.1),
        conv(w1, w2, 3, 1), nn.LeakyReLU(0.1),
        conv(w2, w2, 4, 2), nn.LeakyReLU(0.1),
        conv(w2, w3, 3, 1), nn.LeakyReLU(0.1),
        conv(w3, w3, 4, 2), nn.LeakyReLU(0.1),
        conv(w3, width, 3, 1), nn.LeakyReLU(0.1),
        nn.Flatten(),
    ]  # fmt: skip
    # the projection reads the flattened features, the vector the dense layer reads
    head = [nn.Linear(last * last * width, 1)]
    return projection_or_plain(features, head, feature_dim=last * last * width, num_classes=num_classes)


@register_architecture(
    "sngan-cnn",
    recipe=CNN_RECIPE,
    description="Miyato et al. SNGAN standard CNN: deconv G with BN, 7-conv LeakyReLU D; hinge, spectral-norm D",
    image_sizes=CNN_SIZES,
    size_rule="32 px (CIFAR-10), 48 px (STL-10), 28 px (MNIST: M_g = 7, first up-sampling layer at stride 1)",
    generator_factory=cnn_generator,
)
def sngan_cnn(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return (
        cnn_generator(image_size, channels, latent_dim, num_classes=num_classes),
        cnn_discriminator(image_size, channels, num_classes=num_classes),
    )


# --- sngan-resnet ----------------------------------------------------------------------------

RESNET_RECIPE = Recipe(
    dataset="cifar10",
    image_size=32,
    channels=3,
    pixel_range=(-1.0, 1.0),
    latent_dim=128,  # dim_z 128 in the authors' config
    # The references initialise with Xavier-uniform (Chainer's GlorotUniform; mimicry: gain
    # sqrt(2) in the residual convs, 1 elsewhere) and zero biases; "keras" is Xavier-uniform
    # with gain 1 and zero biases, the closest of ganctl's schemes.
    init="keras",
    loss="hinge",  # loss_type: hinge in the authors' config
    # 64 real + 64 fake per D step, G on 128 latents: the authors' config (batchsize 64,
    # n_gen_samples 128) exactly, in "joint" mode (see the CNN recipe above for why joint).
    batch_size=128,
    d_update="joint",
    sampling="shuffle",
    # 50,000 G updates in the authors' CIFAR-10 config (mimicry trains 100k); an epoch is
    # floor(50000 / 128) = 390 G steps: 128 epochs = 49,920.
    epochs=128,
    g_lr=2e-4,  # Adam alpha 2e-4, beta1 0, beta2 .9, n_dis 5 (the authors' config)
    d_lr=2e-4,
    beta1=0.0,
    beta2=0.9,
    d_steps=5,
    spectral_norm="d",
    lr_decay="linear",  # iteration_decay_start: 0 -> linear to 0 over the whole run
    sample_every=4,  # 32 grids over the run
    sample_grid=64,
)

RESNET_SIZES = (32, 48)
G_CHANNELS = 256  # ch of the authors' 32 px generator
D_CHANNELS = 128  # ch of their 32 px discriminator


def resnet_generator(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> nn.Module:
    if image_size not in RESNET_SIZES:
        raise ValueError(f"sngan-resnet cannot be built at {image_size} px")
    bottom = image_size // 8  # three doublings
    generator = sequential(
        nn.Linear(latent_dim, bottom * bottom * G_CHANNELS),
        nn.Unflatten(1, (G_CHANNELS, bottom, bottom)),
        GenBlock(G_CHANNELS, G_CHANNELS, num_classes),
        GenBlock(G_CHANNELS, G_CHANNELS, num_classes),
        GenBlock(G_CHANNELS, G_CHANNELS, num_classes),
        nn.BatchNorm2d(G_CHANNELS), nn.ReLU(),
        nn.Conv2d(G_CHANNELS, channels, 3, padding=1),
        nn.Tanh(),
        num_classes=num_classes,
    )  # fmt: skip
    return generator


def resnet_discriminator(channels: int, num_classes: int = 0) -> nn.Module:
    features = [
        DiscBlock(channels, D_CHANNELS, downsample=True, optimized=True),
        DiscBlock(D_CHANNELS, D_CHANNELS, downsample=True),
        DiscBlock(D_CHANNELS, D_CHANNELS, downsample=False),
        DiscBlock(D_CHANNELS, D_CHANNELS, downsample=False),
        nn.ReLU(),
        SumPool(),
    ]
    return projection_or_plain(features, [nn.Linear(D_CHANNELS, 1)], feature_dim=D_CHANNELS, num_classes=num_classes)


@register_architecture(
    "sngan-resnet",
    recipe=RESNET_RECIPE,
    description="Miyato et al. SNGAN ResNet (32 px): 3 up-sampling residual blocks, 4-block D with sum pooling",
    image_sizes=RESNET_SIZES,
    size_rule="32 px (the paper's CIFAR-10 ResNet) or 48 px (the same widths from a 6x6 map)",
    generator_factory=resnet_generator,
)
def sngan_resnet(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return resnet_generator(image_size, channels, latent_dim, num_classes), resnet_discriminator(channels, num_classes)


# --- sngan-cnn-small: the first demo, sngan-cnn at a quarter width ------------------------------

SMALL_G_WIDTH = 128  # a quarter of the paper's 512: G 128-64-32-16 channels
SMALL_D_WIDTH = 128  # D 16-16-32-32-64-64-128

SMALL_RECIPE = Recipe(
    dataset="synthetic",  # built in, no download: the README's first command
    image_size=32,
    channels=3,
    pixel_range=(-1.0, 1.0),
    latent_dim=128,
    init="dcgan",
    loss="hinge",
    batch_size=64,  # 32 real + 32 fake per D step ("joint", as sngan-cnn), G on 64 latents
    d_update="joint",
    sampling="shuffle",
    epochs=20,  # 3,120 iterations: about 5 minutes on two CPU cores (docs/recipes.md)
    g_lr=2e-4,
    d_lr=2e-4,
    beta1=0.5,
    beta2=0.999,
    d_steps=1,
    spectral_norm="d",
    ema_kimg=5.0,  # the averaged generator is visibly cleaner after a few thousand steps
    sample_every=1,
    sample_grid=64,
)


@register_architecture(
    "sngan-cnn-small",
    recipe=SMALL_RECIPE,
    description="sngan-cnn at a quarter of its width: a fast CPU recipe that learns the synthetic shapes in minutes",
    image_sizes=CNN_SIZES,
    size_rule="32 px, 48 px, or 28 px (as sngan-cnn)",
    generator_factory=lambda image_size, channels, latent_dim, num_classes=0: cnn_generator(
        image_size, channels, latent_dim, SMALL_G_WIDTH, num_classes
    ),
)
def sngan_cnn_small(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return (
        cnn_generator(image_size, channels, latent_dim, SMALL_G_WIDTH, num_classes),
        cnn_discriminator(image_size, channels, SMALL_D_WIDTH, num_classes),
    )


# --- sngan-upconv-small: the first-run demo ---------------------------------------------------


# Both networks pad by repeating the border pixels: with zero padding every layer marks the image
# border, and the generator drew coloured rims along it that the shapes' flat backgrounds never
# have (docs/recipes.md). It costs about half the CPU speed (torch's replicate padding is slow there).
UPCONV_PADDING = "replicate"


def upconv_generator(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> nn.Module:
    """sngan-cnn-small's G with up-sampling and 3x3 convs: on the synthetic shapes, no checkerboard
    and cleaner shapes after the same number of steps (docs/recipes.md)."""
    return cnn_generator(
        image_size, channels, latent_dim, SMALL_G_WIDTH, num_classes, upsample="nearest", padding_mode=UPCONV_PADDING
    )


UPCONV_RECIPE = SMALL_RECIPE.replace(
    # beta1 0 and a higher learning rate (the SNGAN ResNet's betas, BigGAN's beta1): on the shapes
    # these learn faster than setting C's (0.5, 0.999) at 2e-4 (docs/recipes.md)
    g_lr=6e-4,
    d_lr=6e-4,
    beta1=0.0,
    beta2=0.9,
    lr_decay="linear",  # to zero at the last step: a fixed-length demo ends on small steps
    # 1,872 iterations of 64 images (12 epochs of the 10,000 synthetic shapes): 3 min 17 s on two
    # idle CPU cores (docs/recipes.md). Stated in images, so that a folder of 300 images trains as
    # long as the shapes do; a grid every 156 iterations (9.984 kimg, an epoch of the shapes).
    kimg=119.808,
    tick_kimg=9.984,
    # D sees its images x8: the spectral-norm D is 1-Lipschitz, too smooth to tell a flat
    # background from one a few grey levels off. Mean FID of three seeds 142 -> 122 (docs/recipes.md)
    d_input_scale=8.0,
)


@register_architecture(
    "sngan-upconv-small",
    recipe=UPCONV_RECIPE,
    description="the first-run demo: sngan-cnn-small's D, a G of nearest up-sampling and 3x3 convs, replicate padding; learns the synthetic shapes in minutes",
    image_sizes=CNN_SIZES,
    size_rule="32 px, 48 px, or 28 px (as sngan-cnn)",
    generator_factory=upconv_generator,
)
def sngan_upconv_small(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    return (
        upconv_generator(image_size, channels, latent_dim, num_classes),
        cnn_discriminator(image_size, channels, SMALL_D_WIDTH, num_classes, padding_mode=UPCONV_PADDING),
    )
