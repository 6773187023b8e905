"""Writers for tiny datasets in the real on-disk formats (CIFAR-10 pickles, MNIST IDX)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_cifar10(root: Path, n_per_batch: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py/`` with five train batches and a test batch, like the real one."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, n_per_batch).tolist(),
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def write_idx_images(path: Path, images: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">IIII", 0x00000803, *images.shape)
    data = header + images.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_idx_labels(path: Path, labels: np.ndarray, compress: bool = True) -> None:
    data = struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist(root: Path, n: int = 64, seed: int = 0, folder: str = "MNIST", labels: bool = False) -> Path:
    """``root/MNIST/raw/`` with gzipped IDX image files, torchvision's layout (and the label
    files, with ``labels``: image i of each split is of class i % 10)."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    write_idx_images(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx_images(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8))
    if labels:
        write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(n) % 10)
        write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.arange(n // 2) % 10)
    return raw
