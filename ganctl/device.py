"""Choosing the device: one rule for every command."""

from __future__ import annotations

import torch

from ganctl.errors import GanctlError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA, then MPS, then the CPU; an explicit device that is absent is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise GanctlError(f"unknown device '{name}'; use auto, cpu, cuda (or cuda:N) or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GanctlError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU here")
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise GanctlError(f"--device {name} was asked for, but there are {torch.cuda.device_count()} CUDA GPUs")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanctlError("--device mps was asked for, but this PyTorch has no MPS backend here")
    return torch.device(name)


def use_amp(device: torch.device, amp: bool | None) -> bool:
    """bf16 autocast: on by default on CUDA, opt-in on the CPU, never elsewhere (as in training)."""
    if device.type not in ("cuda", "cpu"):
        return False
    return amp if amp is not None else device.type == "cuda"


def autocast(device: torch.device, amp: bool):
    """The one autocast context ganctl runs networks under: bf16 when ``amp``, else nothing."""
    import contextlib

    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
