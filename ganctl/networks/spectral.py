"""Spectral normalisation (Miyato et al. 2018) as an option of any architecture.

``apply_spectral_norm`` puts PyTorch's own parametrisation
(``torch.nn.utils.parametrizations.spectral_norm``) on every convolution, transposed
convolution and linear layer of a network (and a projection discriminator's embedding): each weight is divided by an estimate of its
largest singular value, refined by one power iteration per training forward pass. It keeps D
1-Lipschitz-ish without a penalty, the single most effective stabiliser of the small GANs.

A generator trained with it is saved with the normalisation baked in (``baked_copy``): the
file holds plain weights, and loads into the plain architecture.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganctl.layers import ProjectionEmbedding

# a projection discriminator's class embedding too, as Miyato & Koyama normalise it
LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, ProjectionEmbedding)


def apply_spectral_norm(network: nn.Module) -> nn.Module:
    for module in list(network.modules()):
        if isinstance(module, LAYERS) and not parametrize.is_parametrized(module, "weight"):
            # a transposed convolution's output channels are its weight's dim 1
            spectral_norm(module, dim=1 if isinstance(module, nn.ConvTranspose2d) else 0)
    return network


def has_parametrizations(network: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in network.modules())


@torch.no_grad()
def baked_copy(network: nn.Module) -> nn.Module:
    """A copy whose parametrised weights are plain tensors holding their current values (eval mode)."""
    plain = copy.deepcopy(network).eval()  # eval: no power iteration while the weights are read
    for module in plain.modules():
        if parametrize.is_parametrized(module):
            _own_parametrized_class(module)
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return plain


def _own_parametrized_class(module: nn.Module) -> None:
    """Give a deep-copied parametrised module a class of its own.

    A deep copy shares the class torch generated for the original ("ParametrizedLinear"), and
    that class holds the ``weight`` property; removing the copy's parametrisation deletes the
    property from the shared class, which broke the live network (and its EMA copy) at the
    next read of its weight.
    """
    shared = type(module)
    namespace = {k: v for k, v in vars(shared).items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(shared.__name__, shared.__bases__, namespace)


@torch.no_grad()
def refresh_estimates(network: nn.Module, iterations: int = 15) -> None:
    """Re-run the power iteration after the weights were re-initialised under the parametrisation."""
    was_training = network.training
    network.train()
    for module in network.modules():
        if parametrize.is_parametrized(module, "weight"):
            for _ in range(iterations):  # each training-mode read of the weight is one power iteration
                module.weight  # noqa: B018
    network.train(was_training)
