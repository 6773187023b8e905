"""One assembly of a run: what `ganctl train` and `ganctl bench` both build."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganctl.bench.harness import ganctl_step
from ganctl.networks.spectral import has_parametrizations
from ganctl.registry import ARCHITECTURES
from ganctl.training.assembly import Hardware, assemble, synthetic_images
from ganctl.training.checkpoint import NamedState

CPU = Hardware(torch.device("cpu"), amp=False)


def parts_of(arch: str, **recipe_changes):
    recipe = ARCHITECTURES.get(arch).obj.recipe.replace(batch_size=8, **recipe_changes)
    return assemble(arch, recipe, synthetic_images(recipe, n=32), CPU, seed=0)


def test_bench_times_the_recipes_own_step_with_spectral_norm():
    """SNGAN's recipe asks for spectral norm in D: the step bench times has it (it used to be missing)."""
    step, _, recipe = ganctl_step("sngan-upconv-small", torch.device("cpu"), amp=False, channels_last=True, compile=False, batch_size=8)
    assert recipe.spectral_norm == "d"
    assert has_parametrizations(step.step.D) and not has_parametrizations(step.step.G)
    assert step.step.recipe.d_input_scale == recipe.d_input_scale != 1


def test_label_smoothing_reaches_the_loss():
    parts = parts_of("cifar-dcgan", label_smoothing=0.1)
    assert parts.step.loss.real_target == pytest.approx(0.9)


def test_init_option_is_honoured():
    """--init used to be ignored: the networks were initialised by the architecture's own recipe."""
    def first_weight(init: str) -> torch.Tensor:
        parts = parts_of("cifar-dcgan", init=init)
        return next(m.weight for m in parts.G.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d)))

    keras, dcgan = first_weight("keras"), first_weight("dcgan")
    assert not torch.equal(keras, dcgan)
    assert dcgan.std().item() == pytest.approx(0.02, rel=0.1)  # N(0, 0.02)


def test_the_same_seed_assembles_the_same_run():
    a, b = parts_of("tf-dcgan"), parts_of("tf-dcgan")
    for (name, x), (_, y) in zip(a.G.state_dict().items(), b.G.state_dict().items()):
        assert torch.equal(x, y), name
    assert torch.equal(a.fixed_z, b.fixed_z)


def test_checkpoint_part_names_are_those_checkpoints_have_always_had():
    """Renaming a part would make every checkpoint written before unreadable (it would lack the part)."""
    parts = parts_of("cifar-dcgan", ema_kimg=1.0, augment="color", regularizer="r1", lr_decay="linear")
    state = NamedState()
    parts.add_state(state, current_step=lambda: 0)
    assert list(state.parts) == [
        "G", "D", "opt_G", "opt_D", "lr_G", "lr_D", "G_ema", "real", "rng_latent", "rng_penalty",
        "rng_augment", "rng_torch", "fixed_z", "stats",
    ]  # fmt: skip


def test_a_process_that_does_not_write_writes_nothing(tmp_path):
    from ganctl.training.writer import SilentWriter

    writer = SilentWriter(tmp_path / "run")
    writer.record({"step": 1})
    writer.grid(None, "epoch-0001", 1)
    writer.animation()
    writer.close()
    assert not (tmp_path / "run").exists()


def test_the_trainer_is_small():
    """The loop is the step plus events; set-up, outputs and resume live in their own modules."""
    import inspect

    from ganctl.training.loop import Trainer

    assert len(inspect.getsource(Trainer).splitlines()) < 200


def test_no_core_module_is_over_400_lines():
    from pathlib import Path

    import ganctl

    root = Path(ganctl.__file__).parent
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
