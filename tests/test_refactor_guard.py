"""The refactor guard: the seed recipes compute the same bits as before the training step was rebuilt.

The hashes in ``fixtures/refactor_guard.json`` were recorded on main before the rebuild (the
three hand-written update modes), 20 CPU iterations, fixed seed, for every seed architecture
with every update mode. A change to the step that alters a seed recipe's arithmetic, or the
order in which it draws random numbers, fails here.

Regenerate (only when a change of the seed recipes' arithmetic is intended, and say why in
the changelog): ``python -m tests.test_refactor_guard``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from ganctl.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "refactor_guard.json"
ARCHS = {"cifar-dcgan": [], "mnist-dcgan": [], "tf-dcgan": [], "paper-dcgan": ["--image-size", "32"]}
MODES = ("separate", "joint", "simultaneous")
ARGS = ["--dataset", "synthetic", "--limit", "96", "--batch-size", "16", "--max-steps", "20", "--seed", "3",
        "--log-every", "5", "--quiet",
        "--no-amp"]  # float32 whatever the processor: the hashes were recorded in float32


def generator_hash(run: Path) -> str:
    """sha256 over the generator's tensors (names, dtypes, shapes, bytes), not the file's metadata."""
    digest = hashlib.sha256()
    with safe_open(str(run / "generator.safetensors"), "pt") as f:
        for name in sorted(f.keys()):
            tensor = f.get_tensor(name).contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


RECORDED_THREADS = 2  # float32 sums split differently over another number of threads: other bits


def train_and_hash(arch: str, mode: str, folder: Path) -> str:
    run = folder / f"{arch}-{mode}"
    threads = torch.get_num_threads()
    torch.set_num_threads(RECORDED_THREADS)
    try:
        result = CliRunner().invoke(app, ["train", "--arch", arch, "--d-update", mode, *ARCHS[arch], *ARGS, "--out", str(run)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.stderr
    return generator_hash(run)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_seed_recipes_compute_the_same_bits_as_before_the_rebuild(arch, mode, tmp_path):
    expected = json.loads(FIXTURE.read_text())[f"{arch}/{mode}"]
    assert train_and_hash(arch, mode, tmp_path) == expected


if __name__ == "__main__":  # record the fixture
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GANCTL_RUNS_DIR"] = str(Path(tmp) / "runs")
        hashes = {f"{a}/{m}": train_and_hash(a, m, Path(tmp)) for a in ARCHS for m in MODES}
    FIXTURE.write_text(json.dumps(hashes, indent=2) + "\n")
    print(json.dumps(hashes, indent=2))
