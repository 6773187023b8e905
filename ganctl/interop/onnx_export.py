"""A generator as an ONNX model, checked with onnxruntime before it is written.

The exporter is PyTorch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): the
dynamo exporter needs the separate ``onnxscript`` package, and these generators (linear,
transposed convolutions, batch norm in eval mode, an embedding) are what the TorchScript
exporter has always handled. Spectral norm is already baked into a generator file and the
file's weights are its EMA weights, so the exported graph is plain inference.

Inputs: ``z`` (float32, ``(batch, latent_dim)``) and, for a class-conditional generator,
``class`` (int64, ``(batch,)``); output ``images`` (float32, ``(batch, C, H, W)``) in the file's
pixel range. The batch dimension is dynamic. The model's metadata repeats the generator file's.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
import torch

from ganctl.errors import GanctlError
from ganctl.networks.weights import GeneratorInfo

OPSET = 17
INSTALL_HINT = "pip install 'ganctl[export]' (onnx and onnxruntime)"
# onnxruntime's float32 kernels differ from PyTorch's in summation order only: a few 1e-7 on
# these networks; an error of 1e-4 of the pixel range is far above that and far below a wrong graph.
TOLERANCE = 1e-4
CHECK_BATCH = 5  # not the traced batch of 2, so the check also proves the batch dimension dynamic


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a sentence saying what to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise GanctlError(f"ONNX export needs the {exc.name} package: {INSTALL_HINT}") from None
    return onnx, onnxruntime


def export_onnx(generator: torch.nn.Module, info: GeneratorInfo, metadata: dict[str, str]) -> tuple[bytes, float]:
    """``(the ONNX model's bytes, the largest difference from PyTorch found by the check)``.

    A difference above ``TOLERANCE`` × the pixel range's width is refused: the model is not returned.
    """
    onnx, _ = require_onnx()
    generator = generator.to("cpu").eval()
    inputs, names = _example_inputs(info, batch=2, seed=0)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not the user's business
        torch.onnx.export(
            generator, inputs, buffer, input_names=names, output_names=["images"],
            dynamic_axes={name: {0: "batch"} for name in [*names, "images"]}, opset_version=OPSET, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    difference = check_parity(data, generator, info)
    width = info.pixel_range[1] - info.pixel_range[0]
    if not difference <= TOLERANCE * width:
        raise GanctlError(
            f"the exported ONNX model does not reproduce the generator: its images differ by up to {difference:.3g} "
            f"(allowed {TOLERANCE * width:.3g}); nothing was written"
        )
    return data, difference


def check_parity(data: bytes, generator: torch.nn.Module, info: GeneratorInfo, seed: int = 1) -> float:
    """The largest absolute difference between onnxruntime's images and PyTorch's for the same inputs."""
    _, onnxruntime = require_onnx()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs, names = _example_inputs(info, batch=CHECK_BATCH, seed=seed)
    (images,) = session.run(["images"], {name: value.numpy() for name, value in zip(names, inputs)})
    with torch.no_grad():
        expected = generator(*inputs).float().numpy()
    if images.shape != expected.shape:
        return float("inf")
    return float(np.abs(images - expected).max())


def onnx_metadata(info: GeneratorInfo) -> dict[str, str]:
    """What a user of the ONNX file needs to know: the generator file's own description."""
    return {
        "format": "ganctl-generator-onnx",
        "architecture": info.architecture,
        "arch_args": json.dumps(info.arch_args),
        "latent_dim": str(info.latent_dim),
        "pixel_range": json.dumps(list(info.pixel_range)),
        "latent_distribution": "normal",
        "class_names": json.dumps(list(info.class_names)),
        "ganctl_version": info.ganctl_version,
    }


def _example_inputs(info: GeneratorInfo, batch: int, seed: int) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, info.latent_dim, generator=rng)
    if not info.num_classes:
        return (z,), ["z"]
    labels = torch.randint(0, info.num_classes, (batch,), generator=rng)
    return (z, labels), ["z", "class"]
