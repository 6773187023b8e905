"""Starting from a trained network: ``--init-from`` (transfer learning) and ``--freeze-d`` (FreezeD).

``--init-from RUN`` starts G (the EMA generator when the run has one) and D from the run's
newest checkpoint; ``--init-from FILE`` starts G from a generator file, and D from scratch. The
optimisers start afresh: the moments of another dataset would steer the first steps wrongly.
The source must be the same architecture at the same size, channels, latent size and classes.

``--freeze-d K`` (Mo et al. 2020, "Freeze the Discriminator") keeps D's first K layers with
weights (convolutions, dense layers, embeddings, in the order ``inspect-arch`` lists them) as
they are: their parameters get no gradient and the optimiser leaves them alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganctl.errors import GanctlError
from ganctl.networks.weights import read_info
from ganctl.runfolder.config import read_config
from ganctl.runfolder.layout import RunFolder, find_generator
from ganctl.training import checkpoint as ckpt
from ganctl.training.assembly import RunParts

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def weighted_layers(network: nn.Module) -> list[nn.Module]:
    """The layers that hold weights, in module order (what --freeze-d counts)."""
    return [m for m in network.modules() if isinstance(m, WEIGHTED)]


def freeze_first_layers(network: nn.Module, k: int, option: str = "--freeze-d") -> None:
    layers = weighted_layers(network)
    if k >= len(layers):
        raise GanctlError(
            f"{option} {k} would freeze all of D's {len(layers)} layers with weights; use at most {len(layers) - 1}"
        )
    for layer in layers[:k]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)


def init_from(parts: RunParts, source: str, arch: str) -> str:
    """Load ``source``'s networks into ``parts``; what was loaded, in words. One sentence if it does not fit."""
    path = Path(source).expanduser()
    if not path.exists():
        raise GanctlError(f"--init-from {source} does not exist")
    folder = RunFolder(path) if path.is_dir() else None
    found = folder.list_checkpoints() if folder is not None else []
    if folder is not None:
        config = read_config(path)
        if config.get("arch") != arch:
            raise GanctlError(f"--init-from {source} is a run of architecture '{config.get('arch')}', not '{arch}'")
    if not found:  # a generator file, or a run without checkpoints: its generator
        file = find_generator(path)
        info = read_info(file)
        wanted = {k: v for k, v in parts.arch_args.items() if v}
        given = {k: v for k, v in info.arch_args.items() if v}
        if info.architecture != arch or given != wanted:
            raise GanctlError(
                f"--init-from {file} holds a generator of '{info.architecture}' {given}; this run builds '{arch}' {wanted}"
            )
        from safetensors.torch import load_file

        _load(parts.G, load_file(str(file)), f"--init-from {file}")
        _sync_ema(parts)
        return f"G from {file} (D from scratch)"
    checkpoint = ckpt.load_checkpoint(found[-1])
    generator = "G_ema" if checkpoint.group("G_ema") else "G"
    _load(parts.G, checkpoint.group(generator), f"--init-from {found[-1]}")
    _load(parts.nets.D, checkpoint.group("D"), f"--init-from {found[-1]}")
    _sync_ema(parts)
    return f"G ({'its EMA' if generator == 'G_ema' else 'raw'}) and D from {found[-1]} (step {checkpoint.step})"


def _load(network: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Strictly; a generator file's plain weights also go into a network under spectral norm."""
    own = network.state_dict()
    for name in list(tensors):  # baked "x.weight" -> "x.parametrizations.weight.original"
        parametrized = name.removesuffix(".weight") + ".parametrizations.weight.original"
        if name not in own and name.endswith(".weight") and parametrized in own:
            tensors[parametrized] = tensors.pop(name)
    missing = [k for k in own if k not in tensors and not _power_iteration_state(k)]
    unexpected = [k for k in tensors if k not in own]
    wrong = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise GanctlError(
            f"{what} does not fit this run's network ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} of another shape, e.g. {first}): another architecture, size or --spectral-norm?"
        )
    network.load_state_dict({**own, **tensors})


def _power_iteration_state(name: str) -> bool:
    """Spectral norm's u and v vectors: a file with the norm baked in has none, and they start afresh."""
    return name.endswith((".parametrizations.weight.0._u", ".parametrizations.weight.0._v"))


def _sync_ema(parts: RunParts) -> None:
    if parts.ema is not None:
        parts.ema.average.load_state_dict(parts.G.state_dict())
