"""The data layer on tiny datasets in the real on-disk formats; the real files when present."""

from __future__ import annotations

import gzip
import lzma
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganctl_plugins.datasets as builtin  # registers the built-ins without an installed entry point
from ganctl import register_dataset
from ganctl.data import DatasetRequest, dataset_names, default_data_dir, load_images
from ganctl.errors import GanctlError, UnknownNameError
from ganctl.registry import DATASETS
from tests.helpers import NO_REAL_DATA, SHARED_DATA as SHARED
from tests.formats import write_cifar10, write_idx_images, write_mnist


def load(dataset: str, root: Path | None, **kw) -> torch.Tensor:
    kw.setdefault("image_size", 32)
    kw.setdefault("channels", 3)
    kw.setdefault("download", False)
    return load_images(dataset, data_dir=root, **kw)


def cifar_rows(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")[b"data"]  # the test's own file: safe to unpickle


# ----------------------------------------------------------------------------------------
# CIFAR-10


def test_builtin_names_are_registered():
    assert {"cifar10", "mnist", "fashion-mnist", "synthetic"} <= set(dataset_names())


def test_cifar10_pickles_round_trip(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=4)
    images = load("cifar10", tmp_path)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8 and images.is_contiguous()
    # Each row holds 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    row = cifar_rows(folder / "data_batch_2")[1]
    assert torch.equal(images[5], torch.from_numpy(row.reshape(3, 32, 32)))
    assert images[5, 1, 2, 7] == row[1024 + 2 * 32 + 7]
    test = load("cifar10", tmp_path, split="test")
    assert torch.equal(test[0], torch.from_numpy(cifar_rows(folder / "test_batch")[0].reshape(3, 32, 32)))


def test_cifar10_flat_layout_and_limit(tmp_path):
    shutil.copytree(write_cifar10(tmp_path / "tv", n_per_batch=4), tmp_path / "flat")
    assert load("cifar10", tmp_path / "flat", limit=7).shape == (7, 3, 32, 32)


class _Exploit:
    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_cifar_pickle_is_refused_and_never_runs(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=2)
    _Exploit.marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Exploit()}, f, protocol=2)
    with pytest.raises(GanctlError, match=r"data_batch_3 is not a CIFAR-10 batch: it asks to import posix\.system"):
        load("cifar10", tmp_path)
    assert not _Exploit.marker.exists()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a pickle", "UnpicklingError|not a CIFAR-10 batch"),
        (pickle.dumps([1, 2, 3], protocol=2), "no uint8 b'data' array"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8)}, protocol=2), "no uint8 b'data' array"),
    ],
)
def test_a_file_that_is_not_a_cifar_batch_is_one_clear_error(tmp_path, content, reason):
    folder = write_cifar10(tmp_path, n_per_batch=2)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(GanctlError, match=reason):
        load("cifar10", tmp_path, split="test")


# ----------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files_gzipped_or_raw(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    digits = (np.arange(3 * 28 * 28) % 251).astype(np.uint8).reshape(3, 28, 28)
    write_idx_images(raw / "train-images-idx3-ubyte", digits, compress=compress)
    images = load("mnist", tmp_path, image_size=28, channels=1)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], torch.from_numpy(digits))


def test_mnist_flat_layout_and_test_split(tmp_path):
    raw = write_mnist(tmp_path / "tv", n=8)
    shutil.copytree(raw, tmp_path / "flat")
    assert load("mnist", tmp_path / "flat", split="test", image_size=28, channels=1).shape == (4, 1, 28, 28)


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    write_mnist(tmp_path, n=10, folder="FashionMNIST")
    assert load("fashion-mnist", tmp_path, image_size=28, channels=1).shape == (10, 1, 28, 28)
    with pytest.raises(GanctlError, match=r"MNIST not found: put train-images-idx3-ubyte\.gz .* in .*MNIST/raw"):
        load("mnist", tmp_path)


