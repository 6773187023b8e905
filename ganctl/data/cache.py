"""A uint8 image cache file, memory-mapped: datasets larger than host memory, read by the page cache.

The file is a safetensors file (ganctl writes nothing else) holding one tensor, ``images``:
uint8, N×H×W×C, so that the mapped array viewed as N×C×H×W is already channels_last. It is
written one chunk at a time (a dataset never has to be whole in memory) into a temporary file
that is renamed when complete, so a killed write never leaves a cache that looks finished.

``open_image_cache`` maps it copy-on-write: the tensor reads from the file lazily, page by page,
and nothing ever writes to the file. ``cached_folder`` builds one for a ``folder:PATH`` dataset
(in $GANCTL_CACHE_DIR/images) and reuses it while the folder is unchanged; ``ganctl train
--stream-data`` trains from it through ``training.streaming.StreamingBatches``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ganctl.environment import cache_home
from ganctl.errors import GanctlError

Log = Callable[[str], None]

TENSOR = "images"
FORMAT = "ganctl-image-cache"
HEADER_ROOM = 4096  # bytes reserved for the JSON header, written once the image count is known
CHUNK = 1000  # images decoded and written at a time
ENV_CACHE_DIR = "GANCTL_CACHE_DIR"


def write_image_cache(path: Path, chunks: Iterable[np.ndarray], *, image_shape: tuple[int, int, int],
                      metadata: dict[str, str] | None = None) -> Path:
    """Write the images of ``chunks`` (uint8 N×C×H×W arrays, any number) to the cache file ``path``.

    The header's room is reserved first and the header written last, when the count is known:
    the images are never all in memory.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with open(partial, "wb") as f:
            f.write(b"\0" * (8 + HEADER_ROOM))
            for chunk in chunks:
                if chunk.dtype != np.uint8 or chunk.shape[1:] != tuple(image_shape):
                    raise GanctlError(f"an image cache takes uint8 images of shape {image_shape}, not {chunk.dtype} {chunk.shape[1:]}")
                f.write(np.ascontiguousarray(chunk.transpose(0, 2, 3, 1)).tobytes())
                count += chunk.shape[0]
            f.seek(0)
            f.write(_header(count, image_shape, metadata or {}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _header(count: int, image_shape: tuple[int, int, int], metadata: dict[str, str]) -> bytes:
    channels, height, width = image_shape
    header = {
        TENSOR: {"dtype": "U8", "shape": [count, height, width, channels], "data_offsets": [0, count * height * width * channels]},
        "__metadata__": {"format": FORMAT, **metadata},
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if len(encoded) > HEADER_ROOM:
        raise GanctlError(f"an image cache's metadata must fit in {HEADER_ROOM} bytes")
    return struct.pack("<Q", HEADER_ROOM) + encoded.ljust(HEADER_ROOM)  # safetensors allows trailing spaces


def default_cache_dir() -> Path:
    """$GANCTL_CACHE_DIR/images, else $XDG_CACHE_HOME/ganctl/images, else ~/.cache/ganctl/images."""
    if explicit := os.environ.get(ENV_CACHE_DIR):
        return Path(explicit).expanduser() / "images"
    return cache_home() / "images"


def load_images_to_stream(dataset: str, **options) -> torch.Tensor:
    """``data.load_images`` for a run that streams its data: a ``folder:PATH`` comes memory-mapped
    from its cache file (built on first use), so it never has to fit in host memory either."""
    from ganctl.data import FOLDER_PREFIX, load_images

    if not dataset.startswith(FOLDER_PREFIX):
        return load_images(dataset, **options)
    folder = Path(dataset[len(FOLDER_PREFIX) :]).expanduser()
    return cached_folder(folder, options["image_size"], options["channels"], limit=options.get("limit"), log=options.get("log"),
                         fit=options.get("fit", "crop"))


def cached_folder(folder: Path, image_size: int, channels: int, *, cache_dir: Path | None = None, limit: int | None = None,
                  log: Log | None = None, fit: str = "crop") -> torch.Tensor:
    """The images of ``folder:PATH`` as ``data.load_folder`` makes them, from a cache file that is
    built on first use, one chunk of images in memory at a time, and reused while the folder is unchanged."""
    from ganctl.data import FolderReading, image_files
    from ganctl.metrics.reference import _folder_fingerprint

    if not Path(folder).exists():
        raise GanctlError(f"folder {folder} does not exist")
    if not Path(folder).is_dir():
        raise GanctlError(f"{folder} is a file, not a folder of images")
    spec = {"folder": _folder_fingerprint(Path(folder)), "image_size": image_size, "channels": channels, "limit": limit}
    if fit != "crop":  # (caches of centre-cropped images keep the key they always had)
        spec["fit"] = fit
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir or default_cache_dir()) / f"folder-{image_size}px{channels}c-{key}.safetensors"
    if path.exists():
        images = open_image_cache(path)
        if tuple(images.shape[1:]) != (channels, image_size, image_size):
            raise GanctlError(f"{path} holds images of shape {tuple(images.shape[1:])}, not the {(channels, image_size, image_size)} "
                              "it was made for; delete it and ganctl makes it again")  # fmt: skip
        return images
    files = image_files(Path(folder))
    reading = FolderReading(image_size, fit)
    count = 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal count
        batch = []
        for file in files:
            if limit is not None and count >= limit:
                break
            image = reading.read(file, "L" if channels == 1 else "RGB")
            if image is not None:
                batch.append(image)
                count += 1
            if len(batch) == CHUNK:
                yield _nchw(batch, channels)
                batch = []
        if batch:
            yield _nchw(batch, channels)

    if log:
        log(f"caching the images of {folder} at {image_size} px in {path} (once; later runs map it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image_cache(path, chunks(), image_shape=(channels, image_size, image_size), metadata={"folder": str(folder)})
    if log:
        for line in reading.report(Path(folder), count, {}):
            log(line)
    if read_cache_header(path)[0][TENSOR]["shape"][0] == 0:
        path.unlink()
        raise GanctlError(f"no readable images in {folder} ({len(files)} image file(s) found)")
    return open_image_cache(path)


def _nchw(images: list[np.ndarray], channels: int) -> np.ndarray:
    stacked = np.stack(images)
    return stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2)


def read_cache_header(path: Path) -> tuple[dict, int]:
    """The cache file's safetensors header (checked to be an image cache: uint8, four whole-number
    sizes, the data exactly the file's rest) and where its data starts. A FIFO or device put in
    its place is refused unread."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ValueError("not a regular file")
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 1 << 20:
                raise ValueError("header too long")
            header = json.loads(f.read(length))
        entry = header[TENSOR]
        if header.get("__metadata__", {}).get("format") != FORMAT or entry["dtype"] != "U8":
            raise ValueError("not a uint8 image cache")
        shape = entry["shape"]
        if len(shape) != 4 or not all(type(n) is int and n >= 0 for n in shape) or not all(1 <= n <= 1 << 16 for n in shape[1:]):
            raise ValueError(f"image sizes {str(shape)[:80]} are not four whole numbers, each image at most 65536 px a side")
        if size != 8 + length + shape[0] * shape[1] * shape[2] * shape[3]:
            raise ValueError("its size does not match its header")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, struct.error) as exc:
        raise GanctlError(f"{path} is not a readable ganctl image cache ({exc}); delete it and ganctl makes it again") from None
    return header, 8 + length


def open_image_cache(path: Path) -> torch.Tensor:
    """The cached images as a uint8 N×C×H×W tensor (channels_last strides), mapped from the file."""
    path = Path(path)
    header, offset = read_cache_header(path)
    count, height, width, channels = header[TENSOR]["shape"]  # checked, and matching the file's size
    # copy-on-write ("c"): a writable array for torch, and the file is never written
    mapped = np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=(count, height, width, channels))
    return torch.from_numpy(mapped).permute(0, 3, 1, 2)
