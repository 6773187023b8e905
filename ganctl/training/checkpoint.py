"""Checkpoints: the whole training state in one safetensors file.

The state is a table of named parts (``NamedState``): networks, the EMA generator, optimisers,
LR schedules, the real-image sampler, every random generator, the statistics of the unfinished
log interval, the health watches. Saving and restoring both iterate that one table, so a part
is listed once and nothing private is reached into. Each part gives tensors (stored as
``<part>/<key>`` safetensors tensors) and JSON-able values (stored under its name in the
file's metadata). One file per checkpoint, written atomically, so a checkpoint on disk is
always whole, and ``kill -9`` at any moment loses at most the work since the last one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes
from ganctl.runfolder import layout
from ganctl.networks.weights import state_tensors

FORMAT = "ganctl-checkpoint"
FORMAT_VERSION = "2"  # 2: named parts (the rebuilt training step)

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Part:
    """One stateful piece of a run: how to save it and how to load it back."""

    save: Callable[[], tuple[Tensors, Any]]
    load: Callable[[Tensors, Any], None]


class NamedState:
    """The run's stateful parts by name; what checkpoints save and restore."""

    def __init__(self) -> None:
        self.parts: dict[str, Part] = {}

    def add(self, name: str, save: Callable[[], tuple[Tensors, Any]], load: Callable[[Tensors, Any], None]) -> None:
        if name in self.parts or "/" in name:
            raise ValueError(f"state part name {name!r} is taken or contains '/'")
        self.parts[name] = Part(save, load)

    def add_module(self, name: str, module: torch.nn.Module) -> None:
        self.add(name, lambda: (state_tensors(module), None), lambda t, _: module.load_state_dict(t))

    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        self.add(name, lambda: optimizer_state(optimizer), lambda t, m: load_optimizer(optimizer, t, m))

    def add_rng(self, name: str, generator: torch.Generator) -> None:
        self.add(name, lambda: ({"state": generator.get_state()}, None), lambda t, _: generator.set_state(t["state"]))

    def add_values(self, name: str, obj: Any, fields: tuple[str, ...]) -> None:
        """Plain attributes (numbers, strings, booleans) of ``obj``."""
        self.add(
            name,
            lambda: ({}, {f: getattr(obj, f) for f in fields}),
            lambda _, values: [setattr(obj, f, values[f]) for f in fields],
        )

    def collect(self) -> tuple[Tensors, dict[str, Any]]:
        """Every part's tensors (copied to the CPU) and values. Under torchrun every process calls
        it, because parts of its own (random states) are gathered to the one that writes."""
        tensors: Tensors = {}
        values: dict[str, Any] = {}
        for name, part in self.parts.items():
            part_tensors, values[name] = part.save()
            tensors.update({f"{name}/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in part_tensors.items()})
        return tensors, values

    def save(self, path: Path, *, step: int) -> None:
        tensors, values = self.collect()
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ganctl_version": __version__,
            "step": str(step),
            "values": json.dumps(values),
        }
        atomic_write_bytes(Path(path), save(tensors, metadata=metadata))

    def load(self, checkpoint: Checkpoint) -> None:
        missing = [name for name in self.parts if name not in checkpoint.values]
        if missing:
            raise GanctlError(
                f"{checkpoint.path} lacks {', '.join(missing)}: it was written by a run with other options"
            )
        for name, part in self.parts.items():
            try:
                part.load(checkpoint.group(name), checkpoint.values[name])
            except GanctlError:
                raise
            except Exception as exc:  # tensors of other shapes, values of other types: damaged or another run's
                raise GanctlError(
                    f"{checkpoint.path} does not fit this run: its part '{name}' cannot be loaded ({_first_line(exc)})"
                ) from None


@dataclass
class Checkpoint:
    path: Path
    step: int
    tensors: Tensors
    values: dict[str, Any]  # part name -> its JSON values

    def group(self, prefix: str) -> Tensors:
        """The tensors saved under ``prefix/``, with the prefix taken off."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}


def checkpoint_path(folder: Path, step: int) -> Path:
    """The checkpoint of ``step`` in a ``checkpoints/`` folder (the name is the run folder layout's)."""
    return Path(folder) / layout.checkpoint_name(step)


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    return layout.list_checkpoints(folder)


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[Tensors, dict[str, Any]]:
    """An optimiser's state split into tensors and JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: Tensors, meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise GanctlError(f"{path} is not a ganctl checkpoint")
            if metadata.get("format_version") != FORMAT_VERSION:
                raise GanctlError(
                    f"{path} is a checkpoint of an older ganctl (format {metadata.get('format_version', '1')}); "
                    "this version cannot resume it"
                )
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        step, values = int(metadata["step"]), json.loads(metadata["values"])
        if step < 0 or not isinstance(values, dict):
            raise ValueError("damaged metadata")
        return Checkpoint(Path(path), step, tensors, values)
    except GanctlError:
        raise
    except Exception as exc:  # safetensors' own errors (truncated, not safetensors), damaged metadata
        raise GanctlError(f"{path} is not a readable checkpoint: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
