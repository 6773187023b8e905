"""What streaming the real images costs: batches/s of the on-device sampler against the streamed one.

    python benchmarks/streaming_crossover.py [--device cuda] [--images 50000] [--batch 64]

Three samplers draw the same batches (``cifar-dcgan``'s real half-batch of 64 by default) from
the same uint8 images: ``RealBatches`` with the images on the device, ``StreamingBatches`` from
host memory, and ``StreamingBatches`` from a memory-mapped cache file (``ganctl.data.cache``,
warm in the page cache after the first pass). Each figure is the time of one ``next()``
including the float conversion, synchronised; compare it with a training iteration's time to
see what streaming adds to a step. Where the images fit on the device, ``real_batches`` keeps
them there; streaming is for when they do not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from ganctl.data.cache import open_image_cache, write_image_cache
from ganctl.training.batches import RealBatches
from ganctl.training.streaming import StreamingBatches


def microseconds_per_batch(sampler, device: torch.device, draws: int) -> float:
    for _ in range(5):
        sampler.next()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(draws):
        sampler.next()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / draws * 1e6


def crossover(device: torch.device, *, images: int = 50_000, batch: int = 64, size: int = 32, draws: int = 200) -> dict:
    data = torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    options = dict(batch=batch, sampling="random", pixel_range=(-1.0, 1.0), device=device, seed=0)
    figures = {"images": images, "batch": batch, "dataset_mib": round(data.numel() / 2**20, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = write_image_cache(Path(tmp) / "cache.safetensors", (data[i : i + 4096].numpy() for i in range(0, images, 4096)),
                                  image_shape=(3, size, size))  # fmt: skip
        samplers = {
            "on_device_us": RealBatches(data, **options),
            "streamed_from_memory_us": StreamingBatches(data, **options),
            "streamed_from_memmap_us": StreamingBatches(open_image_cache(cache), **options),
        }
        for name, sampler in samplers.items():
            figures[name] = round(microseconds_per_batch(sampler, device, draws), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(crossover(torch.device(args.device), images=args.images, batch=args.batch, draws=args.draws), indent=1))


if __name__ == "__main__":
    main()
