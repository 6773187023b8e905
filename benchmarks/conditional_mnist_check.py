"""Does a conditional MNIST generator draw the digit it is asked for? A classifier says.

    ganctl train --arch sngan-cnn-small --dataset mnist --data-dir DATA/mnist \\
        --image-size 28 --channels 1 --conditional --epochs 5 --out runs/cmnist
    python benchmarks/conditional_mnist_check.py --weights runs/cmnist/generator.safetensors \\
        --data-dir DATA/mnist --grid docs/images/conditional-mnist.png

1. A small CNN (two 3x3 conv layers, max pooling, a dense layer; ~99 % on MNIST test after
   two epochs) is trained on MNIST train; its test accuracy is printed as a sanity check.
2. The generator makes ``--n`` images (1,000 by default), the same number of each class,
   from seeded latents; they are brought to 28x28 gray as ganctl brings any images.
3. The classifier labels them; the share labelled with the class asked for is printed per class
   and in all, as JSON. The check passes at ``--threshold`` (0.95) and above (exit status 0).
4. With ``--grid``, ``ganctl sample --per-class 10`` writes the grid of the same generator.

The data is MNIST in the real IDX files (``$GANCTL_TEST_DATA/mnist`` or ``--data-dir``),
never downloaded. Not shipped with ganctl: a benchmark for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

MNIST_CLASSES = tuple(str(d) for d in range(10))


def default_data_dir() -> Path:
    shared = Path(os.environ.get("GANCTL_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    return shared / "mnist"


def load_split(data_dir: Path, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images as float (N, 1, 28, 28) in [0, 1] and their labels, through ganctl's own loader."""
    from ganctl.data import load_labelled

    loaded = load_labelled("mnist", data_dir=data_dir, split=split, image_size=28, channels=1, download=False, limit=limit)
    if loaded.labels is None:
        sys.exit(f"{data_dir} holds no MNIST label files (train-labels-idx1-ubyte.gz, t10k-labels-idx1-ubyte.gz)")
    return loaded.images.float() / 255, loaded.labels


def classifier(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )  # fmt: skip


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 2, batch: int = 128, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = classifier(int(labels.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), batch):
            index = order[start : start + batch]
            loss = nn.functional.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([model(images[i : i + batch]).argmax(dim=1) for i in range(0, len(images), batch)])


def generated_digits(weights: Path, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """``n`` images of a conditional generator, class by class, as float (n, 1, 28, 28) in [0, 1]."""
    from ganctl.conditional import labels_for
    from ganctl.data import convert
    from ganctl.latent.latents import random_latents
    from ganctl.latent.sampling import generate_all
    from ganctl.networks.weights import load_generator

    generator, info = load_generator(weights)
    if not info.class_names:
        sys.exit(f"{weights} is an unconditional generator; train it with --conditional")
    labels = labels_for(n, [1.0] * info.num_classes)
    images = generate_all(generator, random_latents(n, info.latent_dim, seed), info.pixel_range, device=torch.device("cpu"), labels=labels)
    # ganctl's own conversion to 28x28 gray (a no-op for a 28 px gray generator)
    images = torch.from_numpy(convert(images.permute(0, 2, 3, 1).numpy(), 28, 1))
    return images.float() / 255, labels, info.class_names


def agreement(predicted: torch.Tensor, asked: torch.Tensor, class_names) -> dict:
    """The share of images labelled with the class they were made for, per class and in all."""
    per_class = {
        name: round(float((predicted[asked == c] == c).float().mean()), 4) for c, name in enumerate(class_names) if (asked == c).any()
    }
    return {"overall": round(float((predicted == asked).float().mean()), 4), "per_class": per_class, "n": len(asked)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="a conditional MNIST generator file")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="the folder of the MNIST IDX files")
    parser.add_argument("--n", type=int, default=1000, help="generated images (the same number of each class)")
    parser.add_argument("--epochs", type=int, default=2, help="classifier training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--grid", type=Path, help="also write `ganctl sample --per-class 10` here")
    args = parser.parse_args()

    started = time.perf_counter()
    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "test")
    model = train_classifier(train_x, train_y, epochs=args.epochs, seed=args.seed)
    test_accuracy = float((predict(model, test_x) == test_y).float().mean())
    images, asked, names = generated_digits(args.weights, args.n, args.seed)
    if tuple(names) != MNIST_CLASSES:
        sys.exit(f"{args.weights} was trained on classes {', '.join(names)}, not MNIST's digits")
    result = {
        "weights": str(args.weights),
        "classifier_test_accuracy": round(test_accuracy, 4),
        "generated": agreement(predict(model, images), asked, names),
        "threshold": args.threshold,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["passed"] = result["generated"]["overall"] >= args.threshold
    if args.grid:
        command = [sys.executable, "-m", "ganctl", "sample", "--weights", str(args.weights), "--per-class", "10",
                   "--seed", str(args.seed), "--scale", "2", "--force", "--out", str(args.grid)]  # fmt: skip
        subprocess.run(command, check=True)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
