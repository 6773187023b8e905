"""Residual blocks of the SNGAN ResNets (Miyato et al. 2018, appendix; the authors' Chainer code).

Two blocks, written to be reused by later architectures:

- ``GenBlock(in, out)``: G's up-sampling block. Residual path: BN, ReLU, 2x nearest
  up-sampling, conv 3x3, BN, ReLU, conv 3x3. Shortcut: 2x up-sampling, conv 1x1.
  With ``num_classes`` the two batch norms (``norm1``, ``norm2``) are conditional batch norm
  (``ganctl.layers``), and the block is called ``block(x, y)``.
- ``DiscBlock(in, out, downsample, optimized)``: D's block. Residual path: ReLU, conv 3x3,
  ReLU, conv 3x3, then 2x2 average pooling when down-sampling. Shortcut: conv 1x1 (then
  pooling) when the channels change or it down-samples, else the identity. ``optimized``
  is the network's first block, which sees raw pixels: no ReLU before its first conv, and its
  shortcut pools before the 1x1 conv (4x fewer multiply-adds on the full-size image).

Spectral norm is not applied here: the trainer applies it to the whole network when the
recipe asks (``ganctl.networks.spectral``), so these are plain layers with biases, as in the references.
Up-sampling is nearest-neighbour, as the authors' Chainer code does (mimicry's PyTorch port
uses bilinear).
"""

from __future__ import annotations

import torch
from torch import nn

from ganctl.layers import ClassConditional, SumPool, batch_norm_2d

__all__ = ["DiscBlock", "GenBlock", "SumPool"]


class GenBlock(ClassConditional):
    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0) -> None:
        super().__init__()
        self.conditional = bool(num_classes)
        self.norm1 = batch_norm_2d(in_channels, num_classes)
        self.act1 = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = batch_norm_2d(out_channels, num_classes)
        self.act2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut_up = nn.Upsample(scale_factor=2, mode="nearest")
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(self.up(self.act1(self._norm(self.norm1, x, y))))
        h = self.conv2(self.act2(self._norm(self.norm2, h, y)))
        return h + self.shortcut_conv(self.shortcut_up(x))

    def _norm(self, norm: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return norm(x, y) if self.conditional else norm(x)


class DiscBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool, optimized: bool = False) -> None:
        super().__init__()
        if optimized and not downsample:
            raise ValueError("the optimised first block always down-samples")
        self.optimized, self.downsample = optimized, downsample
        # not in place: x itself also feeds the shortcut
        self.act1 = nn.Identity() if optimized else nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.pool = nn.AvgPool2d(2) if downsample else nn.Identity()
        learnable_shortcut = optimized or downsample or in_channels != out_channels
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1) if learnable_shortcut else nn.Identity()
        self.shortcut_pool = nn.AvgPool2d(2) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.conv2(self.act2(self.conv1(self.act1(x)))))
        if self.optimized:  # pool first: the 1x1 conv then runs on a quarter of the pixels
            shortcut = self.shortcut_conv(self.shortcut_pool(x))
        else:
            shortcut = self.shortcut_pool(self.shortcut_conv(x))
        return h + shortcut


