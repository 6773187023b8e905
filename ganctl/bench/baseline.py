"""The baseline: a training loop the way a user first writes it from the tutorials.

Plain eager PyTorch, float32, NCHW. The dataset is a float32 array in host memory; every step
picks a random batch with NumPy, copies it to the device, and reads the losses back with
``.item()`` to print them, as the Keras tutorials do (``print('>%d, %d/%d, d1=%.3f ...')``).
Nothing here is tuned: it is the yardstick ``ganctl bench`` measures the trainer against, and
it does the same arithmetic as the recipe (same networks, same D-update mode).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BaselineLoop:
    def __init__(self, generator: nn.Module, discriminator: nn.Module, recipe, dataset: np.ndarray, device: torch.device):
        self.G, self.D = generator.to(device), discriminator.to(device)
        self.recipe = recipe
        self.dataset = dataset  # float32, already scaled to the pixel range, in host memory
        self.device = device
        self.g_opt = torch.optim.Adam(self.G.parameters(), lr=recipe.g_lr, betas=(recipe.beta1, 0.999))
        self.d_opt = torch.optim.Adam(self.D.parameters(), lr=recipe.d_lr, betas=(recipe.beta1, 0.999))
        self.losses: list[float] = []

    def real_batch(self, n: int) -> torch.Tensor:
        index = np.random.randint(0, self.dataset.shape[0], n)
        return torch.from_numpy(self.dataset[index]).to(self.device)

    def latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.recipe.latent_dim, device=self.device)

    def bce(self, logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def step(self) -> None:
        batch = self.recipe.batch_size
        if self.recipe.d_update == "simultaneous":
            real = self.real_batch(batch)
            fake = self.G(self.latents(batch))
            self.d_opt.zero_grad()
            d_loss = self.bce(self.D(real), 1.0) + self.bce(self.D(fake.detach()), 0.0)
            d_loss.backward()
            self.d_opt.step()
            self.g_opt.zero_grad()
            g_loss = self.bce(self.D(fake), 1.0)
            g_loss.backward()
            self.g_opt.step()
            self.losses.append(d_loss.item())
        else:
            half = batch // 2
            real = self.real_batch(half)
            fake = self.G(self.latents(half)).detach()
            if self.recipe.d_update == "joint":
                self.d_opt.zero_grad()
                logits = self.D(torch.cat([real, fake]))
                d_loss = 0.5 * (self.bce(logits[:half], 1.0) + self.bce(logits[half:], 0.0))
                d_loss.backward()
                self.d_opt.step()
                self.losses.append(d_loss.item())
            else:
                for images, target in ((real, 1.0), (fake, 0.0)):
                    self.d_opt.zero_grad()
                    d_loss = self.bce(self.D(images), target)
                    d_loss.backward()
                    self.d_opt.step()
                    self.losses.append(d_loss.item())
            self.g_opt.zero_grad()
            g_loss = self.bce(self.D(self.G(self.latents(batch))), 1.0)
            g_loss.backward()
            self.g_opt.step()
        self.losses.append(g_loss.item())
