"""``ganctl eval``: FID and KID of a generator (or an image folder) against a dataset split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl.commands.common import err, handles_errors, out, print_json
from ganctl.errors import GanctlError

WHAT = "What to compare"
METRICS = "Metrics"
OUTPUT = "Output"
HW = "Device and files"


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
    allow_small_n: Annotated[bool, typer.Option("--allow-small-n", help="Compute FID below 2,048 images anyway (singular covariance, biased; for smoke tests).", rich_help_panel=METRICS)] = False,
    seed: Annotated[int, typer.Option(help="Seed of the latents and of KID's subsets.", rich_help_panel=METRICS)] = 0,
    fid_method: Annotated[str, typer.Option(help="Matrix square root: sqrtm (scipy, the standard) or eigh (same value to ~1e-9, several times faster).", rich_help_panel=METRICS)] = "sqrtm",
    # output
    as_json: Annotated[bool, typer.Option("--json", help="Print the result and protocol as JSON.", rich_help_panel=OUTPUT)] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the result and protocol to this JSON file.", metavar="FILE", rich_help_panel=OUTPUT)] = None,
    save_images: Annotated[Optional[Path], typer.Option(help="Also write the generated images as PNGs into this folder.", metavar="DIR", rich_help_panel=OUTPUT)] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.", rich_help_panel=OUTPUT)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes; only the result.", rich_help_panel=OUTPUT)] = False,
    # device and files
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (auto: CUDA if there is one).", rich_help_panel=HW)] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images generated and measured at once.", rich_help_panel=HW)] = 100,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the Inception network: ~1.4x faster on a CPU after 10-30 s of compiling.", rich_help_panel=HW)] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where dataset files are looked for (default: ~/.cache/ganctl/data).", rich_help_panel=HW)] = None,
    no_download: Annotated[bool, typer.Option("--no-download", help="Never try to download a dataset or the Inception weights.", rich_help_panel=HW)] = False,
    inception: Annotated[Optional[Path], typer.Option(help="Inception weights file (default: $GANCTL_INCEPTION_WEIGHTS, else torch hub's cache).", metavar="PATH", rich_help_panel=HW)] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and store reference statistics in ~/.cache/ganctl/fid-stats ($GANCTL_CACHE_DIR/fid-stats).", rich_help_panel=HW)] = True,
) -> None:
    """FID and KID of a generator's images against a dataset split, or of two image sets.

    Example: ganctl eval --weights runs/cifar-dcgan/generator.safetensors --dataset cifar10 --n 10000

    Also: ganctl eval --real folder:real/ --fake folder:fake/ ; ganctl eval --real cifar10 --fake cifar10 --fake-split test --n 10000
    """
    _check_options(weights, fake, n, real_n, image_size, channels, fid, kid, inception_score, allow_small_n, fid_method, batch_size, save_images)
    from ganctl import metrics, outputs
    from ganctl.images import individual_names
    from ganctl.weights import load_requested_generator

    if out_file is not None:  # exists (without --force), a folder, or unwritable: before minutes of work
        outputs.check_output_file(out_file, force)
    from ganctl.device import resolve_device

    torch_device = resolve_device(device)
    note = (lambda message: None) if quiet else (lambda message: err.print(message, markup=False, soft_wrap=True))
    progress = metrics.no_progress if quiet or not err.is_terminal else _rich_progress
    generator = info = source = None
    if fake is None:
        generator, info, source = load_requested_generator(weights, torch_device)
        channels_, size_ = info.image_shape[0], info.image_shape[1]
        if image_size not in (None, size_) or channels not in (None, channels_):
            raise GanctlError(f"the generator makes {size_}×{size_}×{channels_} images; --image-size/--channels cannot change that")
        image_size, channels = size_, channels_
        dataset = dataset or _training_dataset(source, info)
    else:
        if dataset is None:
            raise GanctlError("--fake needs a reference: pass --real NAME or --real folder:PATH")
        fake, dataset = _as_source(fake), _as_source(dataset)
        if image_size is None or channels is None:
            native_size, native_channels = _native_format(fake, dataset, split, data_dir, not no_download)
            image_size, channels = image_size or native_size, channels or native_channels
    real_source = _as_source(dataset)
    inception_weights = metrics.resolve_weights(inception, download=not no_download, log=note)
    if inception_score and inception_weights.classifier_zeroed:
        raise GanctlError(metrics.inception_score_refusal(inception_weights))

    common = dict(data_dir=data_dir, weights=inception_weights, device=torch_device, batch_size=batch_size,
                  download=not no_download, compile=compile, progress=progress, log=note)  # fmt: skip
    reference = metrics.reference_stats(real_source, split, image_size, channels, real_n if real_n is not None else n, cache=cache, **common)
    if reference.cached:
        note(f"Reference statistics from the cache: {reference.cache_file}")
    if fid:
        metrics.check_fid_sample_count(reference.n, f"the reference ({_name(real_source, split)})", allow_small_n)

    if generator is not None:
        count = n if n is not None else reference.n  # as many as the reference by default
        if save_images is not None:
            outputs.check_output_folder(save_images, individual_names(count), force)
            outputs.make_folder(save_images)
        side = metrics.generated_features(
            generator, info.pixel_range, info.latent_dim, weights=inception_weights, n=count, device=torch_device,
            batch_size=batch_size, seed=seed, logits=inception_score, save_images=save_images, compile=compile,
            progress=progress, log=note,
        )  # fmt: skip
        side.protocol["weights"] = str(source)
    else:
        # a dataset on the evaluated side is cached like a reference; a folder of generated images is not.
        # Without --n each side takes its own default count (CIFAR-10: 50,000 train vs 10,000 test).
        stats = metrics.reference_stats(fake, fake_split, image_size, channels, n, cache=cache and not fake.startswith("folder:"), **common)
        count = stats.n
        side = metrics.side_from_stats(stats)
        if inception_score:  # logits are not cached: measure them again
            side = _with_logits(metrics, fake, fake_split, image_size, channels, count, side, common)

    result = metrics.compare(reference, side, fid=fid, kid=kid, allow_small_n=allow_small_n, seed=seed, fid_method=fid_method)
    result["protocol"]["reference_source"] = _name(real_source, split)
    result["protocol"]["evaluated_source"] = str(source) if source is not None else _name(fake, fake_split)
    if out_file is not None:
        from ganctl.fileio import atomic_write_bytes

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
        if value is not None and value < 2:
            raise GanctlError(f"{name} must be at least 2, not {value}")
        if value is not None and fid:  # fail before any image is loaded or generated
            from ganctl.metrics import check_fid_sample_count

            check_fid_sample_count(value, name, allow_small_n)
    if fid_method not in ("sqrtm", "eigh"):
        raise GanctlError(f"--fid-method must be sqrtm or eigh, not '{fid_method}'")
    if batch_size < 1:
        raise GanctlError(f"--batch-size must be at least 1, not {batch_size}")
    if image_size is not None and image_size < 1:
        raise GanctlError(f"--image-size must be at least 1, not {image_size}")
    if channels is not None and channels not in (1, 3):
        raise GanctlError(f"--channels must be 1 or 3, not {channels}")
    if not (fid or kid or inception_score):
        raise GanctlError("--no-fid and --no-kid leave nothing to compute")


def _as_source(value: str) -> str:
    """``folder:PATH`` and registered names as they are; an existing folder becomes ``folder:PATH``."""
    if value.startswith("folder:"):
        return value
    from ganctl.registry import DATASETS

    if value not in DATASETS and Path(value).expanduser().is_dir():
        return f"folder:{value}"
    return value


def _name(source: str, split: str) -> str:
    return source if source.startswith("folder:") else f"{source}/{split}"


def _training_dataset(source: Path, info) -> str:
    """The dataset the generator was trained on: its run's config, else its architecture's recipe."""
    for folder in (source.parent, source.parent.parent):
        config = folder / "config.json"
        if config.is_file():
            try:
                return json.loads(config.read_text())["recipe"]["dataset"]
            except (OSError, ValueError, KeyError, TypeError):
                break
    from ganctl.registry import ARCHITECTURES

    if info.architecture in ARCHITECTURES:
        return ARCHITECTURES.get(info.architecture).obj.recipe.dataset
    raise GanctlError(f"cannot tell which dataset {source} was trained on; pass --dataset NAME")


def _native_format(fake: str, dataset: str, split: str, data_dir: Path | None, download: bool) -> tuple[int, int]:
    """Size and channels to compare two image sets at: a registered reference dataset's own
    format, else the first image of a folder (3 channels: gray is repeated to RGB anyway)."""
    from ganctl.data import DatasetRequest, default_data_dir, image_files, offline
    from ganctl.registry import DATASETS

    if not dataset.startswith("folder:"):
        loader = DATASETS.get(dataset).obj
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        images = loader(DatasetRequest(root=root, split=split, download=download and not offline(), image_size=32, channels=3))
        return min(images.shape[1:3]), images.shape[3]
    for source in (fake, dataset):
        folder = Path(source[len("folder:") :]).expanduser() if source.startswith("folder:") else None
        files = image_files(folder) if folder is not None and folder.is_dir() else []
        if files:
            from PIL import Image

            try:
                with Image.open(files[0]) as image:
                    return min(image.size), 3
            except OSError:
                continue
    raise GanctlError("pass --image-size: it cannot be read from the images to compare")


def _with_logits(metrics, fake, split, image_size, channels, count, side, common):
    from ganctl.data import load_images

    images = load_images(fake, data_dir=common["data_dir"], split=split, image_size=image_size, channels=channels,
                         download=common["download"], limit=count)  # fmt: skip
    extractor = metrics.feature_extractor(common["weights"], common["device"], logits=True, compile=common["compile"], log=common["log"])
    _, side.logits = metrics.extract(metrics.tensor_batches(images, common["batch_size"]), extractor, len(images),
                                     label="Inception logits", progress=common["progress"])  # fmt: skip
    return side


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
    secs = result["seconds"]
    out.print(f"Time: features {secs['features']:.1f} s, metrics {secs['metrics']:.1f} s.", markup=False)
