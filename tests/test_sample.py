"""``ganctl sample``: grids, individual files, latent sources, and every refusal as one line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import ganctl.networks.weights as weights_module
from ganctl.data import images
from ganctl.latent import latents
from ganctl.runfolder import layout as runs
from ganctl.runfolder.config import training_dataset
from ganctl.latent import sampling
from ganctl.device import resolve_device, use_amp
from tests.helpers import corrupt_files, invoke, make_generator, one_line_error


def make_run(folder: Path, arch_name: str = "mnist-dcgan") -> Path:
    """A run folder as the trainer leaves it, as far as sampling cares."""
    folder.mkdir(parents=True)
    (folder / runs.CONFIG).write_text(json.dumps({"arch": arch_name}))
    make_generator(folder / runs.FINAL_GENERATOR, arch_name)
    return folder


# ----------------------------------------------------------------------------------------
# The grid


def test_grid_size_follows_n_nrow_padding_and_scale(mnist, tmp_path):
    out = tmp_path / "a.png"
    result = invoke("sample", "--weights", mnist, "--n", 10, "--seed", 0, "--out", out)
    assert result.exit_code == 0, result.stderr
    # ⌈√10⌉ = 4 per row, 3 rows, 28 px images with 2 px padding around each
    # enlarged by default so the smaller side is at least 256 px: 92 px → 3×
    assert Image.open(out).size == ((4 * 30 + 2) * 3, (3 * 30 + 2) * 3)
    assert f"Wrote {out} (10 images, 4 per row)" in result.stdout and "seed 0" in result.stdout

    out = tmp_path / "b.png"
    assert invoke("sample", "--weights", mnist, "--n", 6, "--nrow", 3, "--padding", 0, "--scale", 2, "--out", out).exit_code == 0
    assert Image.open(out).size == (3 * 28 * 2, 2 * 28 * 2)


def test_individual_files_keep_their_size_without_scale(mnist, tmp_path):
    folder = tmp_path / "each"
    assert invoke("sample", "--weights", mnist, "--n", 2, "--individual", folder).exit_code == 0
    assert Image.open(folder / "000001.png").size == (28, 28)


def test_default_output_is_samples_png_with_100_images(mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("sample", "--weights", mnist, "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert Image.open(tmp_path / "samples.png").size == (10 * 30 + 2, 10 * 30 + 2)  # 302 px: already big enough


def test_one_channel_is_grayscale_three_are_rgb(mnist, cifar, tmp_path):
    for weights, mode in ((mnist, "L"), (cifar, "RGB")):
        out = tmp_path / f"{mode}.png"
        assert invoke("sample", "--weights", weights, "--n", 4, "--out", out).exit_code == 0
        assert Image.open(out).mode == mode


@pytest.mark.parametrize("arch_name", ["mnist-dcgan", "cifar-dcgan"])
def test_the_files_pixel_range_is_used(arch_name, tmp_path):
    # a zero pre-activation is the middle of both ranges: sigmoid 0.5 of [0, 1], tanh 0 of [-1, 1]
    weights = make_generator(tmp_path / "g.safetensors", arch_name, last_bias=0.0)
    out = tmp_path / "mid.png"
    assert invoke("sample", "--weights", weights, "--n", 1, "--padding", 0, "--out", out).exit_code == 0
    assert min(Image.open(out).size) >= 256
    assert set(np.asarray(Image.open(out)).ravel().tolist()) == {128}


def test_same_seed_same_bytes_other_seed_other_bytes(mnist, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, (7, 7, 8)):
        assert invoke("sample", "--weights", mnist, "--n", 4, "--seed", seed, "--out", path).exit_code == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_batch_size_does_not_change_the_images(mnist, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    invoke("sample", "--weights", mnist, "--n", 9, "--seed", 3, "--out", a)
    invoke("sample", "--weights", mnist, "--n", 9, "--seed", 3, "--batch-size", 2, "--out", b)
    assert a.read_bytes() == b.read_bytes()


# ----------------------------------------------------------------------------------------
# Latent sources


def test_z_value_gives_the_same_image_whatever_n(mnist, tmp_path):
    folder = tmp_path / "z"
    assert invoke("sample", "--weights", mnist, "--z-value", 0.75, "--n", 3, "--individual", folder).exit_code == 0
    images = [p.read_bytes() for p in sorted(folder.iterdir())]
    assert len(images) == 3 and len(set(images)) == 1
    # and it is the point (0.75, ..., 0.75) itself
    np.save(tmp_path / "point.npy", np.full(100, 0.75, dtype=np.float32))
    assert invoke("sample", "--weights", mnist, "--z-file", tmp_path / "point.npy", "--individual", tmp_path / "f").exit_code == 0
    assert (tmp_path / "f" / "000000.png").read_bytes() == images[0]


def test_z_file_npy_and_safetensors_reproduce_a_seed(mnist, tmp_path):
    seeded = tmp_path / "seeded.png"
    result = invoke("sample", "--weights", mnist, "--n", 5, "--seed", 11, "--out", seeded, "--save-z", tmp_path / "z.npy")
    assert result.exit_code == 0 and "Latents:" in result.stdout
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (5, 100) and z.dtype == np.float32

    save_file({"other": torch.zeros(2), "z": torch.from_numpy(z)}, str(tmp_path / "named.safetensors"))
    save_file({"latents": torch.from_numpy(z)}, str(tmp_path / "single.safetensors"))
    for name in ("z.npy", "named.safetensors", "single.safetensors"):
        out = tmp_path / f"{name}.png"
        result = invoke("sample", "--weights", mnist, "--z-file", tmp_path / name, "--out", out)
        assert result.exit_code == 0, result.stderr
        assert out.read_bytes() == seeded.read_bytes(), name


def test_n_takes_the_first_latents_of_a_z_file(mnist, tmp_path):
    np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((6, 100)))  # float64 is fine
    folder = tmp_path / "imgs"
    assert invoke("sample", "--weights", mnist, "--z-file", tmp_path / "z.npy", "--n", 2, "--individual", folder).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png"]
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "z.npy", "--n", 7), "holds 6 latents")


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((4, 64), np.float32), "shape (4, 64)"),
        (np.zeros((2, 3, 100), np.float32), "shape (2, 3, 100)"),
        (np.zeros((0, 100), np.float32), "shape (0, 100)"),
        (np.array([[np.nan] * 100]), "NaN"),
        (np.zeros((1, 100), bool), "real numbers"),
    ],
)
def test_z_file_of_the_wrong_shape_or_kind_is_refused(mnist, tmp_path, array, message):
    np.save(tmp_path / "z.npy", array)
    result = invoke("sample", "--weights", mnist, "--z-file", tmp_path / "z.npy", "--out", tmp_path / "o.png")
    one_line_error(result, message)
    assert not (tmp_path / "o.png").exists()


def test_pickled_or_broken_latent_files_are_refused_without_unpickling(mnist, tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "objects.npy"), "pickled")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "junk.npy"), "no .npy header")
    np.save(tmp_path / "full.npy", np.zeros((3, 100)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:300])
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "cut.npy"), "not a readable .npy")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "junk.safetensors"), "not a readable safetensors")
    one_line_error(invoke("sample", "--weights", mnist, "--z-file", tmp_path / "absent.npy"), "does not exist")


# ----------------------------------------------------------------------------------------
# One file per image, in batches


class Recorder(torch.nn.Module):
    """Wraps a generator; records each call's batch size and how many PNGs existed then."""

    def __init__(self, inner: torch.nn.Module, folder: Path) -> None:
        super().__init__()
        self.inner, self.folder, self.calls = inner, folder, []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        written = len(list(self.folder.glob("*.png"))) if self.folder.is_dir() else 0
        self.calls.append((z.shape[0], written))
        return self.inner(z)


