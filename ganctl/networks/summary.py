"""Keras-style summaries of a network: layers, output shapes, parameters, FLOPs.

Parameters are counted as Keras counts them, so the tutorials' published numbers can be checked:
batch-norm running mean and variance are "non-trainable" (``num_batches_tracked`` is
PyTorch bookkeeping and is not counted). FLOPs are those of one forward pass per image,
counted by PyTorch's own ``FlopCounterMode`` (a multiply-add is two FLOPs; convolutions and
matrix products only, as is usual).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class LayerRow:
    name: str  # the module's path in the network ("3" or "block.conv")
    kind: str  # class name ("ConvTranspose2d")
    output_shape: list[int]  # without the batch dimension
    trainable_params: int
    non_trainable_params: int


@dataclass
class NetworkSummary:
    layers: list[LayerRow]
    trainable_params: int
    non_trainable_params: int
    total_params: int
    flops_per_image: int

    def to_dict(self) -> dict:
        return asdict(self)


# Keras' layer names for PyTorch's modules (Keras names a layer after its class, snake_case).
KERAS_NAMES = {
    "Linear": "dense", "Conv2d": "conv2d", "ConvTranspose2d": "conv2d_transpose", "LeakyReLU": "leaky_re_lu",
    "ReLU": "re_lu", "BatchNorm1d": "batch_normalization", "BatchNorm2d": "batch_normalization",
    "Dropout": "dropout", "Flatten": "flatten", "Unflatten": "reshape", "Tanh": "activation",
    "Sigmoid": "activation", "Upsample": "up_sampling2d", "AvgPool2d": "average_pooling2d",
    "MaxPool2d": "max_pooling2d", "Identity": "identity",
}  # fmt: skip


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def keras_names(layers: list[LayerRow]) -> list[str]:
    """The names Keras would give: ``dense``, ``conv2d_transpose_1``, ``leaky_re_lu_2``...
    (per network, counted per kind) for a module without a name of its own (a number in a
    Sequential); a module with its own name keeps it."""
    seen: dict[str, int] = {}
    names = []
    for row in layers:
        if not row.name.split(".")[-1].isdigit():
            names.append(row.name)
            continue
        base = KERAS_NAMES.get(row.kind) or _snake(row.kind)
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count}")
    return names


def keras_shape(shape: list[int]) -> list[int]:
    """PyTorch's (C, H, W) as Keras prints it, (H, W, C); other ranks unchanged."""
    return [*shape[1:], shape[0]] if len(shape) == 3 else list(shape)


def readable_size(params: int, bytes_per_value: int = 4) -> str:
    """The memory of ``params`` float32 values as Keras' summary prints it (1 KB = 1024 bytes)."""
    size = float(params * bytes_per_value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.2f} GB"


def count_params(module: nn.Module, recurse: bool = True) -> tuple[int, int]:
    """``(trainable, non_trainable)`` parameters, Keras style."""
    trainable = sum(p.numel() for p in module.parameters(recurse) if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters(recurse) if not p.requires_grad)
    # buffers that are state (saved with the weights); constants such as a fixed filter are not counted
    modules = module.modules() if recurse else [module]
    buffers = sum(
        b.numel() for m in modules for name, b in m.named_buffers(recurse=False)
        if name not in m._non_persistent_buffers_set and name != "num_batches_tracked"
    )  # fmt: skip
    return trainable, frozen + buffers


@torch.no_grad()
def summarize(module: nn.Module, example: torch.Tensor, *more_inputs: torch.Tensor) -> NetworkSummary:
    """Run ``example`` (a batch of two or more; ``more_inputs`` beside it, e.g. classes) through
    ``module`` in eval mode and describe it."""
    rows: list[LayerRow] = []
    hooks = []
    for name, m in module.named_modules():
        if next(m.children(), None) is not None:  # containers: their leaves are listed instead
            continue

        def record(m: nn.Module, _inputs, output, name: str = name) -> None:
            trainable, non_trainable = count_params(m, recurse=False)
            rows.append(LayerRow(name, type(m).__name__, list(output.shape[1:]), trainable, non_trainable))

        hooks.append(m.register_forward_hook(record))

    was_training = module.training
    module.eval()  # batch norm on a tiny batch, no dropout: the shapes and FLOPs are the same
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            module(example, *more_inputs)
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)

    trainable, non_trainable = count_params(module)
    return NetworkSummary(
        layers=rows,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        total_params=trainable + non_trainable,
        flops_per_image=counter.get_total_flops() // example.shape[0],
    )


def summarize_pair(generator: nn.Module, discriminator: nn.Module, latent_dim: int, num_classes: int = 0) -> dict[str, NetworkSummary]:
    """Summaries of both networks of an architecture, D fed with G's own output shape; with
    ``num_classes``, class-conditional networks, both called with a class (0) per image."""
    z = torch.zeros(2, latent_dim)
    labels = (torch.zeros(2, dtype=torch.long),) if num_classes else ()
    g = summarize(generator, z, *labels)
    with torch.no_grad():
        images = generator.eval()(z, *labels)
    generator.train()
    d = summarize(discriminator, images, *labels)
    return {"generator": g, "discriminator": d}
