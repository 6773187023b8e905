"""The training recipe an architecture carries.

A recipe is everything a seed tutorial fixed besides the layers: data, batch, optimiser,
loss, how the discriminator is updated, initialisation. ``ganctl train --arch NAME`` runs
the recipe as it is; every field can be overridden from the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

DUpdate = Literal["separate", "joint", "simultaneous"]
Sampling = Literal["random", "shuffle"]
Init = Literal["keras", "dcgan", "torch"]
LRDecay = Literal["constant", "linear"]
SpectralNorm = Literal["none", "d", "g", "both"]
Fit = Literal["crop", "pad", "stretch"]  # how a folder's non-square images become square (a run option)

# The allowed values, read from the Literal types (kept importable under their old names).
D_UPDATES = get_args(DUpdate)
SAMPLINGS = get_args(Sampling)
INITS = get_args(Init)
LR_DECAYS = get_args(LRDecay)
SPECTRAL_NORMS = get_args(SpectralNorm)


@dataclass(frozen=True)
class Recipe:
    # --- data -------------------------------------------------------------------------
    dataset: str = "synthetic"  # registered dataset name, or folder:PATH
    image_size: int = 32  # square images, in pixels
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    pixel_range: tuple[float, float] = (-1.0, 1.0)  # what real images are scaled to; matches G's output
    # --- networks -----------------------------------------------------------------------
    latent_dim: int = 100  # size of z, drawn from N(0, I)
    init: Init = "torch"  # keras: glorot-uniform/zero bias; dcgan: N(0, .02); torch: PyTorch defaults
    # Class-conditional networks, G(z, y) and D(x, y), trained on the dataset's labels
    # (see docs/conditional.md); the architecture's factory must take num_classes.
    conditional: bool = False
    # --- optimisation ------------------------------------------------------------------
    loss: str = "bce"  # registered loss name
    batch_size: int = 128  # images per iteration (see d_update for how it is split)
    epochs: int = 100
    # The length in thousands of images shown to D (StyleGAN's kimg): a recipe that states its
    # length this way trains as long on a folder of 300 images as on its own dataset. None: the
    # length is `epochs`. Setting epochs (--epochs) clears it.
    kimg: float | None = None
    # With kimg, grids (sample_every) and evaluations (eval_every) count ticks of this many
    # thousand images instead of epochs, and checkpoints come once a tick.
    tick_kimg: float = 4.0
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    adam_eps: float = 1e-8  # Keras' Adam uses 1e-7, PyTorch's 1e-8
    label_smoothing: float = 0.0  # one-sided: the real target becomes 1 - label_smoothing
    # How one iteration updates D:
    #   separate     half a batch of real images, then half a batch of fakes, one optimiser step
    #                each (Keras tutorials: lets D's accuracy be read on each half)
    #   joint        the two halves stacked into one batch, one optimiser step
    #   simultaneous a full batch of real and a full batch of fake from one forward pass; D and G
    #                both step from it (TensorFlow tutorial's GradientTape loop)
    d_update: DUpdate = "separate"
    # How real images are drawn: "random" picks a random batch each iteration (Keras' randint,
    # floor(N / batch) iterations an epoch); "shuffle" walks a shuffled epoch in full batches.
    sampling: Sampling = "random"
    d_steps: int = 1  # D updates per G update, in every d_update mode (5 for WGAN-style critics)
    # --- the modern ingredients (all off for the tutorials' recipes) ------------------------------
    # A regulariser of D (see `ganctl list`): "none", "r1" (gradient norm on reals), "r2" (on
    # fakes), "gp" (WGAN-GP on interpolates). Added to D's loss times reg_weight; every
    # reg_every iterations in a phase of its own ("lazy", StyleGAN2) when reg_every > 1.
    regularizer: str = "none"
    reg_weight: float = 10.0
    reg_every: int = 1
    # Generator EMA: half-life in thousands of images (StyleGAN2 uses 10). Grids,
    # snapshots, evaluation and the final generator use the averaged weights. None: off.
    ema_kimg: float | None = None
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen so far; 0: none
    ema_start: int = 0  # iterations before averaging starts (the EMA copies G until then)
    # Augmentation of every image D sees: a comma list of DiffAugment's (Zhao et al. 2020) color,
    # translation, cutout and "ada", adaptive augmentation (Karras et al. 2020); "" = off.
    augment: str = ""
    ada_target: float = 0.6  # ADA: the E[sign(D(real))] it steers towards (0.6 in the paper)
    ada_kimg: float = 500.0  # ADA: thousands of images for p to go from 0 to 1 at the fastest (500 in the paper)
    freeze_d: int = 0  # FreezeD (Mo et al. 2020): D's first N layers with weights keep their weights
    lr_decay: LRDecay = "constant"  # "linear": both learning rates fall linearly to 0 at the last step
    spectral_norm: SpectralNorm = "none"  # spectral normalisation of "d", "g" or "both" networks' weights
    # D sees every image multiplied by this. A spectral-norm D is 1-Lipschitz: two images a few
    # grey levels apart (0.03 in [-1, 1]) get almost the same logit, and the hinge's margin of 1
    # is out of reach; a scale of k makes D k-Lipschitz in pixel units (docs/recipes.md). 1: off.
    d_input_scale: float = 1.0
    # --- outputs -------------------------------------------------------------------------
    sample_every: int = 10  # epochs between sample grids and generator snapshots
    sample_grid: int = 49  # images in each grid (a square number)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` applied; ``None`` values are ignored (CLI defaults)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown recipe fields: {sorted(unknown)}")
        if "epochs" in changes and "kimg" not in changes:  # a length in epochs replaces one in images
            changes["kimg"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pixel_range"] = list(self.pixel_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "pixel_range" in d:
            d["pixel_range"] = tuple(d["pixel_range"])
        return cls(**d)
