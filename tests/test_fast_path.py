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


def run_steps(arch: str, *, channels_last: bool, compile: bool, steps: int = STEPS):
    step, generator, recipe = ganctl_step(arch, torch.device("cpu"), amp=False, channels_last=channels_last,
                                     compile=compile, batch_size=8)
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
