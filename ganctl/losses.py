"""The loss interface every registered loss implements.

A loss maps discriminator outputs (logits: the Keras tutorials' sigmoid lives here, so BCE is
computed stably) to the scalars D and G minimise. It sees nothing else: the trainer owns the
update order (``ganctl.training.step``), and penalties that need D itself and the images are
regularisers of their own (``ganctl.regularizers``), combinable with any loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class GANLoss:
    """Base class. Subclasses implement ``d_real``, ``d_fake`` and ``g``."""

    # A relativistic loss (rpgan) compares a real image's logit with a fake's: it sets ``paired``
    # and implements ``d_pair(real_logits, fake_logits)`` and ``g_pair(fake_logits, real_logits)``
    # instead of ``d_real``, ``d_fake`` and ``g`` (pairs: row i of each side).
    paired: bool = False

    # Whether D's outputs are verdicts (real or fake) whose accuracy means something. A WGAN
    # critic's are scores, not verdicts: no accuracy is reported for it.
    has_accuracy: bool = True

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

    def d_pair(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """D's loss on pairs of a real and a fake image (a ``paired`` loss only)."""
        raise NotImplementedError

    def g_pair(self, fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
        """G's loss on pairs of its image and a real one (a ``paired`` loss only)."""
        raise NotImplementedError

    def says_real(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean: which images D calls real (for its accuracy; only if ``has_accuracy``)."""
        return logits > 0
