"""StyleGAN2 (Karras et al. 2020, config F) and its recipes from NVlabs' stylegan2-ada-pytorch.

    G = mapping (z [+ class] -> w, ``map_depth`` dense layers at lr x 0.01, tracked mean w)
        + synthesis: a learned 4x4 constant, then per resolution two modulated 3x3 convolutions
          (the first up-samples) with noise inputs; toRGB at every resolution, the images
          up-sampled and summed ("skip" generator). No tanh: pixels come out near [-1, 1].
    D = per resolution two 3x3 convolutions (the second down-samples), with a 1x1 down-sampled
        shortcut ("resnet"; "orig" has none), fromRGB at the top only; then minibatch standard
        deviation, a 3x3 convolution, a dense layer and the logit. Class-conditional D projects
        its last features onto a mapping of the class (the reference's ``cmap``).

Channels at resolution r: ``min(channel_base // r, channel_max)``. The layers are in
``stylegan2_layers`` (equalised learning rate, the [1, 3, 3, 1] filter, modulated convolution).
Style-mixing regularisation lives in G's forward in training mode (as the reference does it in
its loss): with probability ``style_mixing_prob`` the layers from a random one on take the w of a
second latent, both drawn from torch's global generator, whose state the checkpoint saves. Lazy
path-length regularisation is not here (it needs a G penalty phase in the trainer).

The registered recipes (``docs/stylegan2.md``): ``stylegan2-cifar`` (the reference's ``cifar``
config), ``stylegan2`` (its ``auto`` config on one GPU, at 256 px; ``auto_spec`` gives the other
sizes) and ``stylegan2-small`` (a CPU-scale variant for trials and tests, not a published one).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganctl import Recipe, register_architecture
from ganctl_plugins.archs.stylegan2_layers import (
    BiasActivation, EqualConv2d, EqualLinear, MappingNetwork, MinibatchStd, ModulatedConv2d, NoiseInput,
    after_transposed_blur, upsample_blur,
)  # fmt: skip

SIZES = (32, 64, 128, 256)
SIZE_RULE = "32, 64, 128 or 256 px (a power of two)"


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


def num_ws(image_size: int) -> int:
    """How many w vectors the synthesis network reads: one per convolution, and the last toRGB."""
    return 2 * int(math.log2(image_size)) - 2


def first_layer_of(resolution: int) -> int:
    """The index of the first w that acts at ``resolution`` (4 px: 0; 8 px: 1; 16 px: 3; ...)."""
    return 0 if resolution == 4 else 2 * int(math.log2(resolution)) - 5


# --- the generator ------------------------------------------------------------------------------


class SynthesisLayer(nn.Module):
    """w -> style (affine, bias 1) -> modulated 3x3 conv (after x2 up-sampling if ``up``) -> noise -> bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, after_upsampling=up)
        self.up = after_transposed_blur(out_channels) if up else None
        self.noise = NoiseInput(resolution)
        self.act = BiasActivation(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, self.affine(w))
        if self.up is not None:
            x = self.up(x)
        return self.act(self.noise(x))


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to the image channels, not demodulated, plus a bias."""

    def __init__(self, in_channels: int, image_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.conv = ModulatedConv2d(in_channels, image_channels, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(image_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.affine(w)) + self.bias.to(x.dtype).reshape(1, -1, 1, 1)


class ConstantInput(nn.Module):
    """The learned 4x4 map the synthesis network starts from, repeated for each image."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(channels, 4, 4))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.const.to(w.dtype).unsqueeze(0).repeat(w.shape[0], 1, 1, 1)  # a copy: a view would pass the parameter on


class SynthesisBlock(nn.Module):
    """One resolution: (up-sampling conv,) conv, toRGB added to the up-sampled image so far."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, image_channels: int) -> None:
        super().__init__()
        self.first = in_channels == 0
        if self.first:
            self.input = ConstantInput(out_channels)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
            self.up_image = upsample_blur(image_channels)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, image_channels, w_dim)

    def forward(self, x, image, ws):  # ws: this block's (N, convs + 1, w_dim)
        if self.first:
            x = self.conv1(self.input(ws), ws[:, 0])
        else:
            x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
        rgb = self.torgb(x, ws[:, -1])
        return x, rgb if image is None else self.up_image(image) + rgb


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, C, H, W)."""

    def __init__(self, image_size: int, image_channels: int, w_dim: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(image_size)) + 1)]
        self.num_ws = num_ws(image_size)
        self.blocks = nn.ModuleList()
        for res in self.resolutions:
            in_channels = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_channels, out, w_dim, res, image_channels))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = image = None
        for block, res in zip(self.blocks, self.resolutions):
            first = first_layer_of(res)
            # a block reads its convolutions' ws and the next one (its toRGB shares the next conv's w)
            x, image = block(x, image, ws[:, first : first + (2 if res == 4 else 3)])
        return image


