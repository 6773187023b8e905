"""Checkpoints: the whole training state in one safetensors file.

Tensors (both networks, both optimisers' moments, every random generator's state, the
shuffle order, the fixed sample latents) are safetensors tensors; scalars (step, epoch,
optimiser hyper-parameters) are JSON in the file's metadata. One file per checkpoint,
written atomically, so a checkpoint on disk is always whole, and ``kill -9`` at any moment
loses at most the work since the last one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes
from ganctl.weights import state_tensors

FORMAT = "ganctl-checkpoint"
_NAME = re.compile(r"step-(\d+)\.safetensors$")


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors saved under ``prefix/``, with the prefix taken off."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:09d}.safetensors"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("step-*.safetensors") if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state split into tensors and JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: Path,
    *,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    extra_tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    opt_meta = {}
    tensors.update({f"G/{k}": v for k, v in state_tensors(generator).items()})
    tensors.update({f"D/{k}": v for k, v in state_tensors(discriminator).items()})
    for name, optimizer in (("optG", g_optimizer), ("optD", d_optimizer)):
        opt_tensors, opt_meta[name] = optimizer_tensors(optimizer)
        tensors.update({f"{name}/{k}": v for k, v in opt_tensors.items()})
    tensors.update({k: v.detach().to("cpu", copy=True).contiguous() for k, v in extra_tensors.items()})
    metadata = {
        "format": FORMAT,
        "ganctl_version": __version__,
        "meta": json.dumps(meta),
        "optimizers": json.dumps(opt_meta),
    }
    atomic_write_bytes(Path(path), save(tensors, metadata=metadata))


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise GanctlError(f"{path} is not a ganctl checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except GanctlError:
        raise
    except Exception as exc:  # safetensors' own errors: truncated, not safetensors
        raise GanctlError(f"{path} is not a readable checkpoint: {str(exc).splitlines()[0]}") from None
    meta = json.loads(metadata["meta"])
    meta["optimizers"] = json.loads(metadata["optimizers"])
    return Checkpoint(tensors, meta)


def restore_networks(ckpt: Checkpoint, generator, discriminator, g_optimizer, d_optimizer) -> None:
    generator.load_state_dict(ckpt.group("G"))
    discriminator.load_state_dict(ckpt.group("D"))
    load_optimizer(g_optimizer, ckpt.group("optG"), ckpt.meta["optimizers"]["optG"])
    load_optimizer(d_optimizer, ckpt.group("optD"), ckpt.meta["optimizers"]["optD"])


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
