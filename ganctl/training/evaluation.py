"""FID and KID during training, and the best generator by FID.

``train --eval-every N`` measures the generator every N epochs (and once at the end) against
the first ``--eval-n`` images of the training split, with ``ganctl.metrics`` (the same
features and protocol as ``ganctl eval``). Published DCGAN runs peak and then degrade, so the
generator with the lowest FID so far is kept as ``best.safetensors`` in the run folder.

The measurement draws its latents from its own seeded generator and never touches the
training's random state, so a resumed run stays bitwise identical to an uninterrupted one.

Under torchrun the processes share the work: each generates and measures its part of the
``--eval-n`` images (the same latents as one process would draw), the features are gathered,
and rank 0 alone computes the reference statistics (and caches them) and the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganctl.distributed import Processes
from ganctl.errors import GanctlError

EVAL_SEED = 0  # the same latents at every evaluation: the curve measures the generator, not the draw
EVAL_BATCH = 100


class TrainingEval:
    """Everything that can be wrong is found in ``__init__``, before the run folder is made."""

    def __init__(
        self,
        *,
        dataset: str,
        data_dir: Path | None,
        image_size: int,
        channels: int,
        train_images: int,
        n: int,
        inception: str | None,
        download: bool,
        device: Any,
        say: Callable[[str], None],
        processes: Processes | None = None,
    ) -> None:
        from ganctl import metrics

        least = metrics.statistics.MIN_FID_SAMPLES  # fewer images make the 2048×2048 covariance singular
        if n < least:
            raise GanctlError(f"--eval-n must be at least {least:,} for FID, not {n:,}")
        # The reference is the first n training images; a smaller dataset is used whole.
        self.reference_n = min(n, train_images)
        if self.reference_n < least:
            raise GanctlError(f"--eval-every needs at least {least:,} training images for FID; {dataset} has {train_images:,}")
        self.processes = processes or Processes()
        # rank 0 alone may download the weights; the others look them up when they first measure
        self.weights = metrics.resolve_weights(inception, download=download, log=say) if self.processes.is_writer else None
        self.inception = inception
        self.dataset, self.data_dir, self.image_size, self.channels = dataset, data_dir, image_size, channels
        self.n, self.download, self.device, self.say = n, download, device, say
        self.best_fid = math.inf
        self._reference = None

    def measure(self, generator, pixel_range, latent_dim: int, class_weights=None) -> dict[str, Any] | None:
        """FID, KID and the protocol of ``generator`` now (the reference is computed once, then cached);
        under torchrun every process calls it, and rank 0 gets the figures (the others None).

        ``class_weights``: a conditional generator's images per class in the training set; the
        generated images take their classes in the same proportions."""
        from ganctl import metrics

        if self.processes.distributed:
            return self._measure_together(generator, pixel_range, latent_dim, class_weights)
        # eigh: the same trace as sqrtm to ~1e-9 relative, several times faster on a CPU
        return metrics.evaluate_generator(
            generator, pixel_range, latent_dim, reference=self._reference_stats(), n=self.n, device=self.device,
            batch_size=EVAL_BATCH, seed=EVAL_SEED, fid_method="eigh", class_weights=class_weights,
        )  # fmt: skip

    def _measure_together(self, generator, pixel_range, latent_dim: int, class_weights=None) -> dict[str, Any] | None:
        """Each process measures its share of the n images; rank 0 gathers the features and compares."""
        import dataclasses

        import numpy as np
        import torch

        from ganctl import metrics
        from ganctl.conditional import labels_for

        p = self.processes
        if self.weights is None:
            self.weights = metrics.resolve_weights(self.inception, download=False, log=self.say)
        p.broadcast_buffers(generator)  # rank 0's batch-norm statistics: every share from one generator
        labels = None if class_weights is None else labels_for(self.n, class_weights)
        share = -(-self.n // p.world)
        parts = [range(self.n)[r * share : (r + 1) * share] for r in range(p.world)]
        side = metrics.generated_features(
            generator, pixel_range, latent_dim, weights=self.weights, n=self.n, device=self.device,
            batch_size=EVAL_BATCH, seed=EVAL_SEED, labels=labels, part=slice(parts[p.rank].start, parts[p.rank].stop),
        )  # fmt: skip
        padded = np.zeros((share, side.features.shape[1]), dtype=side.features.dtype)
        padded[: len(side.features)] = side.features
        gathered = p.gather_rows(torch.from_numpy(padded)).numpy().reshape(p.world, share, -1)
        if not p.is_writer:
            return None
        features = np.concatenate([gathered[r, : len(parts[r])] for r in range(p.world)])
        side = dataclasses.replace(side, features=features, protocol={**side.protocol, "processes": p.world})
        return metrics.compare(self._reference_stats(), side, seed=EVAL_SEED, fid_method="eigh")

    def _reference_stats(self):
        from ganctl import metrics

        if self._reference is None:
            self.say(f"evaluation: Inception statistics of {self.reference_n:,} {self.dataset} training images (cached after the first time)")
            self._reference = metrics.reference_stats(
                self.dataset, "train", self.image_size, self.channels, self.reference_n, self.data_dir,
                self.weights, self.device, download=self.download,
            )  # fmt: skip
        return self._reference

    def is_best(self, fid: float) -> bool:
        """Whether ``fid`` beats every earlier evaluation of this run (and remember it)."""
        if fid < self.best_fid:
            self.best_fid = fid
            return True
        return False
