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


@pytest.mark.parametrize("mode", ["separate", "joint", "simultaneous"])
def test_micro_batches_give_the_full_batchs_step_up_to_rounding(mode):
    """Gradients added over micro-batches: the same update as the whole batch, for networks with
    no state that changes with each call (no batch statistics in training mode, no spectral
    norm's power iteration, no dropout): sngan-cnn-small without spectral norm, G's batch norm
    on its running statistics."""
    def run(micro):
        recipe = ARCHITECTURES.get("sngan-cnn-small").obj.recipe.replace(
            batch_size=16, d_update=mode, augment="translation", regularizer="r1", reg_every=1, reg_weight=1.0,
            spectral_norm="none")
        parts = assemble("sngan-cnn-small", recipe, synthetic_images(recipe, n=64),
                         Hardware(torch.device("cpu"), amp=False, micro_batch=micro), seed=3)
        for module in parts.G.modules():  # batch statistics differ by micro-batch: use the running ones
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        parts.step(0)
        # the last phases' gradients (each phase zeroes its own networks' first): D's last update and G's
        grads = {f"{net}.{k}": p.grad for net, module in (("D", parts.nets.D), ("G", parts.G))
                 for k, p in module.named_parameters() if p.grad is not None}  # fmt: skip
        return parts.nets.D.state_dict(), parts.stats.read(), grads

    (whole, whole_stats, whole_grads), (sliced, sliced_stats, sliced_grads) = run(None), run(4)
    assert whole_grads.keys() == sliced_grads.keys() and len(whole_grads) > 4
    for name, grad in whole_grads.items():  # summed over 4 slices of a quarter each: the whole batch's mean
        torch.testing.assert_close(sliced_grads[name], grad, rtol=1e-3, atol=1e-6, msg=name)
    # Adam moves a weight by up to ~lr whatever its gradient's size: rounding that flips a
    # near-zero gradient's sign shows as up to 2 lr
    lr = ARCHITECTURES.get("sngan-cnn-small").obj.recipe.d_lr
    for name, value in whole.items():
        torch.testing.assert_close(sliced[name], value, rtol=0, atol=2 * lr, msg=name)
    assert whole_stats.keys() == sliced_stats.keys()
    for name in whole_stats:
        assert sliced_stats[name] == pytest.approx(whole_stats[name], rel=1e-4, abs=1e-5), name


def test_a_micro_batch_that_does_not_divide_the_batch_is_refused(tmp_path):
    result = train(*QUICK, "--arch", "mnist-dcgan", "--micro-batch", "3", "--out", str(tmp_path / "run"))
    one_line_error(result, "--micro-batch 3 must divide each process's half-batch", "8 images")
    assert not (tmp_path / "run").exists()