def test_corrupt_or_truncated_idx_is_one_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(GanctlError, match="not an IDX image file: its magic number is 00000801"):
        load("mnist", tmp_path)
    header = np.array([0x803, 5, 28, 28], dtype=">u4").tobytes()
    (raw / "train-images-idx3-ubyte").write_bytes(gzip.compress(header + bytes(28 * 28 * 4)))
    with pytest.raises(GanctlError, match="truncated or damaged: its header says 5 images of 28x28"):
        load("mnist", tmp_path)


# ----------------------------------------------------------------------------------------
# Missing files and downloads (never on the network: the downloaders are replaced)


def test_missing_files_name_what_to_put_where(tmp_path):
    with pytest.raises(GanctlError) as caught:
        load("cifar10", tmp_path)
    message = str(caught.value)
    assert "CIFAR-10 not found: put data_batch_1 … data_batch_5 and test_batch (the python version)" in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "downloading is off" in message
    assert "\n" not in message


def test_missing_cifar_names_the_archive_to_download(tmp_path):
    with pytest.raises(GanctlError, match=r"by unpacking cifar-10-python\.tar\.gz there"):
        load("cifar10", tmp_path)


def test_the_cifar_archive_in_the_data_folder_is_unpacked_and_read(tmp_path):
    import tarfile

    write_cifar10(tmp_path / "made", n_per_batch=3)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "made" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(tmp_path / "made")
    images = load("cifar10", tmp_path)
    assert images.shape == (15, 3, 32, 32)
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()


@pytest.mark.parametrize("suffix, tool", [(".xz", "xz -d"), (".gz", "gunzip")])
def test_cifar_files_left_compressed_say_how_to_decompress(tmp_path, suffix, tool):
    folder = write_cifar10(tmp_path, n_per_batch=2)
    for path in list(folder.iterdir()):
        path.rename(path.with_name(path.name + suffix))
    with pytest.raises(GanctlError) as caught:
        load("cifar10", tmp_path)
    message = str(caught.value)
    assert "compressed" in message and tool in message and "data_batch_" in message and "\n" not in message


