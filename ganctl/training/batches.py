"""Real images resident on the training device, drawn as the recipe says.

The whole dataset sits on the device as uint8 (CIFAR-10 is 150 MB); a batch is an index
into it, converted to floats there. No host-to-device copy happens per step. Labels, when a
conditional run has them, sit beside the images and are drawn with the same index
(``next_labelled``), so the sampler's state covers them too.
"""

from __future__ import annotations

import torch

from ganctl.errors import GanctlError


class RealBatches:
    def __init__(
        self,
        images: torch.Tensor,
        *,
        batch: int,
        sampling: str,
        pixel_range: tuple[float, float],
        device: torch.device,
        seed: int,
        labels: torch.Tensor | None = None,
        share: tuple[int, int] = (0, 1),
    ) -> None:
        self.device = device
        self.images = self._hold(images)
        self.labels = None if labels is None else labels.to(device)  # small: always on the device
        self.batch = batch  # images drawn per call over all processes
        # (rank, world size) under torchrun: every process draws the same global batch from the
        # same stream and keeps its own slice, so an epoch is one pass over the data for all of them
        self.share = share
        self.sampling = sampling
        low, high = pixel_range
        self.scale, self.offset = (high - low) / 255.0, low
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(seed)
        # "shuffle": the current epoch's order and how far through it we are
        self.order = torch.empty(0, dtype=torch.long, device=device)
        self.position = 0

    def _hold(self, images: torch.Tensor) -> torch.Tensor:
        """Where the images live: on the device (``streaming.StreamingBatches`` keeps them on the host)."""
        try:
            return images.to(self.device)
        except RuntimeError as exc:  # out of device memory, typically
            raise GanctlError(f"the dataset ({tuple(images.shape)}) does not fit on {self.device}: {exc}") from None

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        """The batch at ``index`` (a device tensor) as uint8 on the device."""
        return self.images[index]

    def __len__(self) -> int:
        return self.images.shape[0]

    def next(self) -> torch.Tensor:
        return self._images_at(self._next_index())

    def next_labelled(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch and its labels (None for unlabelled data), drawn as ``next`` draws."""
        index = self._next_index()
        return self._images_at(index), None if self.labels is None else self.labels[index]

    def _images_at(self, index: torch.Tensor) -> torch.Tensor:
        return self._gather(index).float().mul_(self.scale).add_(self.offset)

    def _next_index(self) -> torch.Tensor:
        if self.sampling == "random":  # Keras' randint: with replacement, a fresh draw each time
            index = torch.randint(len(self), (self.batch,), generator=self.rng, device=self.device)
        else:  # a shuffled epoch in full batches; the remainder is dropped, keeping shapes fixed
            if self.position + self.batch > self.order.numel():
                self.order = torch.randperm(len(self), generator=self.rng, device=self.device)
                self.position = 0
            index = self.order[self.position : self.position + self.batch]
            self.position += self.batch
        rank, world = self.share
        if world > 1:
            per_rank = self.batch // world
            index = index[rank * per_rank : (rank + 1) * per_rank]
        return index

    # --- resume ---------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {
            "rng": self.rng.get_state(),
            "order": self.order.cpu(),
            "position": torch.tensor(self.position),
        }

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(state["rng"])
        self.order = state["order"].to(self.device)
        self.position = int(state["position"])
