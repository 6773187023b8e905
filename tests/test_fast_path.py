"""The fast path computes the same thing as the plain eager one.

Dropout is switched off here: its masks are random draws whose order depends on the memory
layout (channels_last) and, compiled, on inductor's own generator, so with dropout the two
paths draw different masks from the same distribution. Everything else must agree.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganctl.bench.harness import ganctl_step


STEPS = 3


def run_steps(arch: str, *, channels_last: bool, compile: bool, steps: int = STEPS, notes: list[str] | None = None):
    step, generator, recipe = ganctl_step(arch, torch.device("cpu"), amp=False, channels_last=channels_last,
                                     compile=compile, batch_size=8)
    if notes is not None:
        step.step.log = notes.append
    for module in step.step.D.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    losses = []
    for _ in range(steps):
        step()
        losses.append(torch.tensor(list(step.step.stats.read().values())))
        step.step.stats.reset()
    losses = torch.stack(losses)
    return losses, {k: v.clone() for k, v in generator.state_dict().items()}, recipe.g_lr


def assert_same(arch: str, *, compile: bool, tolerance: float) -> None:
    eager_losses, eager_weights, lr = run_steps(arch, channels_last=False, compile=False)
    fast_losses, fast_weights, _ = run_steps(arch, channels_last=True, compile=compile)
    torch.testing.assert_close(fast_losses, eager_losses, rtol=tolerance, atol=tolerance)
    # Adam moves a weight by up to ~lr per step whatever the gradient's size, so rounding that
    # flips the sign of a near-zero gradient shows up as a difference of up to 2 * lr a step.
    weight_tolerance = 2 * lr * STEPS
    for name, value in eager_weights.items():
        torch.testing.assert_close(fast_weights[name], value, rtol=tolerance, atol=weight_tolerance)


@pytest.mark.parametrize("arch", ["cifar-dcgan", "tf-dcgan"])
def test_channels_last_matches_eager_nchw(arch):
    assert_same(arch, compile=False, tolerance=1e-4)


@pytest.mark.slow
def test_compiled_matches_eager(fresh_dynamo):
    import torch._inductor.config as inductor

    # eager's random numbers, for comparison; inductor's own patch() (monkeypatch's undo of a
    # config module attribute deletes it, and every later compile in the process fails)
    with inductor.patch(fallback_random=True):
        assert_same("mnist-dcgan", compile=True, tolerance=1e-3)


def test_a_failing_compile_trains_eagerly_from_the_same_draws(monkeypatch):
    """No C++ compiler (or any failure of torch.compile): one line, then the eager computation
    of the draws already made, so the run computes exactly what an eager run computes."""
    eager_losses, eager_weights, _ = run_steps("mnist-dcgan", channels_last=False, compile=False)

    def refuse(*args, **kwargs):
        raise torch._dynamo.exc.TorchDynamoException("no working C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda fn, **options: refuse)
    notes = []
    losses, weights, _ = run_steps("mnist-dcgan", channels_last=False, compile=True, notes=notes)
    assert torch.equal(losses, eager_losses)
    for name, value in eager_weights.items():
        assert torch.equal(weights[name], value)
    assert notes == ["torch.compile failed (TorchDynamoException); training in eager mode (--no-compile skips compiling)"]


def test_an_error_while_training_is_not_taken_for_a_compile_failure(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(torch, "compile", lambda fn, **options: broken)
    step, _, _ = ganctl_step("mnist-dcgan", torch.device("cpu"), amp=False, channels_last=False, compile=True, batch_size=8)
    with pytest.raises(RuntimeError, match="out of memory"):
        step()


@pytest.mark.slow
# the separate update (D real half, D fake half, G) and the simultaneous one (a plain D update, GD)
@pytest.mark.parametrize("arch,kinds", [("cifar-dcgan", 3), ("tf-dcgan", 2)])
def test_every_phase_compiles_as_one_graph(fresh_dynamo, arch, kinds):
    """Whole-phase compilation: G, augmentation, D, losses and statistics in one graph per phase
    (forward and backward), with every ingredient on; the lazy penalty stays eager."""
    from torch._dynamo.utils import counters

    counters.clear()
    step, _, _ = ganctl_step(arch, torch.device("cpu"), amp=False, channels_last=True, compile=True, batch_size=8, ingredients=True)
    for _ in range(5):  # past one lazy R1 interval (every 4)
        step()
    assert step.step.compiled, "fell back to eager"
    assert dict(counters["graph_break"]) == {}
    # one compiled function per kind of phase (the two D updates share theirs)
    assert len(step.step.compiled) == kinds


TINY = "tiny-mlp-compile-check"


@pytest.fixture
def tiny_arch():
    """A two-layer G and D at 8 px: small enough to compile in seconds on a CPU."""
    from ganctl.recipe import Recipe
    from ganctl.registry import ARCHITECTURES, register_architecture

    @register_architecture(TINY, recipe=Recipe(image_size=8, latent_dim=8, batch_size=8, d_update="joint"),
                           description="compile check", image_sizes=(8,))
    def build(image_size, channels, latent_dim):
        pixels = channels * image_size * image_size
        G = nn.Sequential(nn.Linear(latent_dim, pixels), nn.Tanh(), nn.Unflatten(1, (channels, image_size, image_size)))
        D = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        return G, D

    yield TINY
    ARCHITECTURES._entries.pop(TINY, None)


def test_the_trainers_step_really_compiles_and_matches_eager(fresh_dynamo, tiny_arch):
    """The step as `ganctl train` assembles it, compiled: every phase a compiled graph (no
    silent fallback to eager, no graph break), and the same losses and weights as eager."""
    import torch._inductor.config as inductor
    from torch._dynamo.utils import counters

    from ganctl.registry import ARCHITECTURES
    from ganctl.training.assembly import Hardware, assemble, synthetic_images

    def train(compile: bool):
        recipe = ARCHITECTURES.get(tiny_arch).obj.recipe
        parts = assemble(tiny_arch, recipe, synthetic_images(recipe, n=64), Hardware(torch.device("cpu"), amp=False, compile=compile))
        notes: list[str] = []
        parts.step.log = notes.append
        losses = []
        for i in range(3):
            parts.step(i)
            losses.append(torch.tensor(list(parts.stats.read().values())))
            parts.stats.reset()
        return parts, torch.stack(losses), notes

    _, eager_losses, _ = train(compile=False)
    counters.clear()
    with inductor.patch(fallback_random=True):
        parts, compiled_losses, notes = train(compile=True)
    assert notes == [] and parts.step.compiled, "fell back to eager"
    assert len(parts.step.compiled) == 2  # joint: the D update and the G update
    assert counters["stats"]["unique_graphs"] >= 2  # each phase was traced into a graph
    assert dict(counters["graph_break"]) == {}
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-4, atol=1e-5)
