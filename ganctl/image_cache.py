"""A uint8 image cache file, memory-mapped: datasets larger than host memory, read by the page cache.

The file is a safetensors file (ganctl writes nothing else) holding one tensor, ``images``:
uint8, N×H×W×C, so that the mapped array viewed as N×C×H×W is already channels_last. It is
written one chunk at a time (a dataset never has to be whole in memory) into a temporary file
that is renamed when complete, so a killed write never leaves a cache that looks finished.

``open_image_cache`` maps it copy-on-write: the tensor reads from the file lazily, page by page,
and nothing ever writes to the file. ``training.streaming.StreamingBatches`` gathers batches
from it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ganctl.errors import GanctlError

TENSOR = "images"
FORMAT = "ganctl-image-cache"


def write_image_cache(path: Path, chunks: Iterable[np.ndarray], *, count: int, image_shape: tuple[int, int, int],
                      metadata: dict[str, str] | None = None) -> Path:
    """Write ``count`` images, given as uint8 N×C×H×W chunks, to the cache file ``path``."""
    channels, height, width = image_shape
    header = {
        TENSOR: {"dtype": "U8", "shape": [count, height, width, channels], "data_offsets": [0, count * height * width * channels]},
        "__metadata__": {"format": FORMAT, **(metadata or {})},
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors aligns the data to 8 bytes
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    written = 0
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for chunk in chunks:
            if chunk.dtype != np.uint8 or chunk.shape[1:] != image_shape:
                raise GanctlError(f"an image cache takes uint8 images of shape {image_shape}, not {chunk.dtype} {chunk.shape[1:]}")
            f.write(np.ascontiguousarray(chunk.transpose(0, 2, 3, 1)).tobytes())
            written += chunk.shape[0]
        f.flush()
        os.fsync(f.fileno())
    if written != count:
        partial.unlink()
        raise GanctlError(f"the image cache {path} was promised {count} images and given {written}")
    os.replace(partial, path)
    return path


def read_cache_header(path: Path) -> tuple[dict, int]:
    """The cache file's safetensors header (checked to be an image cache) and where its data starts."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 1 << 20:
                raise ValueError("header too long")
            header = json.loads(f.read(length))
        entry = header[TENSOR]
        if header.get("__metadata__", {}).get("format") != FORMAT or entry["dtype"] != "U8" or len(entry["shape"]) != 4:
            raise ValueError("not an image cache")
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise GanctlError(f"{path} is not a readable ganctl image cache ({exc})") from None
    return header, 8 + length


def open_image_cache(path: Path) -> torch.Tensor:
    """The cached images as a uint8 N×C×H×W tensor (channels_last strides), mapped from the file."""
    path = Path(path)
    header, offset = read_cache_header(path)
    count, height, width, channels = header[TENSOR]["shape"]
    if path.stat().st_size != offset + count * height * width * channels:
        raise GanctlError(f"{path} is not a readable ganctl image cache (its size does not match its header)")
    # copy-on-write ("c"): a writable array for torch, and the file is never written
    mapped = np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=(count, height, width, channels))
    return torch.from_numpy(mapped).permute(0, 3, 1, 2)
