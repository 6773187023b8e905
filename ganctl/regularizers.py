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
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch


class Regularizer:
    factor: float = 1.0  # the loss term is weight * factor * value
    # How its statistic is shown: in reports ("R1") and as a TensorBoard tag ("reg/r1").
    # Left empty, ``register_regularizer`` derives them from the registered name.
    display_name: ClassVar[str] = ""
    tensorboard_tag: ClassVar[str] = ""

    def value(
        self,
        d_forward: Callable[[torch.Tensor], torch.Tensor],
        real: torch.Tensor,
        fake: torch.Tensor,
        rng: torch.Generator,
    ) -> torch.Tensor:
        raise NotImplementedError


def fill_names(cls: type, name: str) -> None:
    """The display name and TensorBoard tag of a regulariser registered as ``name``, where its
    class (not a parent) leaves them out: the name itself, and ``reg/NAME``."""
    if not vars(cls).get("display_name"):
        cls.display_name = name
    if not vars(cls).get("tensorboard_tag"):
        cls.tensorboard_tag = f"reg/{name}"


def input_gradient(d_forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """d(sum of D's logits)/d(images), kept in the graph so the penalty can be back-propagated."""
    import torch

    images = images.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(d_forward(images).sum(), images, create_graph=True)
    return gradient