def test_individual_files_are_generated_in_batches_and_streamed(mnist, tmp_path, monkeypatch):
    folder = tmp_path / "many"
    recorders = []
    real_load = weights_module.load_requested_generator

    def load(weights, device):
        generator, info, path = real_load(weights, device)
        recorders.append(Recorder(generator, folder))
        return recorders[-1], info, path

    monkeypatch.setattr(weights_module, "load_requested_generator", load)
    result = invoke("sample", "--weights", mnist, "--n", 25, "--batch-size", 10, "--individual", folder, "--scale", 2)
    assert result.exit_code == 0, result.stderr
    # three calls of at most 10 images, each after the previous batch was on disk
    assert recorders[0].calls == [(10, 0), (10, 10), (5, 20)]
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(25)]
    assert Image.open(folder / "000024.png").size == (56, 56)
    assert "25 PNGs" in result.stdout


def test_individual_names_widen_past_a_million():
    assert images.individual_names(3) == ["000000.png", "000001.png", "000002.png"]
    assert images.individual_names(1_000_001)[-1] == "1000000.png"


def test_individual_refuses_existing_images_without_force(mnist, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "000001.png").write_bytes(b"keep me")
    one_line_error(invoke("sample", "--weights", mnist, "--n", 3, "--individual", folder), "--force")
    assert sorted(p.name for p in folder.iterdir()) == ["000001.png"]
    assert (folder / "000001.png").read_bytes() == b"keep me"
    assert invoke("sample", "--weights", mnist, "--n", 3, "--individual", folder, "--force").exit_code == 0
    assert len(list(folder.iterdir())) == 3 and (folder / "000001.png").read_bytes() != b"keep me"


