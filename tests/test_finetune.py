"""Fine-tuning: --init-from a run or a generator file, --freeze-d."""

from __future__ import annotations

import pytest
import torch

from ganctl.registry import ARCHITECTURES
from ganctl.training import checkpoint as ckpt
from ganctl.training.assembly import Hardware, assemble, synthetic_images
from ganctl.training.finetune import init_from, weighted_layers
from tests.helpers import QUICK, one_line_error, read_tensors, train

CPU = Hardware(torch.device("cpu"), amp=False)


def parts_of(arch: str, seed: int = 1, **changes):
    recipe = ARCHITECTURES.get(arch).obj.recipe.replace(batch_size=16, **changes)
    return assemble(arch, recipe, synthetic_images(recipe, n=64), CPU, seed=seed)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("source") / "run"
    result = train(*QUICK, "--arch", "mnist-dcgan", "--max-steps", "3", "--ema-kimg", "0.1", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    return run


def test_a_run_gives_its_ema_generator_and_its_discriminator(trained):
    parts = parts_of("mnist-dcgan", ema_kimg=0.1)
    said = init_from(parts, str(trained), "mnist-dcgan")
    checkpoint = ckpt.load_checkpoint(ckpt.list_checkpoints(trained / "checkpoints")[-1])
    for name, tensor in checkpoint.group("G_ema").items():
        assert torch.equal(parts.G.state_dict()[name], tensor), name
        assert torch.equal(parts.ema.average.state_dict()[name], tensor), name
    for name, tensor in checkpoint.group("D").items():
        assert torch.equal(parts.nets.D.state_dict()[name], tensor), name
    assert "its EMA" in said and "step 3" in said


def test_a_generator_file_gives_g_alone_even_under_spectral_norm(trained):
    parts = parts_of("mnist-dcgan", spectral_norm="both")
    init_from(parts, str(trained / "generator.safetensors"), "mnist-dcgan")
    baked = read_tensors(trained / "generator.safetensors")
    first = next(k for k in baked if k.endswith(".weight") and baked[k].dim() > 1)
    original = parts.G.state_dict()[first.removesuffix(".weight") + ".parametrizations.weight.original"]
    assert torch.equal(original, baked[first])


def test_a_fine_tuned_run_trains_and_a_mismatch_is_refused_before_the_run_folder(trained, tmp_path):
    tuned = tmp_path / "tuned"
    result = train(*QUICK, "--arch", "mnist-dcgan", "--max-steps", "1", "--init-from", str(trained), "--freeze-d", "1",
                   "--out", str(tuned))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    other = tmp_path / "other"
    result = train(*QUICK, "--arch", "cifar-dcgan", "--max-steps", "1", "--init-from", str(trained), "--out", str(other))
    one_line_error(result)
    assert "is a run of architecture 'mnist-dcgan', not 'cifar-dcgan'" in result.stderr and not other.exists()
    result = train(*QUICK, "--arch", "mnist-dcgan", "--latent-dim", "7", "--init-from", str(trained / "generator.safetensors"),
                   "--out", str(other))  # fmt: skip
    one_line_error(result)
    assert "this run builds 'mnist-dcgan'" in result.stderr and not other.exists()


def test_freeze_d_keeps_the_first_layers_and_trains_the_rest():
    parts = parts_of("cifar-dcgan", freeze_d=2)
    layers = weighted_layers(parts.nets.D)
    before = [layer.weight.detach().clone() for layer in layers]
    for i in range(2):
        parts.step(i)
    after = [layer.weight.detach() for layer in layers]
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert not torch.equal(before[2], after[2])


def test_freeze_d_beyond_the_discriminator_is_refused_before_the_run_folder(tmp_path):
    n = len(weighted_layers(parts_of("mnist-dcgan").nets.D))
    result = train(*QUICK, "--arch", "mnist-dcgan", "--freeze-d", str(n), "--out", str(tmp_path / "run"))
    one_line_error(result)
    assert f"would freeze all of D's {n} layers" in result.stderr and not (tmp_path / "run").exists()