def test_mnist_compressed_with_xz_says_how_to_decompress(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.xz").write_bytes(lzma.compress(b"x"))
    with pytest.raises(GanctlError, match=r"train-images-idx3-ubyte\.xz compressed.*xz -d"):
        load("mnist", tmp_path)


def test_offline_env_forbids_downloads_even_when_asked(tmp_path, monkeypatch):
    def must_not_run(root):
        raise AssertionError("downloaded although GANCTL_OFFLINE=1")

    monkeypatch.setenv("GANCTL_OFFLINE", "1")
    monkeypatch.setattr(builtin, "_download_cifar10", must_not_run)
    with pytest.raises(GanctlError, match="downloading is off"):
        load("cifar10", tmp_path, download=True)


def test_a_failed_download_is_reported_and_a_good_one_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCTL_OFFLINE", "0")

    def no_network(root):
        raise RuntimeError("Error downloading:\n<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(builtin, "_download_cifar10", no_network)
    with pytest.raises(GanctlError, match=r"\(download failed: <urlopen error \[Errno -3\] Temporary failure"):
        load("cifar10", tmp_path, download=True)
    monkeypatch.setattr(builtin, "_download_cifar10", lambda root: write_cifar10(root, n_per_batch=3))
    assert load("cifar10", tmp_path, download=True).shape == (15, 3, 32, 32)


# ----------------------------------------------------------------------------------------
# Conversion: channels and size


def test_gray_becomes_rgb_by_repetition_and_rgb_becomes_gray_by_luma(tmp_path):
    write_mnist(tmp_path, n=4)
    gray = load("mnist", tmp_path, image_size=28, channels=1)
    rgb = load("mnist", tmp_path, image_size=28, channels=3)
    assert rgb.shape == (4, 3, 28, 28) and all(torch.equal(rgb[:, c], gray[:, 0]) for c in range(3))
    write_cifar10(tmp_path, n_per_batch=2)
    colour = load("cifar10", tmp_path).double()
    luma = load("cifar10", tmp_path, channels=1)
    expected = (0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]).round()
    assert luma.shape == (10, 1, 32, 32)
    assert (luma[:, 0].double() - expected).abs().max() <= 1  # float32 vs float64 at the .5 boundary


def test_resizing_to_another_size(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    flat = np.full((2, 28, 28), 200, np.uint8)
    flat[1, :, 14:] = 0  # left half bright, right half dark
    write_idx_images(raw / "train-images-idx3-ubyte", flat)
    images = load("mnist", tmp_path, image_size=64, channels=3)
    assert images.shape == (2, 3, 64, 64) and images.is_contiguous()
    assert bool((images[0] == 200).all())  # a plain image stays plain
    assert images[1, 0, 10, 5] == 200 and images[1, 0, 10, 60] == 0
    assert load("mnist", tmp_path, image_size=16, channels=1).shape == (2, 1, 16, 16)


@pytest.fixture
def fake_dataset():
    """Register a plugin dataset that returns whatever the test puts in ``box``."""
    box: dict[str, object] = {}

    @register_dataset("test-fake", description="a test's dataset")
    def fake(request: DatasetRequest):
        box["request"] = request
        return box["images"]

    yield box
    DATASETS.remove("test-fake")


def test_plugin_datasets_are_converted_and_checked(fake_dataset, tmp_path):
    wide = np.zeros((1, 20, 40, 3), np.uint8)
    wide[:, :, 6:34] = 255  # the middle of a wide image (and a margin for the filter): the centre crop
    fake_dataset["images"] = wide
    images = load("test-fake", tmp_path, image_size=10, channels=3)
    assert images.shape == (1, 3, 10, 10) and bool((images == 255).all())
    assert fake_dataset["request"] == DatasetRequest(tmp_path, "train", False, 10, 3)
    fake_dataset["images"] = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(GanctlError, match="dataset 'test-fake' gave a float32 array"):
        load("test-fake", tmp_path)
    fake_dataset["images"] = np.zeros((1, 8, 8, 4), np.uint8)
    with pytest.raises(GanctlError, match="4 channels"):
        load("test-fake", tmp_path)


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(GanctlError, match="1 or 3 channels, not 2"):
        load("synthetic", tmp_path, channels=2)
    with pytest.raises(GanctlError, match="unknown split 'val'"):
        load("synthetic", tmp_path, split="val")


def test_unknown_dataset_names_close_matches(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        load("cifar-10", tmp_path)


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANCTL_DATA_DIR", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("GANCTL_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "ganctl" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "ganctl" / "data"


# ----------------------------------------------------------------------------------------
# Synthetic shapes


def test_synthetic_is_deterministic_varied_and_split():
    train = load("synthetic", None)
    assert train.shape == (10_000, 3, 32, 32) and train.dtype == torch.uint8
    assert torch.equal(train[:50], load("synthetic", None, limit=50))
    assert train.float().std(dim=0).mean() > 30  # images differ from each other
    assert train[:100].float().flatten(1).std(dim=1).min() > 5  # and none is a plain background
    test = load("synthetic", None, split="test")
    assert test.shape == (2_000, 3, 32, 32) and not torch.equal(test[:50], train[:50])


def test_synthetic_draws_at_the_asked_size_and_channels():
    gray = load("synthetic", None, image_size=28, channels=1, limit=8)
    assert gray.shape == (8, 1, 28, 28)
    colour = builtin.draw_shapes(10_000, 28, 3, seed=builtin.SYNTHETIC_SEEDS["train"])[:8].astype(np.float64)
    luma = colour @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[:, 0].numpy() - luma).max() <= 1  # gray is the luma of the same scenes


# ----------------------------------------------------------------------------------------
# folder:PATH


def test_a_folder_of_class_subfolders_says_what_it_loaded_and_fits_as_asked(tmp_path):
    folder = tmp_path / "shapes"
    for name, size in (("circles", (64, 64)), ("crosses", (50, 70))):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", size, (255, 255, 255)).save(folder / name / f"{i}.png")
    notes: list[str] = []
    load(f"folder:{folder}", None, image_size=32, channels=3, log=notes.append, describe=True)
    assert notes[0] == f"{folder}: 6 image(s) in 2 subfolders (the classes of --conditional): circles 3, crosses 3"
    padded = load(f"folder:{folder}", None, image_size=32, channels=3, fit="pad")[3:]  # the 50x70 crosses, padded
    assert padded[:, :, 16, 0].sum() == 0 and padded[:, :, 16, 16].min() == 255  # black bars at the sides
    stretched = load(f"folder:{folder}", None, image_size=32, channels=3, fit="stretch")[3:]
    assert stretched.min() == 255  # the whole picture, no bars


def test_image_folder_any_sizes_modes_and_corrupt_files(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 60), (255, 0, 0)).save(folder / "a.png")
    Image.new("L", (100, 50), 128).save(folder / "sub" / "b.JPG")
    Image.new("RGBA", (16, 16), (0, 0, 255, 255)).save(folder / "c.webp", lossless=True)
    Image.new("P", (30, 30), 0).save(folder / "d.gif")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    notes: list[str] = []
    images = load(f"folder:{folder}", None, image_size=16, channels=3, log=notes.append, describe=True)
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8 and images.is_contiguous()
    # sorted paths: a.png, c.webp, d.gif, sub/b.JPG
    assert images[0, :, 8, 8].tolist() == [255, 0, 0] and images[1, :, 8, 8].tolist() == [0, 0, 255]
    assert abs(int(images[3, 0, 8, 8]) - 128) <= 2  # JPEG is lossy
    assert notes[0] == f"{folder}: 4 image(s)"  # said before training: found, resized, fitted, skipped
    assert notes[1].startswith("resized to 16×16 from ") and "40×60 (1)" in notes[1] and "100×50 (1)" in notes[1]
    assert notes[2].startswith("2 non-square image(s) centre-cropped")
    assert notes[3].startswith("skipped 1 unreadable file(s): broken.png (")
    gray = load(f"folder:{folder}", None, image_size=16, channels=1, limit=2, split="test")
    assert gray.shape == (2, 1, 16, 16) and gray[0, 0, 8, 8] == 76  # luma of pure red


def test_image_folder_without_readable_images_is_an_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    with pytest.raises(GanctlError, match=r"no readable images in .*bad \(1 image file\(s\) could not be read\)"):
        load(f"folder:{tmp_path / 'bad'}", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanctlError, match="no readable images in .*empty"):
        load(f"folder:{tmp_path / 'empty'}", None)
    with pytest.raises(GanctlError, match="folder .*nope does not exist"):
        load(f"folder:{tmp_path / 'nope'}", None)
    with pytest.raises(GanctlError, match="x.png is a file, not a folder of images"):
        load(f"folder:{tmp_path / 'bad' / 'x.png'}", None)


# ----------------------------------------------------------------------------------------
# The real files ($GANCTL_TEST_DATA), when this machine has them


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=NO_REAL_DATA)
def test_real_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED / "mnist").glob("*.gz"):
        shutil.copy(path, raw / path.name)
    train = load("mnist", tmp_path, image_size=28, channels=1)
    assert train.shape == (60_000, 1, 28, 28)
    assert load("mnist", tmp_path, split="test", image_size=28, channels=1).shape == (10_000, 1, 28, 28)
    assert 30 < train.float().mean() < 36  # MNIST's mean pixel is about 33


@pytest.mark.slow  # decompressing the batches takes about 10 s
@pytest.mark.skipif(not (SHARED / "cifar-10").is_dir(), reason=NO_REAL_DATA)
def test_real_cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for path in (SHARED / "cifar-10").glob("*.xz"):
        (folder / path.stem).write_bytes(lzma.decompress(path.read_bytes()))
    train = load("cifar10", tmp_path)
    assert train.shape == (50_000, 3, 32, 32)
    assert 115 < train.float().mean() < 127  # CIFAR-10's mean pixel is about 120.7
    assert load("cifar10", tmp_path, split="test").shape == (10_000, 3, 32, 32)