# ----------------------------------------------------------------------------------------
# Finding the generator


def test_run_folder_and_latest_run(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs" / "mnist-1")
    out = tmp_path / "from-folder.png"
    assert invoke("sample", "--weights", run, "--n", 2, "--seed", 1, "--out", out).exit_code == 0

    runs.set_latest(run)  # GANCTL_RUNS_DIR is tmp_path/runs (conftest)
    latest = tmp_path / "latest.png"
    result = invoke("sample", "--n", 2, "--seed", 1, "--out", latest)
    assert result.exit_code == 0 and str(run / runs.FINAL_GENERATOR) in result.stdout
    assert latest.read_bytes() == out.read_bytes()


def test_no_latest_run_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("sample")
    one_line_error(result, "no trained generator found")
    # it says where it looked (the absolute folder) and how to point elsewhere
    for part in (str((tmp_path / "runs").resolve()), "GANCTL_RUNS_DIR", "--weights"):
        assert part in result.stderr, result.stderr
    assert not (tmp_path / "samples.png").exists()


def test_no_latest_run_without_the_variable_names_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GANCTL_RUNS_DIR")
    result = invoke("sample")
    one_line_error(result, "relative to the current folder")
    assert str((tmp_path / "runs").resolve()) in result.stderr and "GANCTL_RUNS_DIR" in result.stderr


# ----------------------------------------------------------------------------------------
# Refusals: one line, non-zero, nothing written


@pytest.mark.parametrize(
    "args,message",
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--n", "-5"], "--n must be at least 1"),
        (["--scale", "0"], "--scale must be at least 1"),
        (["--batch-size", "0"], "--batch-size"),
        (["--nrow", "0"], "--nrow"),
        (["--padding", "-1"], "--padding"),
        (["--out", "x.jpg"], "name a .png file"),
        (["--seed", "1", "--z-value", "0.5"], "cannot be used together"),
        (["--z-value", "nan"], "finite"),
        (["--z-file", "z.txt"], ".npy or .safetensors"),
        (["--save-z", "z.csv"], ".npy or .safetensors"),
        (["--individual", "d", "--nrow", "3"], "--individual writes separate images"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_options_are_one_line(mnist, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("sample", "--weights", mnist, *args), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_an_absent_cuda_is_one_line(mnist, tmp_path):
    one_line_error(invoke("sample", "--weights", mnist, "--device", "cuda", "--out", tmp_path / "o.png"), "no CUDA GPU")


def test_every_corrupt_generator_file_is_one_line(mnist, tmp_path):
    for case, (path, message) in corrupt_files(tmp_path / "bad", mnist).items():
        out = tmp_path / "o.png"
        result = invoke("sample", "--weights", path, "--out", out)
        one_line_error(result, message)
        assert not out.exists(), case


def test_a_run_folder_without_a_generator_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    one_line_error(invoke("sample", "--weights", tmp_path / "run", "--out", tmp_path / "o.png"), "holds no generator")


def test_existing_output_is_untouched_without_force(mnist, tmp_path):
    out = tmp_path / "samples.png"
    out.write_bytes(b"precious")
    one_line_error(invoke("sample", "--weights", mnist, "--out", out), "already exists; pass --force")
    assert out.read_bytes() == b"precious"
    assert invoke("sample", "--weights", mnist, "--out", out, "--force", "-q").exit_code == 0
    assert Image.open(out).format == "PNG"


def test_unwritable_output_folder_is_one_line(mnist, tmp_path):
    (tmp_path / "a-file").write_text("")
    one_line_error(invoke("sample", "--weights", mnist, "--out", tmp_path / "a-file" / "x.png"), "not a folder")
    one_line_error(invoke("sample", "--weights", mnist, "--individual", tmp_path / "a-file"), "is a file")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line_error(invoke("sample", "--weights", mnist, "--out", locked / "x.png"), "not writable")


def test_missing_output_folders_are_created(mnist, tmp_path):
    out = tmp_path / "new" / "deeper" / "s.png"
    assert invoke("sample", "--weights", mnist, "--n", 1, "--out", out).exit_code == 0
    assert out.is_file()


# ----------------------------------------------------------------------------------------
# The library side


def test_generate_yields_uint8_batches_in_range():
    class Constant(torch.nn.Module):
        def forward(self, z):
            return torch.full((z.shape[0], 1, 2, 2), -1.0) + (z[:, :1, None, None] > 0).float() * 2

    z = torch.tensor([[1.0], [-1.0], [1.0]])
    batches = list(sampling.generate(Constant(), z, (-1.0, 1.0), device=torch.device("cpu"), batch_size=2))
    assert [b.shape[0] for b in batches] == [2, 1] and batches[0].dtype == torch.uint8
    assert torch.cat(batches)[:, 0, 0, 0].tolist() == [255, 0, 255]


def test_latents_are_drawn_on_the_cpu_from_the_seed():
    a = latents.random_latents(4, 8, seed=5)
    assert a.device.type == "cpu" and torch.equal(a, latents.random_latents(4, 8, seed=5))
    assert not torch.equal(a, latents.random_latents(4, 8, seed=6))
    assert math.isclose(latents.constant_latents(2, 3, 0.75).sum().item(), 4.5)


def test_auto_device_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert use_amp(torch.device("cpu"), None) is False
    assert use_amp(torch.device("cuda"), None) is True


def test_bf16_autocast_works_on_the_cpu_too(mnist, tmp_path):
    result = invoke("sample", "--weights", mnist, "--n", 2, "--amp", "--device", "cpu", "--out", tmp_path / "amp.png")
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "amp.png").mode == "L"


def test_a_generator_file_knows_its_runs_training_dataset(tmp_path):
    run = tmp_path / "run"
    (run / runs.SNAPSHOTS).mkdir(parents=True)
    (run / runs.CONFIG).write_text(json.dumps({"recipe": {"dataset": "fashion-mnist"}}))
    assert training_dataset(run / runs.FINAL_GENERATOR) == "fashion-mnist"
    assert training_dataset(run / runs.SNAPSHOTS / "generator-epoch-0001.safetensors") == "fashion-mnist"
    assert training_dataset(tmp_path / "loose.safetensors") is None
