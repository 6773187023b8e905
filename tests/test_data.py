"""Datasets from their real on-disk formats, made small here; the real files when present."""

from __future__ import annotations

import lzma
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganctl.data import load_images
from ganctl.errors import GanctlError, UnknownNameError
from tests.formats import write_cifar10, write_idx_images, write_mnist

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(dataset, root, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("channels", 3)
    return load_images(dataset, data_dir=root, download=False, **kw)


def test_cifar10_pickles_round_trip(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=4)
    with open(folder / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]  # the test's own file: safe to unpickle
    images = load("cifar10", tmp_path)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    # row layout: 1024 red, then 1024 green, then 1024 blue values, row-major
    assert images[4, 1, 0, 5] == raw[0, 1024 + 5]
    assert load("cifar10", tmp_path, split="test").shape[0] == 4


def test_cifar10_flat_layout_and_limit(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=4)
    flat = tmp_path / "flat"
    shutil.copytree(folder, flat)
    assert load("cifar10", flat, limit=7).shape[0] == 7


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_a_malicious_cifar_pickle_is_refused_and_never_runs(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=2)
    _Exploit.marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Exploit()}, f, protocol=2)
    with pytest.raises(GanctlError, match="not a CIFAR-10 batch: it asks to import posix.system"):
        load("cifar10", tmp_path)
    assert not _Exploit.marker.exists()


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    digits = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    write_idx_images(raw / "train-images-idx3-ubyte", digits, compress=compress)
    images = load("mnist", tmp_path, image_size=28, channels=1)
    assert images.shape == (3, 1, 28, 28)
    assert torch.equal(images[:, 0], torch.from_numpy(digits.astype(np.uint8)))


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    write_mnist(tmp_path, n=10, folder="FashionMNIST")
    assert load("fashion-mnist", tmp_path, image_size=28, channels=1).shape == (10, 1, 28, 28)
    with pytest.raises(GanctlError, match="MNIST not found: put train-images-idx3-ubyte.gz"):
        load("mnist", tmp_path)


def test_channels_and_size_are_mapped(tmp_path):
    write_mnist(tmp_path, n=4)
    gray = load("mnist", tmp_path, image_size=28, channels=1)
    rgb = load("mnist", tmp_path, image_size=28, channels=3)
    assert torch.equal(rgb[:, 0], gray[:, 0]) and torch.equal(rgb[:, 2], gray[:, 0])
    assert load("mnist", tmp_path, image_size=64, channels=1).shape == (4, 1, 64, 64)
    write_cifar10(tmp_path, n_per_batch=2)
    colour = load("cifar10", tmp_path).float()
    luma = load("cifar10", tmp_path, channels=1).float()
    expected = (0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]).round()
    assert torch.equal(luma[:, 0], expected)


def test_corrupt_idx_and_missing_files_are_one_line(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(GanctlError, match="not an IDX image file"):
        load("mnist", tmp_path, image_size=28, channels=1)
    with pytest.raises(GanctlError, match=r"CIFAR-10 not found: put data_batch_1, .*test|CIFAR-10 not found: put data_batch_1"):
        load("cifar10", tmp_path / "empty")


def test_unknown_dataset_names_close_matches(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        load("cifar-10", tmp_path)


def test_synthetic_is_deterministic_varied_and_split(tmp_path):
    a = load("synthetic", tmp_path, limit=64)
    assert torch.equal(a, load("synthetic", tmp_path, limit=64))
    assert a.shape == (64, 3, 32, 32)
    assert a.float().std(dim=0).mean() > 20  # images differ from each other
    assert not torch.equal(a, load("synthetic", tmp_path, split="test", limit=64))
    assert load("synthetic", tmp_path, image_size=28, channels=1, limit=4).shape == (4, 1, 28, 28)


def test_image_folder_any_sizes_and_corrupt_files(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 60), (255, 0, 0)).save(tmp_path / "imgs" / "a.png")
    Image.new("L", (100, 50), 128).save(tmp_path / "imgs" / "sub" / "b.JPG")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    notes = []
    images = load_images(f"folder:{tmp_path / 'imgs'}", data_dir=None, image_size=16, channels=3, log=notes.append)
    assert images.shape == (2, 3, 16, 16)
    assert images[0, :, 8, 8].tolist() == [255, 0, 0]
    assert notes == [f"skipped 1 unreadable image(s) in {tmp_path / 'imgs'}"]
    gray = load_images(f"folder:{tmp_path / 'imgs'}", data_dir=None, image_size=16, channels=1)
    assert gray.shape == (2, 1, 16, 16)


def test_image_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.png").write_bytes(b"junk")
    with pytest.raises(GanctlError, match="no readable images"):
        load_images(f"folder:{tmp_path / 'empty'}", data_dir=None, image_size=16, channels=3)
    with pytest.raises(GanctlError, match="is not a folder"):
        load_images(f"folder:{tmp_path / 'nope'}", data_dir=None, image_size=16, channels=3)


@pytest.mark.skipif(not (SHARED / "cifar-10").is_dir(), reason="../shared/data is absent")
@pytest.mark.slow
def test_real_cifar10_and_mnist(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for path in (SHARED / "cifar-10").glob("*.xz"):
        (folder / path.stem).write_bytes(lzma.decompress(path.read_bytes()))
    train = load("cifar10", tmp_path)
    assert train.shape == (50_000, 3, 32, 32)
    assert load("cifar10", tmp_path, split="test").shape == (10_000, 3, 32, 32)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED / "mnist").glob("*.gz"):
        shutil.copy(path, raw / path.name)
    assert load("mnist", tmp_path, image_size=28, channels=1).shape == (60_000, 1, 28, 28)
