"""The loss interface every registered loss implements.

A loss sees discriminator outputs (logits: the Keras seeds' sigmoid lives here, so BCE is
computed stably) and returns scalars. The trainer owns the update order; the loss only says
what to minimise. Losses with extra terms fit without changing the trainer's shape:

* ``d_penalty`` adds a regulariser that needs D itself and the images (gradient penalty);
* ``d_steps`` asks for several D updates per G update (WGAN-style critics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


class GANLoss:
    """Base class. Subclasses implement ``d_real``, ``d_fake`` and ``g``."""

    d_steps: int = 1  # discriminator updates per generator update

    def __init__(self, real_target: float = 1.0) -> None:
        self.real_target = real_target  # below 1 for one-sided label smoothing

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        """D's loss on real images (mean over the batch)."""
        raise NotImplementedError

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        """D's loss on generated images (mean over the batch)."""
        raise NotImplementedError

    def g(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """G's loss on D's verdict about its images (mean over the batch)."""
        raise NotImplementedError

    def d_penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        """An extra D term (for example a gradient penalty); ``None`` when there is none."""
        return None

    def says_real(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean: which images D calls real (for its accuracy)."""
        return logits > 0
