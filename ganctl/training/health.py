"""Watching a run for the ways GAN training goes wrong.

* a non-finite loss: the run stops, and the last good checkpoint stays;
* the discriminator loss crashing towards zero for a sustained stretch (the Keras CIFAR-10
  tutorial: "a crash in the discriminator loss indicates that the generator model has started
  generating rubbish examples");
* the discriminator winning outright: accuracy 1.0 on real and on fake images for a sustained
  stretch (the generator then gets no useful gradient);
* a generator whose samples stop varying (mode collapse), or are blank (one flat colour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganctl.errors import GanctlError
from ganctl.recipe import Recipe


class TrainingDiverged(GanctlError):
    exit_code = 3


def check_finite(stats: dict[str, float], step: int, last_checkpoint: str | None) -> None:
    bad = {k: v for k, v in stats.items() if not math.isfinite(v)}
    if bad:
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        names = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingDiverged(
            f"training diverged: non-finite loss by step {step} ({names}); {where}; try a lower learning rate"
        )


def remedies(recipe: Recipe) -> str:
    """What usually helps when D overpowers G, named by the options that do it: only what
    ``recipe`` does not use already."""
    advice = ["a lower D learning rate (--d-lr)"]
    if recipe.spectral_norm not in ("d", "both"):
        advice.append("--spectral-norm d")
    policy = [p for p in recipe.augment.split(",") if p]
    missing = [p for p in ("color", "translation") if p not in policy]
    if missing:
        advice.append(f"--augment {','.join(policy + missing)}")
    if recipe.regularizer == "none":
        advice.append("--reg r1")
    if recipe.loss != "hinge":
        advice.append("--loss hinge")
    if len(advice) == 1:
        return f"usual remedy: {advice[0]}"
    return f"usual remedies: {', '.join(advice[:-1])}{',' if len(advice) > 2 else ''} or {advice[-1]}"


@dataclass
class SustainedWatch:
    """Reports a condition once it has held for ``window`` log records in a row; once, until it clears."""

    window: int = 5
    _run: int = 0
    reported: bool = False

    def _observe(self, holds: bool) -> bool:
        """True once, when the condition is first confirmed (again only after a recovery)."""
        self._run = self._run + 1 if holds else 0
        if self._run < self.window:
            self.reported = False
            return False
        if self.reported:
            return False
        self.reported = True
        return True


@dataclass
class CollapseWatch(SustainedWatch):
    """Reports when D's mean loss stays below ``threshold`` for ``window`` log records in a row."""

    threshold: float = 0.05

    def update(self, d_loss: float) -> bool:
        return self._observe(d_loss < self.threshold)


def sample_spread(images: torch.Tensor, pixel_range: tuple[float, float]) -> float:
    """How much a batch of generated images differs across the batch, as a fraction of the range.

    The mean over pixels of the standard deviation across images: near 0 when every latent
    gives the same picture.
    """
    low, high = pixel_range
    return float(images.float().std(dim=0).mean()) / (high - low)


@dataclass
class DiversityWatch:
    """Reports when samples stop varying, compared with the most they have varied so far.

    An untrained generator's samples barely differ either, so an absolute floor alone would
    cry wolf at the start: the alarm needs the spread to have been high once.
    """

    peak: float = 0.0
    drop: float = 0.25  # alarm below this fraction of the peak spread

    def update(self, spread: float) -> bool:
        self.peak = max(self.peak, spread)
        return self.peak >= 0.05 and spread < self.drop * self.peak


@dataclass
class DiscriminatorWinsWatch(SustainedWatch):
    """Reports when D classifies every real and every fake image correctly (accuracy at least
    ``threshold`` on both) for ``window`` log records in a row."""

    threshold: float = 0.999

    def update(self, acc_real: float, acc_fake: float) -> bool:
        return self._observe(acc_real >= self.threshold and acc_fake >= self.threshold)


def blank_fraction(images: torch.Tensor, pixel_range: tuple[float, float], tolerance: float = 0.02) -> float:
    """The fraction of images that are blank: every pixel within ``tolerance`` (of the range)
    of the image's mean, i.e. one flat colour."""
    low, high = pixel_range
    flat = images.float().flatten(1)
    deviation = (flat - flat.mean(dim=1, keepdim=True)).abs().amax(dim=1) / (high - low)
    return float((deviation <= tolerance).float().mean())


@dataclass
class BlankWatch(SustainedWatch):
    """Reports when (nearly) every sample of a grid is blank, once until they are not."""

    window: int = 1  # one blank grid is enough: grids are rare
    least: float = 0.9  # fraction of blank images that raises the alarm

    def update(self, fraction: float) -> bool:
        return self._observe(fraction >= self.least)
