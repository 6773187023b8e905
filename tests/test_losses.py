"""Losses: values against their definitions, and the D/G sides."""

from __future__ import annotations

import math

import pytest
import torch

from ganctl.registry import LOSSES


def test_bce_is_the_keras_binary_crossentropy_of_the_sigmoid():
    loss = LOSSES.get("bce").obj()
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    p = torch.sigmoid(logits)
    assert torch.allclose(loss.d_real(logits), -torch.log(p).mean())
    assert torch.allclose(loss.d_fake(logits), -torch.log(1 - p).mean())
    assert torch.allclose(loss.g(logits), -torch.log(p).mean())  # non-saturating: the "real" target


def test_bce_is_stable_for_huge_logits():
    loss = LOSSES.get("bce").obj()
    assert math.isfinite(loss.d_fake(torch.tensor([[1e4]])).item())
    assert math.isfinite(loss.d_real(torch.tensor([[-1e4]])).item())


def test_label_smoothing_moves_the_real_target():
    loss = LOSSES.get("bce").obj(real_target=0.9)
    logits = torch.tensor([[0.3]])
    p = torch.sigmoid(logits)
    expected = -(0.9 * torch.log(p) + 0.1 * torch.log(1 - p)).mean()
    assert torch.allclose(loss.d_real(logits), expected)


def test_lsgan_is_least_squares():
    loss = LOSSES.get("lsgan").obj()
    out = torch.tensor([[1.0], [0.0], [2.0]])
    assert torch.allclose(loss.d_real(out), torch.tensor(0.5 * (0 + 1 + 1) / 3))
    assert torch.allclose(loss.d_fake(out), torch.tensor(0.5 * (1 + 0 + 4) / 3))
    assert torch.allclose(loss.g(out), torch.tensor(0.5 * (0 + 1 + 1) / 3))
    assert loss.says_real(out).tolist() == [[True], [False], [True]]


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_has_both_sides_and_gradients(name):
    loss = LOSSES.get(name).obj()
    logits = torch.randn(4, 1, requires_grad=True)
    if loss.paired:  # a relativistic loss: real and fake logits in pairs
        total = loss.d_pair(logits, logits.flip(0)) + loss.g_pair(logits.flip(0), logits)
    else:
        total = loss.d_real(logits) + loss.d_fake(logits) + loss.g(logits)
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert isinstance(loss.has_accuracy, bool)


def test_wgan_is_a_critic_without_accuracy():
    loss = LOSSES.get("wgan").obj()
    scores = torch.tensor([[3.0], [-1.0]])
    assert torch.allclose(loss.d_real(scores), torch.tensor(-1.0))
    assert torch.allclose(loss.d_fake(scores), torch.tensor(1.0))
    assert torch.allclose(loss.g(scores), torch.tensor(-1.0))
    assert loss.has_accuracy is False
