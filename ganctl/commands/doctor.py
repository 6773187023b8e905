"""``ganctl doctor``: whether this install can train, and the fix for what cannot."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from typing import Annotated

import typer

from ganctl.commands.common import handles_errors, out, print_json

OK, NOTE, FAIL = "ok", "note", "FAIL"


@dataclass
class Finding:
    check: str
    status: str  # ok | note (works, worth knowing) | FAIL (something ganctl needs is broken)
    detail: str
    fix: str = ""


def _python() -> Finding:
    version = platform.python_version()
    good = sys.version_info >= (3, 10)
    return Finding("python", OK if good else FAIL, f"{version} ({sys.executable})", "" if good else "ganctl needs Python 3.10 or newer")


def _torch() -> Finding:
    try:
        import torch
    except Exception as exc:  # an install that does not import at all
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return Finding("torch", FAIL, f"does not import: {detail}", "reinstall PyTorch (docs/install.md)")
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return Finding("torch", OK, f"{torch.__version__} ({build})")


def _torchvision() -> Finding:
    from ganctl.install_check import installed_version, torchvision_problem

    problem = torchvision_problem()
    if problem is None:
        try:  # the full import, as the dataset loaders and FID make it
            import torchvision.ops  # noqa: F401
        except Exception as exc:
            problem = f"`import torchvision.ops` fails: {(str(exc).strip().splitlines() or [''])[0][:160]}"
    if problem:
        detail, _, fix = problem.partition("; ")
        return Finding("torchvision", FAIL, detail, fix)
    return Finding("torchvision", OK, f"{installed_version('torchvision')}, made for this torch; its operators load")


def _device() -> list[Finding]:
    import torch

    from ganctl.commands.progress import usable_cores
    from ganctl.device import cpu_has_native_bf16

    findings = []
    cores = usable_cores()
    cpu = f"{cores} cores for this process, torch uses {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        findings.append(Finding("device", OK, f"CUDA: {names} (--device auto uses it); {cpu}"))
        bf16 = torch.cuda.is_bf16_supported()
        findings.append(Finding("bf16", OK if bf16 else NOTE, "the GPU computes bf16: --amp is on by default" if bf16
                                else "this GPU has no bf16: train with --no-amp"))  # fmt: skip
        return findings
    mps = torch.backends.mps.is_available()
    where = "Apple MPS (--device auto uses it)" if mps else "CPU only (no CUDA GPU visible to this PyTorch)"
    findings.append(Finding("device", OK, f"{where}; {cpu}"))
    if cpu_has_native_bf16():
        findings.append(Finding("bf16", OK, "the processor computes bf16 (AVX-512 BF16 or AMX): --amp is on by default"))
    else:
        findings.append(Finding("bf16", NOTE, "no native bf16 on this processor: training runs in float32 (--amp would be slower)"))
    return findings


def _load() -> Finding | None:
    import os

    from ganctl.commands.progress import oversubscription_warning, usable_cores

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    warning = oversubscription_warning(load, usable_cores())
    if warning:
        return Finding("load", NOTE, warning)
    return Finding("load", OK, f"load average {load:.1f} on {usable_cores()} cores")


def _extras() -> list[Finding]:
    from ganctl.install_check import installed_version

    findings = []
    for module, extra, use in (("matplotlib", "report", "ganctl report's plots"), ("tensorboard", "tensorboard", "train --tensorboard")):
        version = installed_version(module)
        if version:
            findings.append(Finding(module, OK, f"{version} ({use})"))
        else:
            findings.append(Finding(module, NOTE, f"not installed: only {use} needs it", f"pip install 'ganctl[{extra}]'"))
    return findings


def _inception() -> Finding:
    from ganctl.errors import GanctlError
    from ganctl.metrics.inception_weights import find_inception_weights

    try:
        path = find_inception_weights(download=False)
    except GanctlError as exc:
        del exc  # its whole text (every name and address) is in docs/eval.md
        return Finding("inception", NOTE, "the FID Inception weights are not here yet (eval and --eval-every download them once)",
                       "run `ganctl eval` once online, or pass --inception FILE (docs/eval.md)")  # fmt: skip
    return Finding("inception", OK, f"FID weights at {path}")


def findings() -> list[Finding]:
    found = [_python(), _torch()]
    if found[-1].status == FAIL:
        return found
    found += [_torchvision(), *_device()]
    load = _load()
    found += [load] if load else []
    return [*found, *_extras(), _inception()]


@handles_errors
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Check this install: torch and torchvision import and match, the device, bf16, optional extras, the FID weights.

    Each problem comes with its fix. Exit status 1 when something ganctl needs is broken.

    Example: ganctl doctor
    """
    found = findings()
    if as_json:
        print_json([asdict(f) for f in found])
    else:
        width = max(len(f.check) for f in found)
        for f in found:
            style = {OK: "green", NOTE: "yellow", FAIL: "bold red"}[f.status]
            out.print(f"[{style}]{f.status:<4}[/] {f.check:<{width}}  ", end="")
            out.print(f.detail + (f"; fix: {f.fix}" if f.fix else ""), markup=False, soft_wrap=False)
    if any(f.status == FAIL for f in found):
        raise typer.Exit(1)
