"""The interface of D's regularisers: penalties computed from D and images, apart from the loss.

A regulariser returns a statistic (a scalar, averaged over the batch, reported in
``metrics.jsonl`` under its name); the trainer adds ``weight * factor * statistic`` to D's loss,
either in every D update or, lazily, every ``reg_every`` iterations in a phase of its own
(``ganctl.training.step``). Built-ins are in ``ganctl_plugins.regularizers``.

``d_forward`` is the trainer's eager float32 path into D (augmentation included): penalties
take a gradient of D's output with respect to its input and back-propagate through it, a
double backward that ``torch.compile`` does not support and that bf16 would make noisy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class Regularizer:
    factor: float = 1.0  # the loss term is weight * factor * value

    def value(
        self,
        d_forward: Callable[[torch.Tensor], torch.Tensor],
        real: torch.Tensor,
        fake: torch.Tensor,
        rng: torch.Generator,
    ) -> torch.Tensor:
        raise NotImplementedError


def input_gradient(d_forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """d(sum of D's logits)/d(images), kept in the graph so the penalty can be back-propagated."""
    import torch

    images = images.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(d_forward(images).sum(), images, create_graph=True)
    return gradient
