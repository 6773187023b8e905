"""The layers StyleGAN2 is made of, in plain PyTorch (no custom CUDA or C++ ops).

Karras et al. (2020), "Analyzing and Improving the Image Quality of StyleGAN"; the layer
definitions follow NVlabs' stylegan2-ada-pytorch (``training/networks.py``), written here
from the paper and that code's behaviour with ordinary ops that ``torch.compile`` can fuse:

- **Equalised learning rate**: every weight is stored as N(0, 1) and scaled at run time by
  ``gain / sqrt(fan_in)``, so Adam's step is the same size relative to every layer's weights.
  These layers hold their own ``weight`` parameters (not ``nn.Linear``/``nn.Conv2d``), so a
  recipe's ``--init`` never rescales them.
- **Resampling filter** ``[1, 3, 3, 1]`` (separable, normalised): up-sampling is zero insertion
  then this blur (x4 gain), down-sampling this blur then every second pixel, with the
  reference's padding so sizes double or halve exactly.
- **Modulated convolution**: a 3x3 weight scaled per input channel by a style ``s`` from ``w``,
  then per output channel by ``1 / sqrt(sum (w s)^2 + 1e-8)`` (demodulation). Two equivalent
  executions, as in the reference: a grouped convolution of per-image weights ("fused", used
  for inference) and scaling the activations around one shared convolution (used in training:
  a plain convolution, cheaper for the backward pass).
- Every leaf module returns one tensor, so ``ganctl inspect-arch`` lists them with their
  parameters and FLOPs.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' variance through a leaky ReLU (slope 0.2)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x`` scaled to unit mean square along dim 1 (z and the label embedding, before mapping)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def blur_kernel(channels: int) -> torch.Tensor:
    """The normalised 2-D ``[1, 3, 3, 1]`` filter, one copy per channel (a depthwise kernel)."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f)
    return (f / f.sum()).expand(channels, 1, 4, 4).contiguous()


class Blur(nn.Module):
    """The ``[1, 3, 3, 1]`` filter as a depthwise convolution: ``up=2`` zero-inserts first (output
    2H), ``down=2`` keeps every second pixel (output H/2); ``pad`` = (before, after) per side."""

    def __init__(self, channels: int, pad: tuple[int, int], up: int = 1, down: int = 1, gain: float | None = None) -> None:
        super().__init__()
        # a constant: not saved in weight files (persistent=False)
        self.register_buffer("kernel", blur_kernel(channels) * (up * up if gain is None else gain), persistent=False)
        self.channels, self.pad, self.up, self.down = channels, pad, up, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up > 1:  # zero insertion: each pixel followed by up-1 zeros in both directions
            n, c, h, w = x.shape
            spaced = x.new_zeros(n, c, h, self.up, w, self.up)
            spaced[:, :, :, 0, :, 0] = x
            x = spaced.reshape(n, c, h * self.up, w * self.up)
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.down, groups=self.channels)


def upsample_blur(channels: int) -> Blur:
    """x2 up-sampling of an image (output 2H): the skip generator's toRGB sum."""
    return Blur(channels, (2, 1), up=2)


def after_transposed_blur(channels: int) -> Blur:
    """The filter after a stride-2 transposed 3x3 convolution (2H + 1 -> 2H, gain 4): its up-sampling half."""
    return Blur(channels, (1, 1), gain=4.0)


def downsample_blur(channels: int, extra_pad: int = 0) -> Blur:
    """x2 down-sampling; ``extra_pad`` for a 3x3 convolution that follows at stride 2."""
    return Blur(channels, (1 + extra_pad, 1 + extra_pad), down=2)


class EqualLinear(nn.Module):
    """A dense layer with equalised learning rate; ``lr_multiplier`` slows it down (mapping: 0.01)."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                 activation: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation  # leaky ReLU 0.2 times sqrt(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activation else x


class EqualConv2d(nn.Module):
    """D's convolution with equalised learning rate; ``down=2`` blurs, then convolves at stride 2.

    ``activation``: bias, leaky ReLU, times ``sqrt(2) * gain`` (the residual branches use gain
    sqrt(0.5)); without it, bias (if any) times ``gain``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True, activation: bool = True,
                 down: int = 1, gain: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation, self.gain, self.down = activation, gain, down
        self.padding = kernel_size // 2 if down == 1 else 0
        if down > 1:  # the filter's padding covers the convolution's too (the reference's layout)
            self.register_buffer("kernel", blur_kernel(in_channels), persistent=False)
            self.blur_pad = 1 + (kernel_size - 1) // 2 if kernel_size > 1 else 1
            self.stride = 2 if kernel_size > 1 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.down > 1:
            p = self.blur_pad
            stride_blur = 1 if self.stride == 2 else 2  # a 1x1 conv: the blur itself down-samples
            x = F.conv2d(F.pad(x, (p, p, p, p)), self.kernel.to(x.dtype), stride=stride_blur, groups=x.shape[1])
            x = F.conv2d(x, weight, self.bias, stride=self.stride)
        else:
            x = F.conv2d(x, weight, self.bias, padding=self.padding)
        if self.activation:
            return F.leaky_relu(x, 0.2) * (LRELU_GAIN * self.gain)
        return x * self.gain if self.gain != 1 else x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     fused: bool = True, padding: int = 0, transposed: bool = False) -> torch.Tensor:  # fmt: skip
    """The modulated (and demodulated) convolution of ``x`` (N, I, H, W) by ``weight`` (O, I, k, k)
    with per-image ``styles`` (N, I). ``fused``: one grouped convolution of per-image weights;
    otherwise the styles scale the activations around one shared convolution (the same numbers).
    ``transposed``: a stride-2 transposed convolution (H -> 2H + k - 2), the first half of up-sampling."""
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    per_image = weight.unsqueeze(0) * styles.reshape(n, 1, in_channels, 1, 1)  # (N, O, I, k, k)
    dcoefs = (per_image.square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt() if demodulate else None  # (N, O)
    if not fused:
        x = x * styles.reshape(n, in_channels, 1, 1)
        if transposed:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=padding)
        return x * dcoefs.reshape(n, out_channels, 1, 1) if demodulate else x
    if demodulate:
        per_image = per_image * dcoefs.reshape(n, out_channels, 1, 1, 1)
    x = x.reshape(1, n * in_channels, *x.shape[2:])
    if transposed:  # per group, the transposed convolution's weight is (in, out, k, k)
        x = F.conv_transpose2d(x, per_image.transpose(1, 2).reshape(n * in_channels, out_channels, kh, kw), stride=2, groups=n)
    else:
        x = F.conv2d(x, per_image.reshape(n * out_channels, in_channels, kh, kw), padding=padding, groups=n)
    return x.reshape(n, out_channels, *x.shape[2:])


class ModulatedConv2d(nn.Module):
    """The weight of a modulated convolution; ``forward(x, styles)`` (styles from the layer's affine map).

    ``fused=None`` follows the reference: grouped convolution in inference, activations scaled in training."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, demodulate: bool = True,
                 after_upsampling: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.demodulate = demodulate
        # up-sampling: a stride-2 transposed convolution, then the filter (``after_transposed_blur``),
        # as the reference does; a quarter of the work of filtering first and convolving at 2H
        self.padding, self.transposed = kernel_size // 2, after_upsampling
        # toRGB (no demodulation) scales its styles as an equalised layer would its weight
        self.style_gain = 1.0 if demodulate else 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, styles: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        if fused is None:  # (an ONNX graph cannot hold per-image weights: the same numbers, unfused)
            fused = not self.training and not torch.onnx.is_in_onnx_export()
        return modulated_conv2d(x, self.weight.to(x.dtype), (styles * self.style_gain).to(x.dtype), demodulate=self.demodulate,
                                fused=fused, padding=self.padding, transposed=self.transposed)  # fmt: skip


class NoiseInput(nn.Module):
    """Per-pixel noise times a learned strength (0 at the start). Random in training; in inference
    a fixed noise image saved with G (the reference's ``noise_mode='const'``), so a seed gives
    the same picture every time."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # torch's global generator, as the reference; the checkpoint saves its state
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        return x + noise * self.strength.to(x.dtype)


class BiasActivation(nn.Module):
    """Bias, leaky ReLU 0.2, times sqrt(2): the end of every synthesis layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), 0.2) * LRELU_GAIN


class MappingNetwork(nn.Module):
    """z (and a class) to w: normalised inputs, ``depth`` dense layers with leaky ReLU at lr x 0.01.

    ``z_dim = 0``: a label-only mapping (D's conditioning). ``track_w_avg``: a moving average of
    w (decay 0.995) kept in training mode, saved with G: the centre truncation pulls towards.
    ``forward`` returns w (N, w_dim); the generator broadcasts it to every layer.
    """

    def __init__(self, z_dim: int, w_dim: int, depth: int, num_classes: int = 0, *, track_w_avg: bool = True,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes, self.w_avg_beta = z_dim, w_dim, num_classes, w_avg_beta
        embed_features = w_dim if num_classes else 0
        if num_classes:
            self.embed = EqualLinear(num_classes, embed_features)  # a one-hot (or class weights) to a vector
        features = [z_dim + embed_features] + [w_dim] * depth
        self.layers = nn.Sequential(OrderedDict(
            (f"fc{i}", EqualLinear(features[i], features[i + 1], lr_multiplier=lr_multiplier, activation=True)) for i in range(depth)
        ))  # fmt: skip
        self.track_w_avg = track_w_avg
        if track_w_avg:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None = None, *, update_w_avg: bool = True) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.num_classes:
            onehot = labels.float() if labels.is_floating_point() else F.one_hot(labels, self.num_classes).float()
            parts.append(normalize_2nd_moment(self.embed(onehot)))
        w = self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        if self.track_w_avg and self.training and update_w_avg:
            self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return w


class MinibatchStd(nn.Module):
    """One feature map holding the standard deviation of the features over groups of ``group_size``
    images (mean over channels and pixels), so D can see a batch's lack of variety.

    Groups are runs of consecutive images (the reference strides them), so a batch of real images
    stacked on fakes (ganctl's joint D update) never mixes the two in one group when the group
    size divides each half; a batch the group size does not divide uses its largest divisor."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(min(self.group_size, n), n)
        y = x.reshape(n // g, g, c, h, w).float()
        y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,)
        y = y.to(x.dtype).repeat_interleave(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], dim=1)
