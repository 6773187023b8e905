"""Weight initialisations a recipe can ask for.

A recipe that claims to reproduce a seed uses that seed's initialisation: Keras initialises
kernels glorot-uniform and biases to zero, the DCGAN paper draws weights from N(0, 0.02)
and batch-norm scales from N(1, 0.02). PyTorch's own defaults differ from both.

A weight under a parametrisation (spectral norm) is computed from
``parametrizations.weight.original`` on every read: writing into ``module.weight`` would change
a temporary and nothing else, so the initialiser writes into the original, then refreshes the
spectral-norm estimate.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def initialise(module: nn.Module, scheme: str) -> None:
    if scheme == "torch":
        return
    if scheme not in ("keras", "dcgan"):
        raise ValueError(f"unknown initialisation {scheme!r}")
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            weight = _stored_weight(m)
            if scheme == "keras":
                # glorot-uniform only needs fan_in + fan_out, which is the same whichever way
                # round PyTorch and Keras lay out a transposed convolution's kernel.
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and m.affine:
            if scheme == "keras":
                nn.init.ones_(m.weight)
            else:
                nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    from ganctl.networks.spectral import refresh_estimates

    refresh_estimates(module)


def _stored_weight(m: nn.Module) -> torch.Tensor:
    """The tensor that holds a layer's weight: the original under a parametrisation."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight
