"""The speed work's behaviour: the bf16 default on CPUs that have it, the streamed sampler and
its memory-mapped cache, and the ingredients row of ``ganctl bench``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ganctl.device
import ganctl.training.streaming as streaming
from ganctl.cli import app
from ganctl.device import cpu_has_native_bf16 as real_probe  # before conftest patches it
from ganctl.device import use_amp
from ganctl.errors import GanctlError
from ganctl.data.cache import open_image_cache, write_image_cache
from ganctl.training.batches import RealBatches
from ganctl.training.streaming import StreamingBatches, real_batches
from tests.helpers import generator_hash

runner = CliRunner()
CPU = torch.device("cpu")
TINY = ["--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "32", "--batch-size", "8", "--max-steps", "3",
        "--seed", "1", "--quiet"]


def native_bf16(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(ganctl.device, "cpu_has_native_bf16", lambda: present)


# --- bf16 by default where the CPU computes it -----------------------------------------------
def test_the_probe_answers_for_this_machine():
    assert isinstance(real_probe(), bool)


@pytest.mark.parametrize("present", [True, False])
def test_amp_auto_follows_the_processor_and_explicit_choices_win(monkeypatch, present):
    native_bf16(monkeypatch, present)
    assert use_amp(CPU, None) is present
    assert use_amp(CPU, False) is False and use_amp(CPU, True) is True
    assert use_amp(torch.device("cuda"), None) is True  # whatever the CPU
    assert use_amp(torch.device("mps"), True) is False


def train_hash(tmp_path: Path, name: str, *extra: str) -> str:
    run = tmp_path / name
    result = runner.invoke(app, ["train", *TINY, *extra, "--out", str(run)])
    assert result.exit_code == 0, result.output
    return generator_hash(run)


def test_default_training_is_bf16_on_a_native_bf16_cpu_and_no_amp_stays_exact(monkeypatch, tmp_path):
    float32 = train_hash(tmp_path, "fp32")  # conftest: a CPU without native bf16
    native_bf16(monkeypatch, True)
    assert train_hash(tmp_path, "no-amp", "--no-amp") == float32
    assert train_hash(tmp_path, "auto") != float32


# --- the streamed sampler ---------------------------------------------------------------------
def images(n: int = 40) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def sampler(cls, data: torch.Tensor, sampling: str) -> RealBatches:
    return cls(data, batch=6, sampling=sampling, pixel_range=(-1.0, 1.0), device=CPU, seed=5)


@pytest.mark.parametrize("sampling", ["random", "shuffle"])
def test_streaming_draws_the_batches_of_the_device_sampler_and_resumes_from_its_state(sampling):
    data = images()
    resident, streamed = sampler(RealBatches, data, sampling), sampler(StreamingBatches, data, sampling)
    for _ in range(9):  # over an epoch's end (40 images, batches of 6)
        torch.testing.assert_close(streamed.next(), resident.next(), rtol=0, atol=0)
    # the state of one resumes the other
    moved = sampler(StreamingBatches, data, sampling)
    moved.load_state(resident.state())
    for _ in range(5):
        torch.testing.assert_close(moved.next(), resident.next(), rtol=0, atol=0)


def test_the_factory_keeps_the_images_on_the_device_when_they_fit_and_streams_otherwise(monkeypatch):
    options = dict(batch=4, sampling="random", pixel_range=(0.0, 1.0), device=CPU, seed=0)
    assert type(real_batches(images(), **options)) is RealBatches
    assert type(real_batches(images(), stream=True, **options)) is StreamingBatches
    said = []
    monkeypatch.setattr(streaming, "fits_on_device", lambda images, device: False)
    assert type(real_batches(images(), say=said.append, **options)) is StreamingBatches
    assert type(real_batches(images(), stream=False, **options)) is RealBatches  # forced: no estimate
    assert said and "streaming" in said[0]


def test_a_failed_placement_falls_back_to_streaming_unless_the_device_was_forced(monkeypatch):
    def out_of_memory(self, images):
        raise GanctlError("the dataset does not fit on cpu")

    monkeypatch.setattr(RealBatches, "_hold", out_of_memory)
    options = dict(batch=4, sampling="random", pixel_range=(0.0, 1.0), device=CPU, seed=0)
    assert type(real_batches(images(), **options)) is StreamingBatches
    with pytest.raises(GanctlError, match="does not fit"):
        real_batches(images(), stream=False, **options)


# --- the memory-mapped cache ------------------------------------------------------------------
def test_the_image_cache_round_trips_in_chunks_as_channels_last(tmp_path):
    data = images(10)
    path = write_image_cache(tmp_path / "c.safetensors", (data[i : i + 4].numpy() for i in range(0, 10, 4)), image_shape=(3, 8, 8))
    mapped = open_image_cache(path)
    assert mapped.shape == data.shape and mapped.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mapped, data)
    # a sampler reads it in place
    streamed = sampler(StreamingBatches, mapped, "shuffle")
    torch.testing.assert_close(streamed.next(), sampler(RealBatches, data, "shuffle").next(), rtol=0, atol=0)


def test_a_failed_write_leaves_no_cache_behind(tmp_path):
    def chunks():
        yield images(4).numpy()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_image_cache(tmp_path / "c.safetensors", chunks(), image_shape=(3, 8, 8))
    with pytest.raises(GanctlError, match="uint8 images of shape"):
        write_image_cache(tmp_path / "c.safetensors", [images(4).float().numpy()], image_shape=(3, 8, 8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{}", b"garbage that is long enough"])
def test_a_file_that_is_not_an_image_cache_is_one_clear_error(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(GanctlError, match="not a readable ganctl image cache"):
        open_image_cache(bad)


def test_a_truncated_cache_is_refused(tmp_path):
    path = write_image_cache(tmp_path / "c.safetensors", [images(4).numpy()], image_shape=(3, 8, 8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GanctlError, match="size does not match"):
        open_image_cache(path)


def picture_folder(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir()
    for i, picture in enumerate(images(n)):
        Image.fromarray(picture.permute(1, 2, 0).numpy()).resize((12, 10)).save(folder / f"{i:03d}.png")
    (folder / "broken.png").write_bytes(b"not a picture")
    return folder


def test_a_folder_is_cached_once_and_loads_as_load_folder_makes_it(tmp_path):
    from ganctl.data import load_folder
    from ganctl.data.cache import cached_folder

    folder = picture_folder(tmp_path / "pictures", 5)
    said = []
    first = cached_folder(folder, 8, 3, cache_dir=tmp_path / "cache", log=said.append)
    assert torch.equal(first, torch.from_numpy(load_folder(folder, 8, 3)))
    assert any("caching" in line for line in said) and any("skipped 1" in line for line in said)
    said.clear()
    again = cached_folder(folder, 8, 3, cache_dir=tmp_path / "cache", log=said.append)
    assert torch.equal(again, first) and said == []  # mapped from the file, nothing read
    assert torch.equal(cached_folder(folder, 8, 1, cache_dir=tmp_path / "cache", limit=2),
                       torch.from_numpy(load_folder(folder, 8, 1, limit=2)))  # fmt: skip
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_streamed_training_from_a_cached_folder_computes_the_same_bits(tmp_path, monkeypatch):
    folder = picture_folder(tmp_path / "pictures", 16)
    data = ["--dataset", f"folder:{folder}", "--limit", "16"]
    streamed = train_hash(tmp_path, "streamed", *data, "--stream-data")
    assert list((tmp_path / "cache" / "images").glob("folder-*.safetensors"))  # conftest's GANCTL_CACHE_DIR
    assert streamed == train_hash(tmp_path, "resident", *data)


# --- ganctl bench's ingredients row -----------------------------------------------------------
def test_bench_times_the_step_with_every_ingredient_beside_the_plain_one():
    result = runner.invoke(app, ["bench", "--arch", "mnist-dcgan", "--device", "cpu", "--steps", "1", "--warmup", "0",
                                 "--batch-size", "4", "--no-baseline", "--json"])
    assert result.exit_code == 0, result.output
    plain, full = json.loads(result.stdout)["results"]
    assert (plain["variant"], full["variant"]) == ("plain", "all ingredients")
    assert plain["cost_vs_plain"] is None and full["cost_vs_plain"] > 0
    assert full["gflop_per_iteration"] > plain["gflop_per_iteration"]  # two D updates, augmentation
    assert full["sample_images_per_s"] is None and plain["sample_images_per_s"] > 0
