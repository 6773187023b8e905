"""Helpers shared by the test modules, written once: plain functions and constants.

Fixtures live in ``conftest.py``; run-folder writers in ``runfolders.py``, dataset writers in
``formats.py``. No test module imports from another test module, nor from conftest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from ganctl.cli import app
from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import save_generator

# The real datasets and Inception weights for the checks that need them (README, "Tests"):
# $GANCTL_TEST_DATA, else a shared/data folder beside the checkout; absent in CI.
SHARED_DATA = Path(os.environ.get("GANCTL_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
REAL_WEIGHTS = SHARED_DATA / "inception" / "pt_inception-2015-12-05-fc-zeroed.pth"
NO_REAL_DATA = "the real datasets are absent: set GANCTL_TEST_DATA to a folder of cifar-10/, mnist/, inception/ (README, Tests)"

# --- the CLI ---------------------------------------------------------------------------------

runner = CliRunner()

# Small, fast training settings: 64 synthetic images, batch 16 -> 4 iterations an epoch.
QUICK = ["--dataset", "synthetic", "--limit", "64", "--batch-size", "16", "--quiet", "--log-every", "2"]
SIZE = {"paper-dcgan": ["--image-size", "32"]}  # its 64 px default is slower on 2 cores


def quick(limit: int) -> list[str]:
    """``QUICK`` with another number of synthetic images."""
    i = QUICK.index("--limit")
    return [*QUICK[: i + 1], str(limit), *QUICK[i + 2 :]]


def invoke(*args: str | Path):
    """``ganctl ARGS...`` in this process (paths and numbers as their text)."""
    return runner.invoke(app, [str(a) for a in args])


def train(*args: str | Path):
    """``ganctl train ARGS...`` in this process."""
    return invoke("train", *args)


def one_line_error(result, *fragments: str, exit_code: int | None = None) -> str:
    """The command refused in one line: a non-zero exit code (``exit_code`` when given), no traceback
    nor uncaught exception, exactly one line on stderr, an "Error" holding every fragment; returns it."""
    if exit_code is None:
        assert result.exit_code != 0, (result.exit_code, result.output, result.stderr)
    else:
        assert result.exit_code == exit_code, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr
    return lines[0]


# --- safetensors files -------------------------------------------------------------------------


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and its tensors, by name."""
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, by name."""
    return read_safetensors(path)[1]


def generator_hash(run: Path) -> str:
    """sha256 over a run's generator tensors (names, dtypes, shapes, bytes), not the file's metadata."""
    digest = hashlib.sha256()
    tensors = read_tensors(run / "generator.safetensors")
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


# --- generator files in the real format ------------------------------------------------------------


def make_generator(path: Path, arch_name: str = "mnist-dcgan", last_bias: float | None = None) -> Path:
    """An untrained generator file; ``last_bias`` makes every pixel that pre-activation value."""
    arch = ARCHITECTURES.get(arch_name).obj
    torch.manual_seed(0)
    generator, _ = arch.build()
    if last_bias is not None:
        last = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(last_bias)
    save_generator(
        path, generator, architecture=arch_name, arch_args=arch.arch_args(), pixel_range=arch.recipe.pixel_range
    )
    return path


def rewrite_metadata(source: Path, target: Path, **changes: str) -> Path:
    """A copy of a generator file with some metadata changed (tensors kept)."""
    metadata, tensors = read_safetensors(source)
    save_file(tensors, str(target), metadata={**metadata, **changes})
    return target


def corrupt_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Each way a generator file can be wrong, with a phrase its message must contain."""
    folder.mkdir(exist_ok=True)
    (folder / "text.safetensors").write_text("hello, I am not a safetensors file")
    data = good.read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    save_file({"w": torch.zeros(3)}, str(folder / "plain.safetensors"))
    rewrite_metadata(good, folder / "unknown.safetensors", architecture="no-such-gan")
    rewrite_metadata(good, folder / "misfit.safetensors", architecture="tf-dcgan")  # 28 px, 1 channel too
    rewrite_metadata(good, folder / "wrong-size.safetensors", architecture="cifar-dcgan")  # 32 px only
    rewrite_metadata(good, folder / "damaged.safetensors", arch_args="{not json")
    return {
        "not safetensors": (folder / "text.safetensors", "not a readable safetensors file"),
        "truncated": (folder / "truncated.safetensors", "not a readable safetensors file"),
        "no ganctl metadata": (folder / "plain.safetensors", "not a ganctl generator"),
        "unknown architecture": (folder / "unknown.safetensors", "no-such-gan"),
        "tensors that don't fit": (folder / "misfit.safetensors", "do not fit"),
        "arguments the architecture refuses": (folder / "wrong-size.safetensors", "cannot be built at 28 px"),
        "damaged metadata": (folder / "damaged.safetensors", "damaged ganctl metadata"),
        "missing": (folder / "absent.safetensors", "does not exist"),
    }


# --- plugins and Inception weights -------------------------------------------------------------------


def make_distribution(root, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]):
    """Lay out an installed distribution (a ``.dist-info`` folder) with ``ganctl.plugins`` entry points."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text("[ganctl.plugins]\n" + lines)
    return info


def random_inception_file(path: Path) -> Path:
    """torch-fidelity's FID Inception with random weights, saved as a plain state dict.

    Without the real weights (CI, a user's clone) the whole feature pipeline still runs on it:
    the resize, the batching, the caching and the agreement with torch-fidelity's own forward
    do not depend on the weights' values. He-normal convolutions keep the activations from
    vanishing through the 94 layers, so the features are well spread (std about 0.2).
    """
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    # Build the network without loading anything into it.
    with mock.patch.object(tfi.torch, "load", return_value={}), mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
        network = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    g = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (2.0 / module.weight[0].numel()) ** 0.5)
    torch.save({k: v.clone() for k, v in network.state_dict().items()}, path)
    return path
