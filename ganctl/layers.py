"""Reusable layers of class-conditional GANs, for any architecture plugin.

A conditional generator is called ``G(z, y)`` and a conditional discriminator ``D(x, y)``,
``y`` an int64 tensor of class indices. The generators built from these layers also take
``y`` as float class weights ``(N, num_classes)`` (rows summing to 1): each embedding is then
the weighted mean of the classes' embeddings, which is how ``latent-walk --class-walk``
moves from one class to another. The standard parts:

- ``ConditionalBatchNorm2d`` (de Vries et al. 2017; Miyato & Koyama 2018): batch norm without
  its own affine transform, followed by a class-dependent gain and bias (embeddings, gain 1
  and bias 0 at the start). For G.
- ``ProjectionDiscriminator`` (Miyato & Koyama 2018, "cGANs with Projection Discriminator"):
  ``D(x, y) = head(h) + <embed(y), pool(h)>`` with ``h`` the features of an unconditional
  body. Its embedding is a ``ProjectionEmbedding``, which ``ganctl.networks.spectral`` normalises with
  the rest of D, as the paper does.
- ``ConditionalSequential``: an ``nn.Sequential`` that hands ``y`` to the children that take it
  (instances of ``ClassConditional``) and only ``x`` to the others; the state-dict keys are an
  ``nn.Sequential``'s, so a conditional network reads like its unconditional twin.
- ``LabelConcatGenerator`` and ``LabelChannelDiscriminator``: the Keras conditional-GAN
  tutorials' way, around any unconditional network: a label embedding concatenated to ``z``
  for G, and an embedding turned into one extra image channel for D.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassConditional(nn.Module):
    """A module whose ``forward(x, y)`` takes the class labels too."""


def embed(embedding: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """``embedding(y)`` for class indices; the weighted mean of the rows for class weights ``(N, K)``."""
    if y.is_floating_point():
        return y.to(embedding.weight.dtype) @ embedding.weight
    return embedding(y)


class ConditionalSequential(nn.Sequential, ClassConditional):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for module in self:
            x = module(x, y) if isinstance(module, ClassConditional) else module(x)
        return x


class ConditionalBatchNorm2d(ClassConditional):
    """Batch norm whose gain and bias are looked up per class."""

    def __init__(self, num_features: int, num_classes: int, **batch_norm_options) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False, **batch_norm_options)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return h * embed(self.gain, y)[:, :, None, None] + embed(self.bias, y)[:, :, None, None]


def batch_norm_2d(num_features: int, num_classes: int = 0, **options) -> nn.Module:
    """``nn.BatchNorm2d``, or its conditional version when there are classes."""
    if num_classes:
        return ConditionalBatchNorm2d(num_features, num_classes, **options)
    return nn.BatchNorm2d(num_features, **options)


class ProjectionEmbedding(nn.Embedding):
    """The class embedding of a projection discriminator (spectrally normalised with D's layers)."""


class ProjectionDiscriminator(ClassConditional):
    """``head(h) + <embed(y), pool(h)>``, ``h = features(x)``: Miyato & Koyama's projection."""

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int, num_classes: int, pool: nn.Module | None = None) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.pool = pool or nn.Identity()
        self.embed = ProjectionEmbedding(num_classes, feature_dim)
        nn.init.xavier_uniform_(self.embed.weight)  # the authors' Chainer and mimicry's init

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        projection = (self.embed(y) * self.pool(h)).sum(dim=1, keepdim=True)
        return self.head(h) + projection


class SumPool(nn.Module):
    """Global sum pooling over height and width: (N, C, H, W) -> (N, C), as SNGAN's D ends."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


KERAS_EMBEDDING = 50  # the Keras conditional-GAN tutorials embed the label in 50 numbers


class LabelConcatGenerator(ClassConditional):
    """``net(cat(z, embed(y)))``: ``net`` is built for ``latent_dim + embedding_dim`` inputs."""

    def __init__(self, net: nn.Module, num_classes: int, embedding_dim: int = KERAS_EMBEDDING) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embedding_dim)
        self.net = net

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, embed(self.embed, y).to(z.dtype)], dim=1))


class LabelChannelDiscriminator(ClassConditional):
    """``net(cat(x, map(y)))``: the label embedded, made a full-size map by a dense layer, stacked
    as one more channel; ``net`` is built for ``channels + 1`` input channels."""

    def __init__(self, net: nn.Module, num_classes: int, image_size: int, embedding_dim: int = KERAS_EMBEDDING) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embedding_dim)
        self.to_map = nn.Linear(embedding_dim, image_size * image_size)
        self.image_size = image_size
        self.net = net

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        label_map = self.to_map(self.embed(y)).view(-1, 1, self.image_size, self.image_size).to(x.dtype)
        return self.net(torch.cat([x, label_map], dim=1))


def is_conditional(network: nn.Module) -> bool:
    """Whether ``network`` is called with labels (its top module takes them)."""
    return isinstance(network, ClassConditional)


# ----------------------------------------------------------------------------------------
# Building a network conditional or not from one description


def sequential(*modules: nn.Module, num_classes: int = 0) -> nn.Module:
    """``nn.Sequential``, or ``ConditionalSequential`` (called with ``y``) when there are classes."""
    return ConditionalSequential(*modules) if num_classes else nn.Sequential(*modules)


def projection_or_plain(
    features: list[nn.Module], head: list[nn.Module], *, feature_dim: int, num_classes: int = 0, pool: nn.Module | None = None
) -> nn.Module:
    """An unconditional D, ``nn.Sequential(*features, *head)``; with classes, the same layers as a
    ``ProjectionDiscriminator`` (``feature_dim``: the size of ``pool(features(x))``)."""
    if not num_classes:
        return nn.Sequential(*features, *head)
    head_module = head[0] if len(head) == 1 else nn.Sequential(*head)
    return ProjectionDiscriminator(nn.Sequential(*features), head_module, feature_dim, num_classes, pool)


def label_concat_pair(build_g, build_d, image_size: int, channels: int, latent_dim: int, num_classes: int = 0):
    """``(G, D)`` from builders of the unconditional networks, ``build_g(image_size, channels,
    latent_dim)`` and ``build_d(image_size, channels)``, conditional the Keras tutorials' way
    when there are classes: G takes ``latent_dim + 50`` inputs, D ``channels + 1`` channels."""
    generator = label_concat_generator(build_g, image_size, channels, latent_dim, num_classes)
    if not num_classes:
        return generator, build_d(image_size, channels)
    return generator, LabelChannelDiscriminator(build_d(image_size, channels + 1), num_classes, image_size)


def label_concat_generator(build_g, image_size: int, channels: int, latent_dim: int, num_classes: int = 0) -> nn.Module:
    """``label_concat_pair``'s generator alone."""
    if not num_classes:
        return build_g(image_size, channels, latent_dim)
    return LabelConcatGenerator(build_g(image_size, channels, latent_dim + KERAS_EMBEDDING), num_classes)
