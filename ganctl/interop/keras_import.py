"""Generators saved by the Keras tutorials' own code, read into ganctl's PyTorch networks.

Two file forms are read, with h5py and zipfile only (nothing in the file is executed, no
Keras needed):

- Keras 2's HDF5 (``model.save("generator_model_200.h5")``): ``model_weights`` holds one group
  per layer, its attribute ``weight_names`` lists the layer's arrays in order
  (``dense/kernel:0``, ``dense/bias:0``...), each a dataset at that path under the group; the
  root attribute ``model_config`` (JSON) names each layer's class.
- Keras 3's ``.keras`` zip: ``config.json`` (the layers in order, their classes) and
  ``model.weights.h5``, where a layer's arrays are ``.../<layer name>/vars/0, 1, ...``.

Layouts differ from PyTorch's: Dense kernels are ``(in, out)``, Conv2D ``(kh, kw, in, out)``,
Conv2DTranspose ``(kh, kw, out, in)``; PyTorch wants ``(out, in)``, ``(out, in, kh, kw)``,
``(in, out, kh, kw)``. And the Dense -> Reshape at the start of G reshapes channel-last
``(h, w, c)`` where PyTorch unflattens ``(c, h, w)``: the Dense's output units (and a batch norm
over them) are permuted so that the same latent gives the same feature map.

The Keras layers with weights are matched in order with the PyTorch modules with parameters;
every class and every shape is checked, and a mismatch is one sentence naming the layer.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganctl.errors import GanctlError

IMPORTABLE = ("cifar-dcgan", "mnist-dcgan", "tf-dcgan")
INSTALL_HINT = "pip install 'ganctl[keras-import]'"
MAX_CONFIG_BYTES = 10_000_000
# Keras' names of each layer's arrays, in PyTorch's order (Keras 3 stores them as vars/0, 1, ... in this order)
KERAS_VARS = {
    "Dense": ("kernel", "bias"),
    "Conv2D": ("kernel", "bias"),
    "Conv2DTranspose": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}
TORCH_KIND = {nn.Linear: "Dense", nn.Conv2d: "Conv2D", nn.ConvTranspose2d: "Conv2DTranspose",
              nn.BatchNorm1d: "BatchNormalization", nn.BatchNorm2d: "BatchNormalization"}


@dataclass
class KerasLayer:
    name: str
    kind: str  # Keras class name; "" when the file does not say
    arrays: dict[str, np.ndarray]  # kernel, bias, gamma... (as many as the layer has)


def read_keras_layers(path: Path) -> list[KerasLayer]:
    """The layers with weights of a Keras ``.h5`` or ``.keras`` file, in model order."""
    try:
        import h5py
    except ImportError:
        raise GanctlError(f"reading Keras files needs the h5py package: {INSTALL_HINT}") from None
    path = Path(path)
    if not path.is_file():
        raise GanctlError(f"{path} does not exist or is not a file")
    try:
        if zipfile.is_zipfile(path):
            return _read_keras3(path, h5py)
        with h5py.File(path, "r") as f:
            return _read_keras2(f, path)
    except OSError as exc:
        raise GanctlError(f"{path} is neither a Keras HDF5 (.h5) file nor a .keras archive ({(str(exc).splitlines() or [''])[0][:100]})") from None
    except (KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as exc:  # a group where an array should be, a missing entry
        raise GanctlError(f"{path} is a damaged Keras file ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:100]})") from None


def _read_keras2(f, path: Path) -> list[KerasLayer]:
    root = f["model_weights"] if "model_weights" in f else f  # model.save() vs save_weights()
    if "layer_names" not in root.attrs:
        raise GanctlError(f"{path} is an HDF5 file but not a Keras model or weights file (no layer_names)")
    kinds = _kinds_from_config(_text(f.attrs.get("model_config")), path) if "model_config" in f.attrs else {}
    layers = []
    for name in map(_text, root.attrs["layer_names"]):
        group = root[name]
        weight_names = [_text(w) for w in group.attrs.get("weight_names", [])]
        if not weight_names:
            continue
        arrays = {}
        for weight_name in weight_names:
            short = weight_name.split("/")[-1].split(":")[0]  # "dense/kernel:0" -> "kernel"
            arrays[short] = np.asarray(group[weight_name], dtype=np.float32)
        layers.append(KerasLayer(name, kinds.get(name, ""), arrays))
    return layers


def _read_keras3(path: Path, h5py) -> list[KerasLayer]:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise GanctlError(f"{path} is a zip archive but not a .keras model (it needs config.json and model.weights.h5)")
        if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
            raise GanctlError(f"{path}'s config.json is implausibly large")
        config = archive.read("config.json").decode("utf-8", errors="replace")
        weights = io.BytesIO(archive.read("model.weights.h5"))
    order = _layer_order(config, path)
    with h5py.File(weights, "r") as f:
        groups: dict[str, object] = {}

        def note_vars(key: str, item) -> None:  # (returning a value would stop h5py's walk)
            if key.endswith("/vars"):
                groups.setdefault(key.split("/")[-2], item)

        f.visititems(note_vars)
        layers = []
        for name, kind in order:
            if kind not in KERAS_VARS or name not in groups:
                continue
            variables = groups[name]
            count = len(variables.keys())
            roles = KERAS_VARS[kind][:count]
            layers.append(KerasLayer(name, kind, {role: np.asarray(variables[str(i)], dtype=np.float32) for i, role in enumerate(roles)}))
    return layers


def _layer_order(config_text: str, path: Path) -> list[tuple[str, str]]:
    try:
        config = json.loads(config_text)
        entries = config["config"]["layers"]
        return [(layer["config"]["name"], layer["class_name"]) for layer in entries]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise GanctlError(f"{path}'s model config is not a Keras Sequential or Functional model's") from None


def _kinds_from_config(config_text: str, path: Path) -> dict[str, str]:
    return dict(_layer_order(config_text, path))


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def infer_arch_args(layers: list[KerasLayer], architecture, path: Path) -> dict[str, int]:
    """The latent size (the first Dense's inputs) and channels (the last layer's outputs) the file was trained with."""
    first = layers[0].arrays.get("kernel") if layers else None
    if first is None or first.ndim != 2:
        raise GanctlError(f"{path} does not start with a Dense layer; the {architecture.name} generator does (is it the generator?)")
    probe = architecture.build_generator()
    last_module = [m for m in probe.modules() if type(m) in TORCH_KIND][-1]
    last = layers[-1].arrays.get("kernel")
    if last is None or last.ndim != 4:
        raise GanctlError(f"{path} does not end with a convolution; the {architecture.name} generator does (is it the generator?)")
    channels = int(last.shape[2] if isinstance(last_module, nn.ConvTranspose2d) else last.shape[3])
    if channels not in architecture.channels:
        raise GanctlError(f"{path}'s last layer makes {channels} channels; {architecture.name} makes {' or '.join(map(str, architecture.channels))}")
    return architecture.arch_args(channels=channels, latent_dim=int(first.shape[0]))


def load_keras_into(generator: nn.Module, layers: list[KerasLayer], path: Path) -> None:
    """Copy the Keras arrays into ``generator`` (unconditional, an ``nn.Sequential``), checking every shape."""
    targets = [m for m in generator.modules() if type(m) in TORCH_KIND]
    if len(layers) != len(targets):
        raise GanctlError(
            f"{path} has {len(layers)} layers with weights ({', '.join(l.name for l in layers)}); "
            f"this architecture has {len(targets)}: is it the generator of the architecture you named?"
        )
    permutation = _channel_last_permutation(generator)
    before_reshape = _modules_before_reshape(generator)
    state = {}
    for layer, module in zip(layers, targets):
        kind = TORCH_KIND[type(module)]
        if layer.kind and layer.kind != kind:
            raise GanctlError(f"{path}: layer {layer.name} is a {layer.kind} where the architecture has a {kind}")
        tensors = _to_torch(layer, kind, module, path)
        if module in before_reshape and permutation is not None:
            tensors = {k: v[permutation] for k, v in tensors.items()}  # output units in (c, h, w) order
        prefix = next(n for n, m in generator.named_modules() if m is module)
        state.update({f"{prefix}.{k}": v for k, v in tensors.items()})
    for name, value in generator.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = value.clone()
    generator.load_state_dict(state, strict=True)


def _to_torch(layer: KerasLayer, kind: str, module: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    arrays, wanted = layer.arrays, KERAS_VARS[kind]
    has_bias = getattr(module, "bias", None) is not None
    expected_roles = set(wanted) if kind == "BatchNormalization" else {"kernel"} | ({"bias"} if has_bias else set())
    if set(arrays) != expected_roles:
        raise GanctlError(f"{path}: layer {layer.name} holds {', '.join(sorted(arrays))}; the architecture's {kind} needs {', '.join(sorted(expected_roles))}")
    if kind == "BatchNormalization":
        out = {"weight": arrays["gamma"], "bias": arrays["beta"], "running_mean": arrays["moving_mean"], "running_var": arrays["moving_variance"]}
    elif kind == "Dense":
        out = {"weight": arrays["kernel"].T}
    else:  # (kh, kw, in, out) -> (out, in, kh, kw); transposed: (kh, kw, out, in) -> (in, out, kh, kw)
        out = {"weight": arrays["kernel"].transpose(3, 2, 0, 1)} if arrays["kernel"].ndim == 4 else {"weight": arrays["kernel"]}
    if "bias" in arrays and kind != "BatchNormalization":
        out["bias"] = arrays["bias"]
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    for key, value in out.items():
        if tuple(value.shape) != expected[key]:
            keras_shape = tuple(arrays[_keras_role(kind, key)].shape)
            raise GanctlError(
                f"{path}: layer {layer.name}'s {_keras_role(kind, key)} has shape {keras_shape}, "
                f"which does not fit the architecture's {kind} ({key} {expected[key]} in PyTorch's layout)"
            )
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def _keras_role(kind: str, torch_key: str) -> str:
    if kind == "BatchNormalization":
        return {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}[torch_key]
    return {"weight": "kernel", "bias": "bias"}[torch_key]


def _channel_last_permutation(generator: nn.Module) -> torch.Tensor | None:
    """Index of each PyTorch unit ``(c, h, w)`` among Keras' ``(h, w, c)`` units, from G's Unflatten."""
    unflatten = next((m for m in generator.modules() if isinstance(m, nn.Unflatten)), None)
    if unflatten is None:
        return None
    c, h, w = unflatten.unflattened_size
    return torch.arange(h * w * c).reshape(h, w, c).permute(2, 0, 1).flatten()


def _modules_before_reshape(generator: nn.Module) -> set[nn.Module]:
    """The modules that act on the flat units (those before the Unflatten)."""
    before = set()
    for module in generator.modules():
        if isinstance(module, nn.Unflatten):
            return before
        if type(module) in TORCH_KIND:
            before.add(module)
    return set()


def keras_layers_of(generator: nn.Module) -> list[KerasLayer]:
    """The inverse mapping: ``generator``'s weights as the Keras layers that would hold them
    (tests write Keras files from it; it documents the mapping from the other side)."""
    permutation = _channel_last_permutation(generator)
    inverse = torch.argsort(permutation) if permutation is not None else None
    before_reshape = _modules_before_reshape(generator)
    counts: dict[str, int] = {}
    layers = []
    for module in (m for m in generator.modules() if type(m) in TORCH_KIND):
        kind = TORCH_KIND[type(module)]
        base = {"Dense": "dense", "Conv2D": "conv2d", "Conv2DTranspose": "conv2d_transpose", "BatchNormalization": "batch_normalization"}[kind]
        name = base if base not in counts else f"{base}_{counts[base]}"
        counts[base] = counts.get(base, 0) + 1
        state = {k: v.detach().clone() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
        if module in before_reshape and inverse is not None:
            state = {k: v[inverse] for k, v in state.items()}
        if kind == "BatchNormalization":
            arrays = {"gamma": state["weight"], "beta": state["bias"], "moving_mean": state["running_mean"], "moving_variance": state["running_var"]}
        elif kind == "Dense":
            arrays = {"kernel": state["weight"].T}
        else:
            arrays = {"kernel": state["weight"].permute(2, 3, 1, 0)}
        if "bias" in state and kind != "BatchNormalization":
            arrays["bias"] = state["bias"]
        layers.append(KerasLayer(name, kind, {k: v.contiguous().numpy() for k, v in arrays.items()}))
    return layers
