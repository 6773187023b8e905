"""One training iteration: a short list of phases, run by one generic runner.

A phase names the networks it updates, draws its random inputs and computes their losses; the
runner does the rest the same way for every phase: zero the gradients, the phase's draws
(real batch, latents, classes, augmentation parameters: eager, from their generators), its
computation (a pure function of the draws), ``backward(inputs=params)`` for each network in turn
(so a loss never deposits gradients in the other network, with no ``requires_grad_`` toggling),
an optimiser step, and an after-hook (the generator EMA after G's step).

With ``compile=True`` each phase's computation is one ``torch.compile`` unit: G, augmentation,
D, losses and statistics traced together, forward and backward, with no graph break (a draw
from a ``torch.Generator`` would break the graph, which is why draws come first). A compile
that fails falls back to the eager computation of the same draws, once, with one line.

The recipe decides the phase list:

    d_update      one D update (repeated d_steps times)             then
    separate      D on a real half-batch; D on a fake half-batch    G on a full batch
    joint         D on the two halves stacked                       G on a full batch
    simultaneous  (d_steps - 1 plain D updates, then) D and G from one forward pass

plus, with a lazy regulariser (``reg_every > 1``), a D regularisation phase at the end of every
``reg_every``-th iteration, on the images of the last D update, its loss scaled by the interval
(the optimiser's lr and betas are adjusted for it where the optimiser is made, in the loop).

Every call of D goes through ``run_D``: augmentation (if on), then D under autocast, logits in
float32. Penalties call it with ``for_penalty=True``, always eagerly and in float32, because
they back-propagate through an input gradient (double backward, which compiled graphs lack).

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

import torch

from ganctl.device import autocast
from ganctl.losses import GANLoss
from ganctl.recipe import Recipe
from ganctl.regularizers import Regularizer
from ganctl.training.parts import (
    CORE_STATS, Draws, Iteration, Networks, Phase, PhaseResult, Share, Streams, join_images, split_draws,
)  # fmt: skip
from ganctl.training.stats import StepStats

__all__ = ["CORE_STATS", "Iteration", "Networks", "Phase", "PhaseResult", "Share", "Streams", "TrainStep"]


class TrainStep:
    # A relativistic ("paired") loss gets each real logit with a fake's: D's updates pair their
    # real and fake halves, G's pairs its images with the last D update's real ones.
    steps_paired_losses = True
    def __init__(
        self,
        nets: Networks,
        streams: Streams,
        *,
        recipe: Recipe,
        loss: GANLoss,
        regularizer: Regularizer | None,
        stats: StepStats,
        device: torch.device,
        amp: bool,
        class_weights: torch.Tensor | None = None,
        share: Share = Share(),
        micro_batch: int | None = None,
        compile: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.nets = nets
        self.G, self.D, self.ema = nets.G, nets.D, nets.ema
        self.optimizers = {"G": nets.g_optimizer, "D": nets.d_optimizer}
        self.params = {
            "G": [p for p in nets.G.parameters() if p.requires_grad],
            "D": [p for p in nets.D.parameters() if p.requires_grad],
        }
        self.streams, self.real, self.augment, self.ada = streams, streams.real, streams.augment, streams.ada
        self.loss, self.recipe, self.regularizer = loss, recipe, regularizer
        self.device, self.amp, self.stats = device, amp, stats
        self.class_weights = class_weights  # images per class, on the device; None: unconditional
        # under torchrun: latents drawn for the whole (global) batch, of which this process keeps its share
        self.share = share
        self.lazy_reg = regularizer is not None and recipe.reg_every > 1
        self.micro_batch = micro_batch  # images (of each half) through the networks at a time; None: all
        self.phases = self._phases()
        self.log = log
        # one compiled function per kind of phase (repeated D updates share theirs)
        self.compiled: dict[Callable, Callable] | None = None
        if compile:
            self._compile()

    def __call__(self, iteration: int) -> None:
        """Run iteration number ``iteration`` (0-based: the count of iterations already done)."""
        it = Iteration(iteration)
        for phase in self.phases:
            if iteration % phase.every == 0:
                self._run(phase, it)
        if self.ada is not None:  # p follows D's overfitting (every few iterations, on the device)
            self.ada.adjust(iteration + 1, self.share.average_tensor)
            self.stats.add("ada_p", self.ada.p)

    # --- the runner -----------------------------------------------------------------------
    def _run(self, phase: Phase, it: Iteration) -> None:
        for net in phase.nets:
            self.optimizers[net].zero_grad(set_to_none=True)
        drawn = phase.draw(it)
        # --micro-batch: the phase's draws in equal slices, gradients summed over them (each
        # slice's losses are means over the slice: a k-th of each keeps the full batch's scale)
        chunks = split_draws(drawn, self.micro_batch) if self.micro_batch and phase.compilable else [drawn]
        d_images = []
        for chunk in chunks:
            result = self._compute(phase, chunk)
            for name, value in result.stats.items():
                self.stats.add(name, value)
            if self.ada is not None and "ada_r" in result.stats:
                self.ada.observe(result.stats["ada_r"])
            losses = dict(result.losses)
            if result.d_images is not None:
                d_images.append(result.d_images)
                if self.regularizer is not None and not self.lazy_reg:  # a penalty that is not lazy joins now
                    losses["D"] = losses["D"] + self._penalty(*result.d_images)
            for i, net in enumerate(phase.nets):
                loss = losses[net] / len(chunks) if len(chunks) > 1 else losses[net]
                # keep the shared graph alive for the next network's backward (simultaneous update)
                loss.backward(inputs=self.params[net], retain_graph=i + 1 < len(phase.nets))
        if d_images:  # remembered for the lazy regularisation phase
            it.real, it.fake, it.labels = join_images(d_images)
        for net in phase.nets:
            if self.share.average_gradients is not None:
                self.share.average_gradients(self.params[net])
            self.optimizers[net].step()
            if net == "G" and self.ema is not None:
                self.ema.update(it.index + 1)

    def _compute(self, phase: Phase, drawn: Draws) -> PhaseResult:
        compiled = self.compiled.get(phase.compute) if self.compiled is not None and phase.compilable else None
        if compiled is None:
            return phase.compute(drawn)
        try:
            return compiled(drawn)
        except Exception as exc:  # noqa: BLE001 - inductor needs a working C++ (or CUDA) toolchain
            if not _is_compile_failure(exc):
                raise
            # nothing has run yet (the draws are made): the eager path takes the same draws
            self.compiled = None
            if self.log is not None:
                self.log(f"torch.compile failed ({type(exc).__name__}); training in eager mode (--no-compile skips compiling)")
            return phase.compute(drawn)

    def _compile(self) -> None:
        if self.recipe.d_update == "simultaneous":
            # The simultaneous update back-propagates G's and D's losses through one graph
            # (retain_graph), which compiled graphs with donated buffers refuse.
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
        self.compiled = {}
        for phase in self.phases:
            if phase.compilable and phase.compute not in self.compiled:
                self.compiled[phase.compute] = torch.compile(phase.compute)

    def _phases(self) -> list[Phase]:
        r = self.recipe
        phases: list[Phase] = []
        if r.d_update == "separate":
            # one D update is two optimiser steps, one per half (the Keras CIFAR-10 tutorial)
            for _ in range(r.d_steps):
                phases += [
                    Phase("D_real", ("D",), self._draw_d_real_half, self._d_real_half),
                    Phase("D_fake", ("D",), self._draw_d_fake_half, self._d_fake_half),
                ]
        else:
            if r.d_update == "joint":
                d_update, extra = Phase("D", ("D",), self._draw_d_joint, self._d_joint), r.d_steps
            else:
                d_update, extra = Phase("D", ("D",), self._draw_d_both, self._d_both), r.d_steps - 1
            phases += [d_update] * extra
        if r.d_update == "simultaneous":
            # the same draws as a plain D update: real, latents, two augmentations
            phases.append(Phase("GD", ("G", "D"), self._draw_d_both, self._gd_simultaneous))
        else:
            phases.append(Phase("G", ("G",), self._draw_g, self._g_main))
        if self.lazy_reg:  # last, on the images of the iteration's last D update (StyleGAN2's order)
            phases.append(Phase("D_reg", ("D",), self._draw_d_images, self._d_regularize, every=r.reg_every, compilable=False))
        return phases

    # --- the one path into D ---------------------------------------------------------------
    def run_D(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, *,
        augmentation: dict[str, torch.Tensor] | None = None, for_penalty: bool = False,
    ) -> torch.Tensor:
        """D's logits in float32: augmented as drawn (``augmentation``; a fresh draw if None)."""
        if self.augment is not None:
            images = self.augment(images) if augmentation is None else self.augment.apply(images, augmentation)
        if self.recipe.d_input_scale != 1:  # after augmentation: penalties stay in pixel units
            images = images * self.recipe.d_input_scale
        inputs = (images,) if labels is None else (images, labels)
        if for_penalty:  # float32: a penalty back-propagates through an input gradient
            return self.D(*inputs).float()
        with autocast(self.device, self.amp):
            return self.D(*inputs).float()  # losses in float32 whatever the autocast

    # --- draws (eager) ------------------------------------------------------------------------
    def _own_share(self, drawn: torch.Tensor) -> torch.Tensor:
        """This process's rows of a draw made for the whole (global) batch: all of it on one process."""
        rank, world = self.share.rank, self.share.world
        n = drawn.shape[0] // world
        return drawn[rank * n : (rank + 1) * n] if world > 1 else drawn

    def _latents(self, n: int) -> torch.Tensor:
        world = self.share.world
        return self._own_share(torch.randn(n * world, self.recipe.latent_dim, generator=self.streams.latents, device=self.device))

    def _g_labels(self, n: int) -> torch.Tensor | None:
        """Classes for G's own batch, as frequent as in the training set (None: unconditional)."""
        if self.class_weights is None:
            return None
        world = self.share.world
        return self._own_share(torch.multinomial(self.class_weights, n * world, replacement=True, generator=self.streams.latents))

    def _augmentation(self, n: int) -> dict[str, torch.Tensor] | None:
        """The parameters of one DiffAugment call on ``n`` images (None: no augmentation)."""
        if self.augment is None:
            return None
        size = self.recipe.image_size
        return self.augment.draw(n, size, size, self.device)

    def _draw_d_real_half(self, it: Iteration) -> Draws:
        real, labels = self.real.next_labelled()
        it.real, it.labels = real, labels  # the fake half is made for these classes; its penalty takes these images
        return {"real": real, "labels": labels, "aug": self._augmentation(real.shape[0])}

    def _draw_d_fake_half(self, it: Iteration) -> Draws:
        n = self.recipe.batch_size // 2
        return {"real": it.real, "labels": it.labels, "z": self._latents(n), "aug": self._augmentation(n)}

    def _draw_d_joint(self, it: Iteration) -> Draws:
        real, labels = self.real.next_labelled()
        z = self._latents(self.recipe.batch_size // 2)
        return {"real": real, "labels": labels, "z": z, "aug_pair": self._augmentation(2 * real.shape[0])}

    def _draw_d_both(self, it: Iteration) -> Draws:
        real, labels = self.real.next_labelled()
        z = self._latents(real.shape[0])
        return {"real": real, "labels": labels, "z": z,
                "aug_real": self._augmentation(real.shape[0]), "aug_fake": self._augmentation(real.shape[0])}  # fmt: skip

    def _draw_g(self, it: Iteration) -> Draws:
        n = self.recipe.batch_size
        z = self._latents(n)
        if self.loss.paired:  # G's images paired with the last D update's real ones, of their classes
            index = torch.arange(n, device=self.device) % it.real.shape[0]
            labels = None if it.labels is None else it.labels[index]
            return {"z": z, "labels": labels, "aug": self._augmentation(n), "real": it.real[index], "aug_real": self._augmentation(n)}
        return {"z": z, "labels": self._g_labels(n), "aug": self._augmentation(n)}

    @staticmethod
    def _draw_d_images(it: Iteration) -> Draws:
        # the lazy penalty works on the last D update's images; its own random draws are the penalty's
        return {"real": it.real, "fake": it.fake, "labels": it.labels}

    # --- computations (pure functions of the draws: what a compiled step traces) -------------
    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.G(z) if labels is None else self.G(z, labels)

    def _fakes_for_d(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # D's half of the Keras loop: G is only evaluated (Keras' g_model.predict), no graph kept
        with torch.no_grad(), autocast(self.device, self.amp):
            return self._generate(z, labels).float()

    def _d_stats(self, d_real=None, d_fake=None, real_logits=None, fake_logits=None) -> dict[str, torch.Tensor]:
        stats = {}
        if d_real is not None:
            stats["d_loss_real"] = d_real
        if d_fake is not None:
            stats["d_loss_fake"] = d_fake
        if self.ada is not None and real_logits is not None:  # ADA's overfitting heuristic r_t
            stats["ada_r"] = real_logits.sign().mean()
        if self.loss.has_accuracy:
            if real_logits is not None:
                stats["d_acc_real"] = self.loss.says_real(real_logits).float().mean()
            if fake_logits is not None:
                stats["d_acc_fake"] = (~self.loss.says_real(fake_logits)).float().mean()
        return stats

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None, scale: float = 1.0) -> torch.Tensor:
        """The regulariser's loss term (eager: double backward), its statistic reported under its name.

        Real, fake and any mix of them share the real images' classes (``labels``)."""
        value = self.regularizer.value(lambda x: self.run_D(x, labels, for_penalty=True), real, fake, self.streams.penalty)
        self.stats.add(self.recipe.regularizer, value)
        return value * (self.recipe.reg_weight * self.regularizer.factor * scale)

    def _d_real_half(self, drawn: Draws) -> PhaseResult:
        """Keras CIFAR-10, first D step: a real half-batch."""
        real, labels = drawn["real"], drawn["labels"]
        logits = self.run_D(real, labels, augmentation=drawn["aug"])
        d_real = self.loss.d_real(logits)
        # the penalty waits for the fake half; its real images are this batch
        return PhaseResult({"D": d_real}, self._d_stats(d_real=d_real, real_logits=logits))

    def _d_fake_half(self, drawn: Draws) -> PhaseResult:
        """Keras CIFAR-10, second D step: a fake half-batch (the penalty, if any, goes here)."""
        labels = drawn["labels"]
        fake = self._fakes_for_d(drawn["z"], labels)
        logits = self.run_D(fake, labels, augmentation=drawn["aug"])
        d_fake = self.loss.d_fake(logits)
        return PhaseResult({"D": d_fake}, self._d_stats(d_fake=d_fake, fake_logits=logits), (drawn["real"], fake, labels))

    def _d_joint(self, drawn: Draws) -> PhaseResult:
        """Keras MNIST: real and fake halves stacked into one batch, one D step."""
        real, labels = drawn["real"], drawn["labels"]
        half = real.shape[0]
        fake = self._fakes_for_d(drawn["z"], labels)
        logits = self.run_D(torch.cat([real, fake]), None if labels is None else torch.cat([labels, labels]), augmentation=drawn["aug_pair"])
        real_logits, fake_logits = logits[:half], logits[half:]
        if self.loss.paired:
            return PhaseResult(*self._d_paired(real_logits, fake_logits), (real, fake, labels))
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        # Keras averages over the stacked batch: the mean of the two halves' means
        return PhaseResult({"D": 0.5 * (d_real + d_fake)}, self._d_stats(d_real, d_fake, real_logits, fake_logits), (real, fake, labels))

    def _d_paired(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[dict, dict]:
        """A relativistic loss's D update: each real image's logit against a fake's."""
        d_loss = self.loss.d_pair(real_logits, fake_logits)
        return {"D": d_loss}, {"d_loss": d_loss, **self._d_stats(real_logits=real_logits, fake_logits=fake_logits)}

    def _d_both(self, drawn: Draws) -> PhaseResult:
        """A plain D update on a full real and a full fake batch (simultaneous mode's extra D steps)."""
        real, labels = drawn["real"], drawn["labels"]
        fake = self._fakes_for_d(drawn["z"], labels)
        real_logits = self.run_D(real, labels, augmentation=drawn["aug_real"])
        fake_logits = self.run_D(fake, labels, augmentation=drawn["aug_fake"])
        if self.loss.paired:
            return PhaseResult(*self._d_paired(real_logits, fake_logits), (real, fake, labels))
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        return PhaseResult({"D": d_real + d_fake}, self._d_stats(d_real, d_fake, real_logits, fake_logits), (real, fake, labels))

    def _d_regularize(self, drawn: Draws) -> PhaseResult:
        """Lazy regularisation (StyleGAN2): the penalty alone, every reg_every iterations, times the interval."""
        penalty = self._penalty(drawn["real"], drawn["fake"], drawn["labels"], scale=self.recipe.reg_every)
        return PhaseResult({"D": penalty}, {})

    def _g_main(self, drawn: Draws) -> PhaseResult:
        """G on a full batch of latents against the "real" target."""
        labels = drawn["labels"]
        with autocast(self.device, self.amp):
            fake = self._generate(drawn["z"], labels)
        fake_logits = self.run_D(fake, labels, augmentation=drawn["aug"])
        if self.loss.paired:
            with torch.no_grad():  # the real side of each pair: G's gradient flows through its own images only
                real_logits = self.run_D(drawn["real"], labels, augmentation=drawn["aug_real"])
            g_loss = self.loss.g_pair(fake_logits, real_logits)
        else:
            g_loss = self.loss.g(fake_logits)
        return PhaseResult({"G": g_loss}, {"g_loss": g_loss})

    def _gd_simultaneous(self, drawn: Draws) -> PhaseResult:
        """TensorFlow tutorial: one forward pass; D and G gradients both taken from it."""
        real, labels = drawn["real"], drawn["labels"]
        with autocast(self.device, self.amp):
            fake = self._generate(drawn["z"], labels)
        real_logits = self.run_D(real, labels, augmentation=drawn["aug_real"])
        fake_logits = self.run_D(fake, labels, augmentation=drawn["aug_fake"])
        if self.loss.paired:
            losses, stats = self._d_paired(real_logits, fake_logits)
            g_loss = self.loss.g_pair(fake_logits, real_logits.detach())
            return PhaseResult({"G": g_loss, **losses}, {**stats, "g_loss": g_loss}, (real, fake.detach(), labels))
        d_real, d_fake = self.loss.d_real(real_logits), self.loss.d_fake(fake_logits)
        g_loss = self.loss.g(fake_logits)
        stats = {**self._d_stats(d_real, d_fake, real_logits, fake_logits), "g_loss": g_loss}
        return PhaseResult({"G": g_loss, "D": d_real + d_fake}, stats, (real, fake.detach(), labels))


def _is_compile_failure(exc: Exception) -> bool:
    """Whether ``exc`` came from torch.compile's tracing or code generation (not from running the step)."""
    module = type(exc).__module__
    return module.startswith(("torch._dynamo", "torch._inductor")) or "CompilationError" in type(exc).__name__