class Generator(nn.Module):
    """``G(z)`` or ``G(z, labels)``: ``mapping`` (z -> w, with ``w_avg``) and ``synthesis`` (ws -> images).

    The W-space tools (truncation, style mixing) use ``mapping``, ``synthesis`` and ``num_ws``."""

    # no final tanh, as in the reference: pixels land near [-1, 1] and are clipped when made into images
    unbounded_output = True

    def __init__(self, image_size: int, channels: int, latent_dim: int, *, w_dim: int, map_depth: int, channel_base: int,
                 channel_max: int, num_classes: int = 0, style_mixing_prob: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.synthesis = SynthesisNetwork(image_size, channels, w_dim, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(latent_dim, w_dim, map_depth, num_classes)
        self.style_mixing_prob = style_mixing_prob

    def ws(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, update_w_avg: bool = True) -> torch.Tensor:
        """w broadcast to every layer: (N, num_ws, w_dim)."""
        return self.mapping(z, labels, update_w_avg=update_w_avg).unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ws = self.ws(z, labels)
        if self.training and self.style_mixing_prob > 0:
            ws = self._mix_styles(z, labels, ws)
        return self.synthesis(ws)

    def _mix_styles(self, z, labels, ws):
        """Style-mixing regularisation: the layers from a random cutoff on take a second latent's w
        (for the whole batch, with probability ``style_mixing_prob``), drawn from torch's global generator."""
        cutoff = torch.randint(1, self.num_ws, (), device=z.device)
        mixing = torch.rand((), device=z.device) < self.style_mixing_prob
        cutoff = torch.where(mixing, cutoff, torch.full_like(cutoff, self.num_ws))
        other = self.ws(torch.randn_like(z), labels, update_w_avg=False)
        later = torch.arange(self.num_ws, device=z.device).reshape(1, -1, 1) >= cutoff
        return torch.where(later, other, ws)


# --- the discriminator --------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """conv 3x3, conv 3x3 down; "resnet": plus a 1x1 down-sampled shortcut, both halves x sqrt(0.5)."""

    def __init__(self, in_channels: int, out_channels: int, image_channels: int, *, first: bool, residual: bool) -> None:
        super().__init__()
        self.fromrgb = EqualConv2d(image_channels, in_channels, 1) if first else None
        gain = math.sqrt(0.5) if residual else 1.0
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=2, gain=gain)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, activation=False, down=2, gain=gain) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.conv1(self.conv0(x))
        return y if self.skip is None else self.skip(x) + y


