"""Built-in regularisers of D: R1, R2 and the WGAN gradient penalty."""

from __future__ import annotations

import torch

from ganctl import register_regularizer
from ganctl.regularizers import Regularizer, input_gradient


@register_regularizer("r1", description="R1 (Mescheder et al. 2018): weight/2 * E|grad D(real)|^2; StyleGAN2's, lazy every 16")
class R1(Regularizer):
    factor = 0.5
    display_name, tensorboard_tag = "R1", "reg/r1"

    def value(self, d_forward, real, fake, rng):
        return input_gradient(d_forward, real).square().sum(dim=(1, 2, 3)).mean()


@register_regularizer("r2", description="R2: weight/2 * E|grad D(fake)|^2, R1's twin on generated images")
class R2(Regularizer):
    factor = 0.5
    display_name, tensorboard_tag = "R2", "reg/r2"

    def value(self, d_forward, real, fake, rng):
        return input_gradient(d_forward, fake).square().sum(dim=(1, 2, 3)).mean()


@register_regularizer("gp", description="WGAN-GP (Gulrajani et al. 2017): weight * E(|grad D(x)| - 1)^2 on real/fake interpolates")
class GradientPenalty(Regularizer):
    display_name, tensorboard_tag = "WGAN-GP", "reg/gp"

    def value(self, d_forward, real, fake, rng):
        mix = torch.rand(real.shape[0], 1, 1, 1, generator=rng, device=real.device)
        between = torch.lerp(fake.detach(), real.detach(), mix)  # mix * real + (1 - mix) * fake
        norms = input_gradient(d_forward, between).flatten(1).norm(dim=1)
        return (norms - 1).square().mean()
