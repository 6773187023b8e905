"""``ganctl eval``: FID and KID of a generator (or an image folder) against a dataset split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl.commands.common import (
    DEVICE_PANEL, OUTPUT_PANEL, DeviceOption, ForceOption, QuietOption, check_at_least, err, handles_errors, out,
    print_json, writing_outputs,
)
from ganctl.errors import GanctlError

WHAT = "What to compare"
METRICS = "Metrics"
OUTPUT = OUTPUT_PANEL
FILES = "Files"


@handles_errors
def eval_command(
    weights: Annotated[Optional[Path], typer.Option(help="Generator .safetensors file or run folder (default: the latest run's generator).", metavar="FILE|RUN", rich_help_panel=WHAT)] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "--real", help="Reference images: cifar10, mnist, ... or folder:PATH (default: the generator's training dataset).", metavar="NAME", rich_help_panel=WHAT)] = None,
    split: Annotated[str, typer.Option(help="Split of the reference dataset: train or test.", rich_help_panel=WHAT)] = "train",
    fake: Annotated[Optional[str], typer.Option("--fake", "--images", help="Evaluate these images instead of a generator: folder:PATH, a folder, or a dataset name.", metavar="SOURCE", rich_help_panel=WHAT)] = None,
    fake_split: Annotated[str, typer.Option(help="Split when --fake names a dataset.", rich_help_panel=WHAT)] = "test",
    n: Annotated[Optional[int], typer.Option("--n", "-n", help="Images per side (default: min(50,000, the reference's size)).", rich_help_panel=WHAT)] = None,
    real_n: Annotated[Optional[int], typer.Option(help="Reference images, when not --n.", rich_help_panel=WHAT)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Compare at this size (default: the generator's; with --fake, the reference dataset's or the first image's).", rich_help_panel=WHAT)] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 or 3 (default: the generator's; with --fake, the reference dataset's, 3 for folders).", rich_help_panel=WHAT)] = None,
    # metrics
    fid: Annotated[bool, typer.Option("--fid/--no-fid", help="Fréchet Inception Distance (needs ≥ 2,048 images per side).", rich_help_panel=METRICS)] = True,
    kid: Annotated[bool, typer.Option("--kid/--no-kid", help="Kernel Inception Distance (100 subsets of up to 1,000).", rich_help_panel=METRICS)] = True,
    inception_score: Annotated[bool, typer.Option("--is", help="Also the Inception Score (needs weights with the real classifier).", rich_help_panel=METRICS)] = False,
    per_class: Annotated[bool, typer.Option("--per-class", help="A class-conditional generator's intra-class FID too: the FID within each class against the reference's images of that class, and their mean.", rich_help_panel=METRICS)] = False,
    prdc: Annotated[bool, typer.Option("--prdc", help="Also precision, recall, density and coverage (k = 5, up to 10,000 images a side): fidelity and diversity apart.", rich_help_panel=METRICS)] = False,
    allow_small_n: Annotated[bool, typer.Option("--allow-small-n", help="Compute FID below 2,048 images anyway (singular covariance, biased; for smoke tests).", rich_help_panel=METRICS)] = False,
    seed: Annotated[int, typer.Option(help="Seed of the latents and of KID's subsets.", rich_help_panel=METRICS)] = 0,
    fid_method: Annotated[str, typer.Option(help="Matrix square root: sqrtm (scipy, the standard) or eigh (same value to ~1e-9, several times faster).", rich_help_panel=METRICS)] = "sqrtm",
    # output
    as_json: Annotated[bool, typer.Option("--json", help="Print the result and protocol as JSON.", rich_help_panel=OUTPUT)] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the result and protocol to this JSON file.", metavar="FILE", rich_help_panel=OUTPUT)] = None,
    save_images: Annotated[Optional[Path], typer.Option(help="Also write the generated images as PNGs into this folder.", metavar="DIR", rich_help_panel=OUTPUT)] = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    # device
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Images generated and measured at once.", rich_help_panel=DEVICE_PANEL)] = 100,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the Inception network: ~1.4x faster on a CPU after 10-30 s of compiling.", rich_help_panel=DEVICE_PANEL)] = False,
    # files
    data_dir: Annotated[Optional[Path], typer.Option(help="Where dataset files are looked for (default: ~/.cache/ganctl/data).", rich_help_panel=FILES)] = None,
    no_download: Annotated[bool, typer.Option("--no-download", help="Never try to download a dataset or the Inception weights.", rich_help_panel=FILES)] = False,
    inception: Annotated[Optional[Path], typer.Option(help="Inception weights file (default: $GANCTL_INCEPTION_WEIGHTS, else torch hub's cache).", metavar="PATH", rich_help_panel=FILES)] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and store reference statistics in ~/.cache/ganctl/fid-stats ($GANCTL_CACHE_DIR/fid-stats).", rich_help_panel=FILES)] = True,
) -> None:
    """FID and KID of a generator's images against a dataset split, or of two image sets.

    Examples (the latest run's generator; two image folders; CIFAR-10 train vs test):

    ganctl eval --dataset cifar10 --n 10000

    ganctl eval --real folder:real/ --fake folder:fake/

    ganctl eval --real cifar10 --fake cifar10 --fake-split test --n 10000
    """
    _check_options(weights, fake, n, real_n, image_size, channels, fid, kid, inception_score or prdc, allow_small_n, fid_method, batch_size, save_images)
    if per_class and fake is not None:
        raise GanctlError("--per-class measures a class-conditional generator; with --fake there is none")
    from ganctl import outputs

    if out_file is not None:  # exists (without --force), a folder, or unwritable: before minutes of work
        outputs.check_output_file(out_file, force)

    from ganctl.install_check import torchvision_problem

    problem = torchvision_problem()  # the Inception network needs torchvision's operators
    if problem:
        raise GanctlError(problem)
    from ganctl.device import resolve_device
    from ganctl.metrics import no_progress
    from ganctl.metrics.eval_run import EvalRequest, run_eval

    request = EvalRequest(
        device=resolve_device(device), weights=weights, fake=fake, fake_split=fake_split, dataset=dataset, split=split,
        n=n, real_n=real_n, image_size=image_size, channels=channels, fid=fid, kid=kid, inception_score=inception_score,
        allow_small_n=allow_small_n, seed=seed, fid_method=fid_method, save_images=save_images, force=force,
        batch_size=batch_size, compile=compile, data_dir=data_dir, download=not no_download, inception=inception, cache=cache,
        per_class=per_class, prdc=prdc,
    )  # fmt: skip
    note = (lambda message: None) if quiet else (lambda message: err.print(message, markup=False, soft_wrap=True))
    result = run_eval(request, progress=no_progress if quiet or not err.is_terminal else _rich_progress, log=note)
    if out_file is not None:
        from ganctl.fileio import atomic_write_bytes

        with writing_outputs():
            out_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out_file, (json.dumps(result, indent=2) + "\n").encode())
    if as_json:
        print_json(result)
    else:
        _print_result(result)


def _check_options(weights, fake, n, real_n, image_size, channels, fid, kid, inception_score, allow_small_n, fid_method, batch_size, save_images) -> None:
    """Every check that needs no file and no torch."""
    if weights is not None and fake is not None:
        raise GanctlError("--weights and --fake are two things to evaluate; pick one")
    if fake is not None and save_images is not None:
        raise GanctlError("--save-images writes a generator's images; with --fake there is no generator")
    for name, value in (("--n", n), ("--real-n", real_n)):
        check_at_least(name, value, 2)
        if value is not None and fid:  # fail before any image is loaded or generated
            from ganctl.metrics import check_fid_sample_count

            check_fid_sample_count(value, name, allow_small_n)
    if fid_method not in ("sqrtm", "eigh"):
        raise GanctlError(f"--fid-method must be sqrtm or eigh, not '{fid_method}'")
    check_at_least("--batch-size", batch_size)
    check_at_least("--image-size", image_size)
    if channels is not None and channels not in (1, 3):
        raise GanctlError(f"--channels must be 1 or 3, not {channels}")
    if not (fid or kid or inception_score):
        raise GanctlError("--no-fid and --no-kid leave nothing to compute (add --is or --prdc)")


def _rich_progress(label: str, total: int):
    """A transient rich progress bar on stderr: images done, time spent and left."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    @contextlib.contextmanager
    def bar():
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as p:
            task = p.add_task(label, total=total)
            yield lambda k: p.advance(task, k)

    return bar()


def _print_result(result: dict[str, Any]) -> None:
    p = result["protocol"]
    ref, ev = p["reference"], p["evaluated"]
    lines = []
    if "fid" in result:
        lines.append(f"FID  {result['fid']:.4f}")
    if "kid_mean" in result:
        lines.append(f"KID  {result['kid_mean']:.6f} ± {result['kid_std']:.6f}")
    if "is_mean" in result:
        lines.append(f"IS   {result['is_mean']:.4f} ± {result['is_std']:.4f}")
    if "intra_fid" in result:
        per_class = ", ".join(f"{name} {value:.2f}" for name, value in result["fid_per_class"].items())
        lines.append(f"Intra-class FID  {result['intra_fid']:.4f} (mean of: {per_class})")
    if "precision" in result:
        lines.append(
            f"Precision {result['precision']:.4f}  Recall {result['recall']:.4f}  "
            f"Density {result['density']:.4f}  Coverage {result['coverage']:.4f}"
        )
    for line in lines:
        out.print(line, markup=False)
    weights = p["inception"]
    seed = f", seed {ev['seed']}" if "seed" in ev else ""
    out.print(
        f"Protocol: {p['n_evaluated']:,} images of {p['evaluated_source']}{seed} vs {p['n_reference']:,} of "
        f"{p['reference_source']} ({ref['which']}{', cached statistics' if p['reference_cached'] else ''}); "
        f"images at {ref['image_size']}×{ref['image_size']}×{ref['channels']}, then bilinear (TF1-compatible) to 299×299; "
        f"Inception pool3 2048-d, weights {weights['file']} (sha256 {weights['sha256'][:12]}…"
        f"{', classifier zeroed' if weights['classifier_zeroed'] else ''}).",
        markup=False, soft_wrap=True,
    )  # fmt: skip
    if p.get("kid"):
        out.print(f"KID: {p['kid']}.", markup=False, soft_wrap=True)
    if p.get("prdc"):
        out.print(f"Precision/recall/density/coverage: {p['prdc']}; higher is better (density about 1 when alike).", markup=False, soft_wrap=True)
    if "fid" in result or "kid_mean" in result:
        out.print(_meaning(result), markup=False, soft_wrap=True)
    out.print(_time_line(result), markup=False, soft_wrap=True)


# FID of real data against real data under this protocol (train vs test split, n images a side;
# measured, see docs/eval.md): what a perfect generator would score, the floor.
REAL_DATA_FID = {"cifar10": (5000, 10.3194), "mnist": (5000, 4.5650)}


def _meaning(result: dict[str, Any]) -> str:
    """What the numbers mean: lower is better, and the floor real data gives where it is known."""
    p = result["protocol"]
    text = "Lower is better for FID and KID (0: the two sets have the same statistics)."
    dataset = p["reference_source"].split("/")[0]
    if "fid" in result and dataset in REAL_DATA_FID:
        n, fid = REAL_DATA_FID[dataset]
        used = p["n_evaluated"]
        count = "the same count as here" if used == n else f"fewer images give higher values, more lower; here {used:,}"
        text += (
            f" Real {dataset} images score FID {fid:.1f} against the other split at {n:,} images a side: "
            f"the floor for a generator ({count})."
        )
    return text


def _time_line(result: dict[str, Any]) -> str:
    """The time taken and its parts, which add up to it."""
    secs, cached = result["seconds"], result["protocol"]["reference_cached"]
    if "total" not in secs:  # a result from before the total was kept
        return f"Time: features {secs['features']:.1f} s, metrics {secs['metrics']:.1f} s."
    reference = f"reference {secs['reference']:.1f} s{' (cached statistics, read)' if cached else ''}"
    return (
        f"Time: {secs['total']:.1f} s in all: {reference}, evaluated images {secs['features']:.1f} s, "
        f"metrics {secs['metrics']:.1f} s, loading and the rest {secs['other']:.1f} s."
    )
