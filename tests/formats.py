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


# --- Keras generator files (h5py in Keras' own layouts) -------------------------------------------


def _keras_layer_list(layers) -> list[dict]:
    """The model config's layers: each weighted layer followed by an activation, as the tutorials build them."""
    listed = []
    for i, layer in enumerate(layers):
        listed.append({"class_name": layer.kind, "config": {"name": layer.name, "trainable": True}})
        if layer.kind != "BatchNormalization":
            listed.append({"class_name": "LeakyReLU", "config": {"name": f"leaky_re_lu_{i}"}})
    return listed


def write_keras2_h5(path: Path, layers) -> Path:
    """A Keras 2 ``model.save("x.h5")`` file: model_config, model_weights/<layer>/<layer>/kernel:0..."""
    import json

    import h5py

    listed = _keras_layer_list(layers)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.12.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "sequential", "layers": listed}}).encode()
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [entry["config"]["name"].encode() for entry in listed]
        arrays = {layer.name: layer.arrays for layer in layers}
        for entry in listed:
            name = entry["config"]["name"]
            group = weights.create_group(name)
            names = [f"{name}/{role}:0" for role in arrays.get(name, {})]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, value in zip(names, arrays.get(name, {}).values()):
                group.create_dataset(weight_name, data=value)
        f.create_group("optimizer_weights")
    return path


def write_keras3_file(path: Path, layers) -> Path:
    """A Keras 3 ``.keras`` zip: config.json, metadata.json and model.weights.h5 (layers/<name>/vars/0...)."""
    import io
    import json
    import zipfile

    import h5py

    listed = [{"class_name": "InputLayer", "config": {"name": "input_layer"}}, *_keras_layer_list(layers)]
    buffer = io.BytesIO()
    arrays = {layer.name: layer.arrays for layer in layers}
    with h5py.File(buffer, "w") as f:
        f.create_group("vars")
        for entry in listed:
            group = f.create_group(f"layers/{entry['config']['name']}/vars")
            for i, value in enumerate(arrays.get(entry["config"]["name"], {}).values()):
                group.create_dataset(str(i), data=value)
        f.create_group("optimizer/vars")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": listed}}))
        archive.writestr("model.weights.h5", buffer.getvalue())
    return path
