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


def cpu_has_native_bf16() -> bool:
    """Whether this processor computes bf16 in hardware (AVX-512 BF16 or AMX), where oneDNN's
    bf16 convolutions run about 1.5x faster than fp32; elsewhere bf16 is emulated and slower."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def use_amp(device: torch.device, amp: bool | None) -> bool:
    """bf16 autocast. ``None`` (the default, "auto"): on for CUDA, and on the CPU where it has
    native bf16; never on other devices. ``False`` is exact float32 everywhere."""
    if device.type not in ("cuda", "cpu"):
        return False
    if amp is not None:
        return amp
    return device.type == "cuda" or cpu_has_native_bf16()


def autocast(device: torch.device, amp: bool):
    """The one autocast context ganctl runs networks under: bf16 when ``amp``, else nothing."""
    import contextlib

    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