class Discriminator(nn.Module):
    """``D(x)`` or ``D(x, labels)`` -> (N, 1) logits."""

    def __init__(self, image_size: int, channels: int, *, channel_base: int, channel_max: int, mbstd_group: int,
                 residual: bool = True, num_classes: int = 0) -> None:  # fmt: skip
        super().__init__()
        resolutions = [2**i for i in range(int(math.log2(image_size)), 2, -1)]
        self.blocks = nn.Sequential(*(
            DiscriminatorBlock(channels_at(r, channel_base, channel_max), channels_at(r // 2, channel_base, channel_max),
                               channels, first=r == image_size, residual=residual)
            for r in resolutions
        ))  # fmt: skip
        c4 = channels_at(4, channel_base, channel_max)
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.cmap_dim = c4 if num_classes else 0
        self.out = EqualLinear(c4, self.cmap_dim or 1)
        if num_classes:  # the reference's D maps the class with its default 8-layer mapping network
            self.mapping = MappingNetwork(0, c4, 8, num_classes, track_w_avg=False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(self.mbstd(self.blocks(x)))
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim:  # projection onto the class's mapped vector
            x = (x * self.mapping(None, labels)).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


# --- recipes and registrations ------------------------------------------------------------------


def auto_spec(resolution: int, gpus: int = 1) -> dict[str, float]:
    """stylegan2-ada-pytorch's ``--cfg=auto`` (train.py) at ``resolution`` on ``gpus`` GPUs:
    batch, minibatch-std group, channel base, learning rate, R1 gamma, EMA half-life (kimg)."""
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return {
        "batch": batch,
        "mbstd": min(batch // gpus, 4),
        "channel_base": int((1 if resolution >= 512 else 0.5) * 32768),
        "lr": 0.002 if resolution >= 1024 else 0.0025,
        "gamma": 0.0002 * resolution**2 / batch,
        "ema_kimg": batch * 10 / 32,
    }


def _recipe(image_size: int, batch: int, lr: float, gamma: float, ema_kimg: float, **more) -> Recipe:
    return Recipe(
        image_size=image_size, channels=3, pixel_range=(-1.0, 1.0),
        latent_dim=512,  # z_dim 512
        init="torch",  # the layers draw their own N(0, 1) weights (equalised learning rate)
        loss="bce",  # the non-saturating logistic loss: softplus(-D(real)) + softplus(D(fake)), G softplus(-D(fake))
        # one D step on batch/2 real + batch/2 fake stacked (the reference's D sees a full batch of
        # each), G on a full batch; every minibatch-std group stays on one side (stylegan2_layers)
        batch_size=batch, d_update="joint", sampling="shuffle",
        g_lr=lr, d_lr=lr, beta1=0.0, beta2=0.99, adam_eps=1e-8,
        # lazy R1 every 16 iterations, weight gamma (ganctl's r1 is gamma/2 * |grad|^2, as the reference)
        regularizer="r1", reg_weight=gamma, reg_every=16,
        ema_kimg=ema_kimg, ema_rampup=0.05,
        sample_grid=64,
        **more,
    )  # fmt: skip


# ``cifar``: 2 GPUs, batch 64, mbstd 32, fmaps 1 (channel base 32768: 512 channels at every size
# up to 32 px), lr 0.0025, gamma 0.01, EMA 500 kimg with ramp-up 0.05, mapping depth 2; and, for
# CIFAR only, no path length, no style mixing, and the "orig" D (no residual shortcuts).
CIFAR = {"channel_base": 32768, "channel_max": 512, "map_depth": 2, "mbstd": 32, "residual": False, "mixing": 0.0}
# 100,000 kimg: 2,000 epochs of CIFAR-10's 50,000 images
CIFAR_RECIPE = _recipe(32, 64, 0.0025, 0.01, 500.0, dataset="cifar10", epochs=2000, sample_every=20)

AUTO_SIZE = 256
_auto = auto_spec(AUTO_SIZE)
AUTO = {"channel_base": _auto["channel_base"], "channel_max": 512, "map_depth": 2, "mbstd": _auto["mbstd"], "residual": True,
        "mixing": 0.9}  # fmt: skip
# 25,000 kimg in the reference; a folder of images is the usual data (--dataset folder:PATH).
# Epochs: 25e6 / images in the folder (357 for FFHQ's 70,000).
AUTO_RECIPE = _recipe(AUTO_SIZE, _auto["batch"], _auto["lr"], _auto["gamma"], _auto["ema_kimg"], dataset="synthetic",
                      epochs=357, sample_every=10)  # fmt: skip

# CPU scale, not a published configuration: channels 128 at 4-8 px, 64 at 16, 32 at 32 px; z and w 128.
SMALL = {"channel_base": 1024, "channel_max": 128, "map_depth": 2, "mbstd": 4, "residual": True, "mixing": 0.9, "w_dim": 128}
SMALL_RECIPE = _recipe(32, 32, 0.0025, auto_spec(32)["gamma"], 10.0, dataset="synthetic", epochs=20, sample_every=1).replace(
    latent_dim=128
)


def _factories(cfg: dict):
    def generator(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> Generator:
        return Generator(image_size, channels, latent_dim, w_dim=cfg.get("w_dim", 512), map_depth=cfg["map_depth"],
                         channel_base=cfg["channel_base"], channel_max=cfg["channel_max"], num_classes=num_classes,
                         style_mixing_prob=cfg["mixing"])  # fmt: skip

    def pair(image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> tuple[Generator, Discriminator]:
        d = Discriminator(image_size, channels, channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
                          mbstd_group=cfg["mbstd"], residual=cfg["residual"], num_classes=num_classes)  # fmt: skip
        return generator(image_size, channels, latent_dim, num_classes), d

    return generator, pair


def _register(name: str, cfg: dict, recipe: Recipe, description: str) -> None:
    generator, pair = _factories(cfg)
    register_architecture(name, recipe=recipe, description=description, image_sizes=SIZES, size_rule=SIZE_RULE,
                          generator_factory=generator)(pair)  # fmt: skip


_register("stylegan2-cifar", CIFAR, CIFAR_RECIPE,
          "StyleGAN2, stylegan2-ada-pytorch's cifar config: 512 channels, mapping 2, 'orig' D, R1 0.01, EMA 500 kimg")
_register("stylegan2", AUTO, AUTO_RECIPE,
          "StyleGAN2 config F (skip G, residual D), stylegan2-ada-pytorch's auto config for 256 px on one GPU")
_register("stylegan2-small", SMALL, SMALL_RECIPE,
          "StyleGAN2 at CPU scale (128-32 channels, z/w 128): for trials and tests, not a published configuration")  # fmt: skip
