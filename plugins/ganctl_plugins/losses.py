"""Built-in losses. Each works on discriminator logits (raw outputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganctl import register_loss
from ganctl.losses import GANLoss


@register_loss("bce", description="binary cross-entropy on logits; G uses the non-saturating 'real' target")
class BCELoss(GANLoss):
    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, self.real_target))

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))

    def g(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


@register_loss("lsgan", description="least squares (Mao et al. 2017): targets 0 and 1 on D's raw output")
class LSGANLoss(GANLoss):
    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (logits - self.real_target).square().mean()

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * logits.square().mean()

    def g(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits - 1.0).square().mean()

    def says_real(self, logits: torch.Tensor) -> torch.Tensor:
        return logits > 0.5  # halfway between the targets


@register_loss("hinge", description="hinge loss (Lim & Ye 2017; SAGAN, BigGAN): margin 1 for D, -D(G(z)) for G")
class HingeLoss(GANLoss):
    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(self.real_target - logits).mean()

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 + logits).mean()

    def g(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


@register_loss("wgan", description="Wasserstein critic (Arjovsky et al. 2017): D maximises D(real) - D(fake); pair with --reg gp")
class WGANLoss(GANLoss):
    has_accuracy = False  # a critic's outputs are unbounded scores, not real/fake verdicts

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.mean()

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.mean()

    def g(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


@register_loss(
    "rpgan",
    description="relativistic pairing (R3GAN, Huang et al. 2024): softplus(D(fake) - D(real)) over pairs; with --reg r1 and r2",
)
class RelativisticPairingLoss(GANLoss):
    """R3GAN's objective: each real image's logit is compared with a fake's, ``D: softplus(-(D(x_r) - D(x_f)))``,
    ``G: softplus(-(D(x_f) - D(x_r)))`` (means over the pairs). It needs both logits at once, so it
    implements the paired methods (``paired = True``) instead of the three one-sided ones; a trainer
    steps it only where it calls ``d_pair``/``g_pair`` (``ganctl.losses``)."""

    paired = True

    def d_pair(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake_logits - real_logits).mean()

    def g_pair(self, fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(real_logits - fake_logits).mean()

    def says_real(self, logits: torch.Tensor) -> torch.Tensor:
        return logits > 0  # only the difference of a pair means something; reported as for the others
