"""One training iteration, for each way a recipe updates the discriminator.

Each call returns the iteration's statistics as one small tensor on the device
(D loss on real, D loss on fake, G loss, D accuracy on real, D accuracy on fake). Nothing
here reads a value back to the host: ``.item()`` would be a CPU-GPU sync on every step,
and a step without syncs is one that can later be compiled or captured as a CUDA graph.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ganctl.losses import GANLoss
from ganctl.recipe import Recipe
from ganctl.training.batches import RealBatches

STAT_NAMES = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")


class TrainStep:
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer,
        loss: GANLoss,
        recipe: Recipe,
        real: RealBatches,
        latent_rng: torch.Generator,
        device: torch.device,
        amp: bool | None,
    ) -> None:
        self.G, self.D = generator, discriminator
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.loss = loss
        self.recipe = recipe
        self.real = real
        self.latent_rng = latent_rng
        self.device = device
        self.amp = device.type in ("cuda", "cpu") and (amp if amp is not None else device.type == "cuda")
        self.update = {"separate": self._separate, "joint": self._joint, "simultaneous": self._simultaneous}[
            recipe.d_update
        ]

    def __call__(self) -> torch.Tensor:
        return self.update()

    # --- helpers -------------------------------------------------------------------------
    def _autocast(self):
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.recipe.latent_dim, generator=self.latent_rng, device=self.device)

    def _d(self, images: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.D(images).float()  # losses in float32 whatever the autocast

    def _fakes_for_d(self, n: int) -> torch.Tensor:
        # D's half of the Keras loop: G is only evaluated (Keras' g_model.predict), no graph kept
        with torch.no_grad(), self._autocast():
            return self.G(self._latents(n)).float()

    def _accuracy(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        says = self.loss.says_real
        return says(real_logits).float().mean(), (~says(fake_logits)).float().mean()

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | int:
        penalty = self.loss.d_penalty(self.D, real, fake)
        return 0 if penalty is None else penalty

    def _g_update(self) -> torch.Tensor:
        """G on a full batch of latents against the "real" target; D frozen meanwhile."""
        self.D.requires_grad_(False)  # no gradients for D's weights: they would be thrown away
        self.g_opt.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self.G(self._latents(self.recipe.batch_size))
        g_loss = self.loss.g(self._d(fake))
        g_loss.backward()
        self.g_opt.step()
        self.D.requires_grad_(True)
        return g_loss.detach()

    # --- the three update modes -----------------------------------------------------------
    def _separate(self) -> torch.Tensor:
        """Keras CIFAR-10: a real half, one D step; a fake half, another D step; then G."""
        half = self.recipe.batch_size // 2
        for _ in range(self.loss.d_steps):
            real = self.real.next()
            self.d_opt.zero_grad(set_to_none=True)
            real_logits = self._d(real)
            d_real = self.loss.d_real(real_logits)
            d_real.backward()
            self.d_opt.step()

            fake = self._fakes_for_d(half)
            self.d_opt.zero_grad(set_to_none=True)
            fake_logits = self._d(fake)
            d_fake = self.loss.d_fake(fake_logits)
            (d_fake + self._penalty(real, fake)).backward()
            self.d_opt.step()
        g_loss = self._g_update()
        return torch.stack([d_real.detach(), d_fake.detach(), g_loss, *self._accuracy(real_logits, fake_logits)])

    def _joint(self) -> torch.Tensor:
        """Keras MNIST: real and fake halves stacked into one batch, one D step; then G."""
        half = self.recipe.batch_size // 2
        for _ in range(self.loss.d_steps):
            real = self.real.next()
            fake = self._fakes_for_d(half)
            self.d_opt.zero_grad(set_to_none=True)
            logits = self._d(torch.cat([real, fake]))
            real_logits, fake_logits = logits[:half], logits[half:]
            d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
            # Keras averages over the stacked batch: the mean of the two halves' means
            (0.5 * (d_real + d_fake) + self._penalty(real, fake)).backward()
            self.d_opt.step()
        g_loss = self._g_update()
        return torch.stack([d_real.detach(), d_fake.detach(), g_loss, *self._accuracy(real_logits, fake_logits)])

    def _simultaneous(self) -> torch.Tensor:
        """TensorFlow tutorial: one forward pass; D and G gradients both taken from it."""
        g_params = [p for p in self.G.parameters() if p.requires_grad]
        d_params = [p for p in self.D.parameters() if p.requires_grad]
        for _ in range(self.loss.d_steps - 1):  # extra critic steps (WGAN-style losses) come first
            real = self.real.next()
            fake = self._fakes_for_d(real.shape[0])
            self.d_opt.zero_grad(set_to_none=True)
            d_loss = self.loss.d_real(self._d(real)) + self.loss.d_fake(self._d(fake)) + self._penalty(real, fake)
            d_loss.backward()
            self.d_opt.step()

        real = self.real.next()
        with self._autocast():
            fake = self.G(self._latents(real.shape[0]))
        real_logits, fake_logits = self._d(real), self._d(fake)
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        g_loss = self.loss.g(fake_logits)
        d_loss = d_real + d_fake + self._penalty(real, fake.detach())
        g_grads = torch.autograd.grad(g_loss, g_params, retain_graph=True)
        d_grads = torch.autograd.grad(d_loss, d_params)
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for p, g in zip(params, grads):
                p.grad = g
        self.g_opt.step()
        self.d_opt.step()
        return torch.stack([d_real.detach(), d_fake.detach(), g_loss.detach(), *self._accuracy(real_logits, fake_logits)])
