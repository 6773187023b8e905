"""A plain reference of the seed recipes' training, written apart from the trainer: the specification
that ``test_refactor_guard`` holds ``ganctl train`` to.

It knows only what the seed recipes use: BCE losses, Adam, the three ways of updating D, random
or shuffled real batches, no augmentation, regulariser, EMA, spectral norm or LR schedule, one D
update per G update, float32 on the CPU, channels_last. Everything else (networks, their
initialisation, the images) comes from the same public places the trainer takes them from.

What the trainer promises, and this file writes down step by step:

* ``torch.manual_seed(seed)``, then G and D built and initialised by the architecture's
  factory (dropout draws from the global generator from then on);
* both networks and the images in channels_last; Adam per network with the recipe's lr, betas, eps;
* real batches drawn with their own ``torch.Generator`` seeded ``seed + 1``: ``randint`` with
  replacement ("random") or a ``randperm`` epoch walked in full batches ("shuffle"), converted
  from uint8 as ``x * (high - low) / 255 + low``; a Keras-style update (separate, joint) takes
  half a batch of real images per iteration, the TF-style (simultaneous) a whole one;
* latents from a ``torch.Generator`` seeded ``seed + 2``, in the order the updates need them;
* per iteration:

  - separate: D on the real half (one Adam step); D on G's fakes for fresh latents (no gradient
    through G; one step); G on a full batch of fresh latents against the "real" target;
  - joint: D on the real and fake halves stacked (the mean of the two halves' losses); then G;
  - simultaneous: one forward pass (G's fakes for a full batch, D on real and on fake); G's
    gradients from G's loss, D's from D's, both from that pass; G steps, then D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganctl.data import load_labelled
from ganctl.registry import ARCHITECTURES


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def set_gradients(loss: torch.Tensor, params: list[torch.Tensor], keep_graph: bool = False) -> None:
    """``params``' gradients: those of ``loss`` with respect to them alone (nothing accumulates)."""
    for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=keep_graph)):
        p.grad = g


def step_with(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
    """One optimiser step on the gradients of ``loss`` with respect to ``params``."""
    set_gradients(loss, params)
    optimizer.step()


def train_reference(arch_name: str, *, d_update: str, steps: int, seed: int, batch_size: int, limit: int,
                    image_size: int | None = None, dataset: str = "synthetic") -> torch.nn.Module:
    """The generator after ``steps`` iterations of the recipe of ``arch_name`` (its other fields as registered)."""
    arch = ARCHITECTURES.get(arch_name).obj
    r = arch.recipe.replace(dataset=dataset, batch_size=batch_size, d_update=d_update, image_size=image_size)
    # what this reference covers: the seed recipes as they are registered
    assert r.loss == "bce" and r.d_steps == 1 and r.regularizer == "none" and r.ema_kimg is None
    assert not r.augment and r.spectral_norm == "none" and r.lr_decay == "constant" and r.d_input_scale == 1
    assert not r.conditional and r.sampling in ("random", "shuffle")

    layout = torch.channels_last
    images = load_labelled(dataset, data_dir=None, image_size=r.image_size, channels=r.channels, download=False, limit=limit).images
    images = images.contiguous(memory_format=layout)  # uint8 (N, C, H, W)
    n_images = images.shape[0]
    low, high = r.pixel_range

    torch.manual_seed(seed)
    G, D = arch.build(**arch.arch_args(r.image_size, r.channels, r.latent_dim))
    G = G.to(memory_format=layout)
    D = D.to(memory_format=layout)
    g_params = [p for p in G.parameters() if p.requires_grad]
    d_params = [p for p in D.parameters() if p.requires_grad]
    g_opt = torch.optim.Adam(g_params, lr=r.g_lr, betas=(r.beta1, r.beta2), eps=r.adam_eps)
    d_opt = torch.optim.Adam(d_params, lr=r.d_lr, betas=(r.beta1, r.beta2), eps=r.adam_eps)

    real_rng = torch.Generator().manual_seed(seed + 1)
    latent_rng = torch.Generator().manual_seed(seed + 2)
    n_real = batch_size if d_update == "simultaneous" else batch_size // 2
    epoch_order, position = torch.empty(0, dtype=torch.long), 0

    def real_batch() -> torch.Tensor:
        nonlocal epoch_order, position
        if r.sampling == "random":
            index = torch.randint(n_images, (n_real,), generator=real_rng)
        else:
            if position + n_real > len(epoch_order):
                epoch_order, position = torch.randperm(n_images, generator=real_rng), 0
            index = epoch_order[position : position + n_real]
            position += n_real
        return images[index].float() * ((high - low) / 255.0) + low

    def latents(n: int) -> torch.Tensor:
        return torch.randn(n, r.latent_dim, generator=latent_rng)

    real_target = 1.0 - r.label_smoothing
    for _ in range(steps):
        if d_update == "separate":
            real = real_batch()
            step_with(d_opt, bce(D(real).float(), real_target), d_params)
            with torch.no_grad():
                fake = G(latents(batch_size // 2)).float()
            step_with(d_opt, bce(D(fake).float(), 0.0), d_params)
        elif d_update == "joint":
            real = real_batch()
            with torch.no_grad():
                fake = G(latents(batch_size // 2)).float()
            logits = D(torch.cat([real, fake])).float()
            half = real.shape[0]
            step_with(d_opt, 0.5 * (bce(logits[:half], real_target) + bce(logits[half:], 0.0)), d_params)
        if d_update in ("separate", "joint"):
            g_loss = bce(D(G(latents(batch_size))).float(), 1.0)
            step_with(g_opt, g_loss, g_params)
        else:  # simultaneous
            real = real_batch()
            fake = G(latents(batch_size))
            real_logits, fake_logits = D(real).float(), D(fake).float()
            g_loss = bce(fake_logits, 1.0)
            d_loss = bce(real_logits, real_target) + bce(fake_logits, 0.0)
            set_gradients(g_loss, g_params, keep_graph=True)  # the pass is G's and D's both
            set_gradients(d_loss, d_params)
            g_opt.step()
            d_opt.step()
    return G
