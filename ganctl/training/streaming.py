"""Real images streamed from host memory, for datasets that do not fit in the device's memory.

``StreamingBatches`` is ``RealBatches`` with the images left in host memory (an ordinary
tensor, or one backed by a memory-mapped uint8 cache file, ``ganctl.data.cache``): the
indices are drawn on the device by the same generator in the same order, so a run draws the
same batches either way and resumes from the same state; only the gather differs. Each step
copies the drawn indices to the host (on CUDA, the one synchronisation this path adds),
gathers the batch there and copies it over through pinned memory.

``real_batches`` chooses: on the device when the images fit (the default, and the fast path),
streamed when they would take more than half of the device's free memory, or when placing them
there fails for lack of memory; ``stream=True``/``False`` forces either.
"""

from __future__ import annotations

import torch

from ganctl.errors import GanctlError
from ganctl.training.batches import RealBatches

# At most this share of the device's free memory goes to the dataset; the rest is the training's.
DEVICE_SHARE = 0.5


class StreamingBatches(RealBatches):
    def _hold(self, images: torch.Tensor) -> torch.Tensor:
        return images.cpu()  # no copy when already there; a memory-mapped tensor stays mapped

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        batch = self.images[index.cpu()]
        if self.device.type == "cuda":  # pinned: an asynchronous copy from PyTorch's cached host blocks
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)


def fits_on_device(images: torch.Tensor, device: torch.device) -> bool:
    """Whether the images take at most DEVICE_SHARE of the device's free memory (the CPU: always)."""
    if device.type != "cuda":
        return True  # the images are in host memory already: "streaming" would change nothing
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() * images.element_size() <= DEVICE_SHARE * free


def real_batches(images: torch.Tensor, *, stream: bool | None = None, say=None, **options) -> RealBatches:
    """The sampler of real batches: on the device, or streamed (``stream``: None chooses)."""
    device = options["device"]
    if stream is None and not fits_on_device(images, device):
        stream = True
        if say:
            say(f"the dataset ({images.numel() / 2**30:.1f} GiB) takes more than half of {device}'s free memory: streaming it from host memory")
    if stream:
        return StreamingBatches(images, **options)
    try:
        return RealBatches(images, **options)
    except GanctlError:
        if stream is False:  # placing it on the device was asked for: say it did not fit
            raise
        if say:
            say(f"the dataset did not fit on {device}: streaming it from host memory")
        return StreamingBatches(images, **options)
