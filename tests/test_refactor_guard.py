"""The refactor guard: ``ganctl train`` computes, bit for bit, what the seed recipes specify.

What it guards: for every seed architecture and every D update mode (separate, joint,
simultaneous), 20 CPU iterations of ``ganctl train --no-amp`` with a fixed seed end with the very
generator tensors (weights and batch-norm buffers) that ``tests/reference_step.py`` computes:
a plain, independent writing of the seed recipes' step (same networks from the registry, same
images, the same random draws from the same seeded generators in the same order, Adam, BCE).
A change to the trainer that alters a seed recipe's arithmetic, the order of its random draws,
the seed offsets, the batch split or the memory layout fails here.

Why it holds on any host: the old code (the reference) and the new code (the trainer) run side
by side in the same process, on the same processor, with the same number of threads, in
float32. Whatever bits that processor's kernels give (AVX2 or AVX-512, Intel or AMD, 1 or 16
threads), both sides get the same ones; nothing is compared with numbers recorded elsewhere.

One case per update mode runs by default; the rest are ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import pytest
import torch
from tests.helpers import read_tensors, train
from tests.reference_step import train_reference

ARCHS = {"cifar-dcgan": None, "mnist-dcgan": None, "tf-dcgan": None, "paper-dcgan": 32}  # arch -> --image-size
MODES = ("separate", "joint", "simultaneous")
SEED, STEPS, BATCH, LIMIT = 3, 20, 16, 96
ARGS = ["--dataset", "synthetic", "--limit", str(LIMIT), "--batch-size", str(BATCH), "--max-steps", str(STEPS),
        "--seed", str(SEED), "--log-every", "5", "--quiet",
        "--no-amp"]  # float32 whatever the processor
# one case per update mode in the default run (each mode's own recipe where one has it); the rest slow
DEFAULT = {("cifar-dcgan", "separate"), ("mnist-dcgan", "joint"), ("paper-dcgan", "simultaneous")}


def cases():
    for arch in ARCHS:
        for mode in MODES:
            marks = () if (arch, mode) in DEFAULT else (pytest.mark.slow,)
            yield pytest.param(arch, mode, id=f"{arch}-{mode}", marks=marks)


@pytest.mark.parametrize(("arch", "mode"), list(cases()))
def test_trainer_computes_the_reference_bits(arch, mode, tmp_path):
    size = ARCHS[arch]
    run = tmp_path / f"{arch}-{mode}"
    sizes = ["--image-size", str(size)] if size else []
    result = train("--arch", arch, "--d-update", mode, *sizes, *ARGS, "--out", str(run))
    assert result.exit_code == 0, result.output
    trained = read_tensors(run / "generator.safetensors")

    expected = train_reference(arch, d_update=mode, steps=STEPS, seed=SEED, batch_size=BATCH, limit=LIMIT, image_size=size)
    expected = {name: tensor.detach() for name, tensor in expected.state_dict().items()}

    assert sorted(trained) == sorted(expected)
    differ = [name for name in expected if not torch.equal(trained[name], expected[name])]
    assert not differ, f"{len(differ)} of {len(expected)} generator tensors differ from the reference: {differ[:5]}"
