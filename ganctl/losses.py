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

    def says_real(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean: which images D calls real (for its accuracy; only if ``has_accuracy``)."""
        return logits > 0
