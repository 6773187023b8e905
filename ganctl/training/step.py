"""One training iteration: a short list of phases, run by one generic runner.

A phase names the networks it updates and computes their losses; the runner does the rest
the same way for every phase: zero the gradients, ``backward(inputs=params)`` for each network
in turn (so a loss never deposits gradients in the other network, with no ``requires_grad_``
toggling), an optimiser step, and an after-hook (the generator EMA after G's step).

The recipe decides the phase list:

    d_update      one D update (repeated d_steps times)             then
    separate      D on a real half-batch; D on a fake half-batch    G on a full batch
    joint         D on the two halves stacked                       G on a full batch
    simultaneous  (d_steps - 1 plain D updates, then) D and G from one forward pass

plus, with a lazy regulariser (``reg_every > 1``), a D regularisation phase at the end of every
``reg_every``-th iteration, on the images of the last D update, its loss scaled by the interval
(the optimiser's lr and betas are adjusted for it where the optimiser is made, in the loop).

Every call of D goes through ``run_D``: augmentation (if on), then D under autocast, logits in
float32. Penalties call it with ``for_penalty=True``: the eager module, never the compiled
wrapper, in float32, because they back-propagate through an input gradient.

Class-conditional runs (``class_weights`` given): real batches come with their labels, D's
fakes are made for the same labels as the real images beside them (so both sides show D the
same classes, and a penalty's images share one label tensor), and G's own batch draws its
labels from the training set's class frequencies with the latent generator. G is called
``G(z, y)`` and D ``D(x, y)``; an unconditional run draws and calls exactly as before.

Nothing here reads a value back to the host: statistics go into ``StepStats`` as device
tensors, and ``.item()`` would be a CPU-GPU sync on every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ganctl.device import autocast
from ganctl.losses import GANLoss
from ganctl.recipe import Recipe
from ganctl.regularizers import Regularizer
from ganctl.training.augment import DiffAugment
from ganctl.training.batches import RealBatches
from ganctl.training.ema import GeneratorEMA
from ganctl.training.stats import StepStats

# The statistics every recipe reports, in the order metrics.jsonl has always written them.
CORE_STATS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")


@dataclass(frozen=True)
class Phase:
    name: str
    nets: tuple[str, ...]  # networks whose optimisers step, in the order their losses back-propagate
    losses: Callable[[], dict[str, torch.Tensor]]  # net -> the loss it minimises
    every: int = 1  # run on iterations i with i % every == 0 (i counted from 0)


@dataclass
class Networks:
    """The two networks, their optimisers, and what the step calls them through."""

    G: nn.Module
    D: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    G_forward: nn.Module | None = None  # a compiled wrapper sharing G's parameters; None: G
    D_forward: nn.Module | None = None  # likewise for D (penalties always use the eager D)


class TrainStep:
    def __init__(
        self,
        nets: Networks,
        *,
        loss: GANLoss,
        recipe: Recipe,
        real: RealBatches,
        latent_rng: torch.Generator,
        device: torch.device,
        amp: bool,
        stats: StepStats,
        regularizer: Regularizer | None = None,
        penalty_rng: torch.Generator | None = None,
        augment: DiffAugment | None = None,
        ema: GeneratorEMA | None = None,
        class_weights: torch.Tensor | None = None,
        average_gradients: Callable[[list[torch.Tensor]], None] | None = None,
        latent_share: tuple[int, int] = (0, 1),
    ) -> None:
        self.nets = nets
        self.G, self.D = nets.G, nets.D
        self.G_forward = nets.G_forward or nets.G
        self.D_forward = nets.D_forward or nets.D
        self.optimizers = {"G": nets.g_optimizer, "D": nets.d_optimizer}
        self.params = {
            "G": [p for p in nets.G.parameters() if p.requires_grad],
            "D": [p for p in nets.D.parameters() if p.requires_grad],
        }
        self.loss, self.recipe, self.real = loss, recipe, real
        self.latent_rng, self.device, self.amp = latent_rng, device, amp
        self.stats = stats
        self.regularizer, self.penalty_rng = regularizer, penalty_rng
        self.augment, self.ema = augment, ema
        self.class_weights = class_weights  # images per class, on the device; None: unconditional
        # under torchrun: gradients averaged over the processes before each optimiser step, and
        # latents drawn for the whole (global) batch, of which this process keeps its share
        self.average_gradients = average_gradients
        self.latent_share = latent_share
        self.lazy_reg = regularizer is not None and recipe.reg_every > 1
        self.iteration = 0  # iterations completed before the current one
        # the images of the last D update, for the lazy regularisation phase
        self.last_real: torch.Tensor | None = None
        self.last_fake: torch.Tensor | None = None
        self.last_labels: torch.Tensor | None = None  # their classes (conditional runs)
        self.phases = self._phases()

    def __call__(self, iteration: int) -> None:
        """Run iteration number ``iteration`` (0-based: the count of iterations already done)."""
        self.iteration = iteration
        for phase in self.phases:
            if iteration % phase.every == 0:
                self._run(phase)

    # --- the runner -----------------------------------------------------------------------
    def _run(self, phase: Phase) -> None:
        for net in phase.nets:
            self.optimizers[net].zero_grad(set_to_none=True)
        losses = phase.losses()
        for i, net in enumerate(phase.nets):
            # keep the shared graph alive for the next network's backward (simultaneous update)
            losses[net].backward(inputs=self.params[net], retain_graph=i + 1 < len(phase.nets))
        for net in phase.nets:
            if self.average_gradients is not None:
                self.average_gradients(self.params[net])
            self.optimizers[net].step()
            if net == "G" and self.ema is not None:
                self.ema.update(self.iteration + 1)

    def _phases(self) -> list[Phase]:
        r = self.recipe
        phases: list[Phase] = []
        if r.d_update == "separate":
            # one D update is two optimiser steps, one per half (the Keras CIFAR-10 tutorial)
            for _ in range(r.d_steps):
                phases += [Phase("D_real", ("D",), self._d_real_half), Phase("D_fake", ("D",), self._d_fake_half)]
        else:
            d_update, extra = (self._d_joint, r.d_steps) if r.d_update == "joint" else (self._d_both, r.d_steps - 1)
            phases += [Phase("D", ("D",), d_update) for _ in range(extra)]
        if r.d_update == "simultaneous":
            phases.append(Phase("GD", ("G", "D"), self._gd_simultaneous))
        else:
            phases.append(Phase("G", ("G",), self._g_main))
        if self.lazy_reg:  # last, on the images of the iteration's last D update (StyleGAN2's order)
            phases.append(Phase("D_reg", ("D",), self._d_regularize, every=r.reg_every))
        return phases

    # --- the one path into D ---------------------------------------------------------------
    def run_D(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, for_penalty: bool = False) -> torch.Tensor:
        if self.augment is not None:
            images = self.augment(images)
        inputs = (images,) if labels is None else (images, labels)
        if for_penalty:
            return self.D(*inputs).float()
        with autocast(self.device, self.amp):
            return self.D_forward(*inputs).float()  # losses in float32 whatever the autocast

    # --- helpers ----------------------------------------------------------------------------
    def _own_share(self, drawn: torch.Tensor) -> torch.Tensor:
        """This process's rows of a draw made for the whole (global) batch: all of it on one process."""
        rank, world = self.latent_share
        n = drawn.shape[0] // world
        return drawn[rank * n : (rank + 1) * n] if world > 1 else drawn

    def _latents(self, n: int) -> torch.Tensor:
        world = self.latent_share[1]
        return self._own_share(torch.randn(n * world, self.recipe.latent_dim, generator=self.latent_rng, device=self.device))

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.G_forward(z) if labels is None else self.G_forward(z, labels)

    def _g_labels(self, n: int) -> torch.Tensor | None:
        """Classes for G's own batch, as frequent as in the training set (None: unconditional)."""
        if self.class_weights is None:
            return None
        world = self.latent_share[1]
        return self._own_share(torch.multinomial(self.class_weights, n * world, replacement=True, generator=self.latent_rng))

    def _fakes_for_d(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        # D's half of the Keras loop: G is only evaluated (Keras' g_model.predict), no graph kept
        with torch.no_grad(), autocast(self.device, self.amp):
            return self._generate(self._latents(n), labels).float()

    def _report_d(self, d_real=None, d_fake=None, real_logits=None, fake_logits=None) -> None:
        if d_real is not None:
            self.stats.add("d_loss_real", d_real)
        if d_fake is not None:
            self.stats.add("d_loss_fake", d_fake)
        if self.loss.has_accuracy:
            if real_logits is not None:
                self.stats.add("d_acc_real", self.loss.says_real(real_logits).float().mean())
            if fake_logits is not None:
                self.stats.add("d_acc_fake", (~self.loss.says_real(fake_logits)).float().mean())

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The regulariser's loss term, its statistic reported under its name."""
        labels = self.last_labels  # real, fake and any mix of them share the real images' classes
        value = self.regularizer.value(lambda x: self.run_D(x, labels, for_penalty=True), real, fake, self.penalty_rng)
        self.stats.add(self.recipe.regularizer, value)
        return value * (self.recipe.reg_weight * self.regularizer.factor * scale)

    def _with_penalty(self, d_loss: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The penalty joins every D update when it is not lazy."""
        self.last_real, self.last_fake, self.last_labels = real, fake, labels
        if self.regularizer is None or self.lazy_reg:
            return d_loss
        return d_loss + self._penalty(real, fake)

    # --- phases -------------------------------------------------------------------------------
    def _d_real_half(self) -> dict[str, torch.Tensor]:
        """Keras CIFAR-10, first D step: a real half-batch."""
        self.last_real, self.last_labels = self.real.next_labelled()
        logits = self.run_D(self.last_real, self.last_labels)
        d_real = self.loss.d_real(logits)
        self._report_d(d_real=d_real, real_logits=logits)
        return {"D": d_real}

    def _d_fake_half(self) -> dict[str, torch.Tensor]:
        """Keras CIFAR-10, second D step: a fake half-batch (the penalty, if any, goes here)."""
        labels = self.last_labels
        fake = self._fakes_for_d(self.recipe.batch_size // 2, labels)
        logits = self.run_D(fake, labels)
        d_fake = self.loss.d_fake(logits)
        self._report_d(d_fake=d_fake, fake_logits=logits)
        return {"D": self._with_penalty(d_fake, self.last_real, fake, labels)}

    def _d_joint(self) -> dict[str, torch.Tensor]:
        """Keras MNIST: real and fake halves stacked into one batch, one D step."""
        half = self.recipe.batch_size // 2
        real, labels = self.real.next_labelled()
        fake = self._fakes_for_d(half, labels)
        logits = self.run_D(torch.cat([real, fake]), None if labels is None else torch.cat([labels, labels]))
        real_logits, fake_logits = logits[:half], logits[half:]
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        self._report_d(d_real, d_fake, real_logits, fake_logits)
        # Keras averages over the stacked batch: the mean of the two halves' means
        return {"D": self._with_penalty(0.5 * (d_real + d_fake), real, fake, labels)}

    def _d_both(self) -> dict[str, torch.Tensor]:
        """A plain D update on a full real and a full fake batch (simultaneous mode's extra D steps)."""
        real, labels = self.real.next_labelled()
        fake = self._fakes_for_d(real.shape[0], labels)
        real_logits, fake_logits = self.run_D(real, labels), self.run_D(fake, labels)
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        self._report_d(d_real, d_fake, real_logits, fake_logits)
        return {"D": self._with_penalty(d_real + d_fake, real, fake, labels)}

    def _d_regularize(self) -> dict[str, torch.Tensor]:
        """Lazy regularisation (StyleGAN2): the penalty alone, every reg_every iterations, times the interval."""
        return {"D": self._penalty(self.last_real, self.last_fake, scale=self.recipe.reg_every)}

    def _g_main(self) -> dict[str, torch.Tensor]:
        """G on a full batch of latents against the "real" target."""
        n = self.recipe.batch_size
        z = self._latents(n)
        labels = self._g_labels(n)
        with autocast(self.device, self.amp):
            fake = self._generate(z, labels)
        g_loss = self.loss.g(self.run_D(fake, labels))
        self.stats.add("g_loss", g_loss)
        return {"G": g_loss}

    def _gd_simultaneous(self) -> dict[str, torch.Tensor]:
        """TensorFlow tutorial: one forward pass; D and G gradients both taken from it."""
        real, labels = self.real.next_labelled()
        z = self._latents(real.shape[0])
        with autocast(self.device, self.amp):
            fake = self._generate(z, labels)
        real_logits, fake_logits = self.run_D(real, labels), self.run_D(fake, labels)
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        g_loss = self.loss.g(fake_logits)
        self._report_d(d_real, d_fake, real_logits, fake_logits)
        self.stats.add("g_loss", g_loss)
        d_loss = self._with_penalty(d_real + d_fake, real, fake.detach(), labels)
        return {"G": g_loss, "D": d_loss}
