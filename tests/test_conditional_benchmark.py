"""The logic of benchmarks/conditional_mnist_check.py on tiny made-up digits: the classifier
learns them, and a generator that draws the asked-for class passes the check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ganctl.networks.weights import save_generator
from tests.formats import write_idx_images, write_idx_labels

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "conditional_mnist_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("conditional_mnist_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digit_like(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 gray pictures: class c is a bright bar in the c-th of ten horizontal bands, plus noise."""
    images = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 255
    return images


class BarGenerator(nn.Module):
    """A conditional 'generator' drawing the bar of the asked-for class, in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z, y):
        images = torch.full((len(y), 1, 28, 28), -0.9) + 0 * self.unused
        for i, c in enumerate(y.tolist()):
            images[i, 0, 2 + 2 * c : 4 + 2 * c, 4:24] = 1.0
        return images + 0.01 * z[:, :1, None, None]


@pytest.fixture
def bars_architecture():
    """A registered architecture whose generator is BarGenerator, removed afterwards."""
    from ganctl import ARCHITECTURES, Recipe, register_architecture

    @register_architecture("bars", recipe=Recipe(image_size=28, channels=1, latent_dim=2), description="x", image_sizes=(28,))
    def bars(image_size, channels, latent_dim, num_classes=0):
        return BarGenerator(), nn.Identity()

    yield
    ARCHITECTURES.remove("bars")


def test_the_check_trains_a_classifier_and_scores_a_generator(tmp_path, bars_architecture):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 200), ("t10k", 50)):
        labels = np.arange(n) % 10
        write_idx_images(raw / f"{split}-images-idx3-ubyte", digit_like(labels, rng))
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
    script = load_script()
    train_x, train_y = script.load_split(tmp_path, "train")
    test_x, test_y = script.load_split(tmp_path, "test")
    model = script.train_classifier(train_x, train_y, epochs=3, batch=32)
    assert (script.predict(model, test_x) == test_y).float().mean() > 0.95
    path = tmp_path / "bars.safetensors"
    save_generator(path, BarGenerator(), architecture="bars", arch_args={"image_size": 28, "channels": 1, "latent_dim": 2, "num_classes": 10},
                   pixel_range=(-1.0, 1.0), class_names=script.MNIST_CLASSES)  # fmt: skip
    images, asked, names = script.generated_digits(path, 50, seed=0)
    assert images.shape == (50, 1, 28, 28) and asked.tolist() == np.repeat(np.arange(10), 5).tolist()
    result = script.agreement(script.predict(model, images), asked, names)
    assert result["overall"] >= 0.95 and set(result["per_class"]) == set(names)
    wrong = script.agreement(script.predict(model, images), (asked + 1) % 10, names)  # asked for the wrong classes
    assert wrong["overall"] < 0.2
