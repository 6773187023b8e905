"""The whole of ``ganctl eval``: resolve what to compare, measure both sides, compare them.

The command parses the options and reports; this module does the work, so it can be used
without the command line:

    result = run_eval(EvalRequest(weights=Path("runs/x"), device=torch.device("cpu"), n=10_000))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl.conditional import class_counts, labels_for, require_conditional
from ganctl.errors import GanctlError
from ganctl.metrics.evaluate import compare
from ganctl.metrics.features import Progress, SideResult, extract, feature_extractor, no_progress, tensor_batches
from ganctl.metrics.generated import generated_features
from ganctl.metrics.inception_weights import Log, inception_score_refusal, resolve_weights
from ganctl.metrics.reference import reference_stats, side_from_stats
from ganctl.metrics.statistics import check_fid_sample_count


@dataclass(frozen=True)
class EvalRequest:
    """What ``ganctl eval`` was asked for (its options, checked by the command)."""

    device: Any  # a torch.device
    weights: Path | None = None  # the generator: a file, a run folder, or None for the latest run
    fake: str | None = None  # or images to evaluate instead: folder:PATH, a folder, a dataset
    fake_split: str = "test"
    dataset: str | None = None  # the reference (default: the generator's training dataset)
    split: str = "train"
    n: int | None = None
    real_n: int | None = None
    image_size: int | None = None
    channels: int | None = None
    fid: bool = True
    kid: bool = True
    inception_score: bool = False
    allow_small_n: bool = False
    seed: int = 0
    fid_method: str = "sqrtm"
    save_images: Path | None = None
    force: bool = False  # overwrite files in save_images
    batch_size: int = 100
    compile: bool = False
    data_dir: Path | None = None
    download: bool = True
    inception: Path | None = None  # the Inception weights file
    cache: bool = True
    per_class: bool = False  # a conditional generator's intra-class FID too
    prdc: bool = False  # precision, recall, density and coverage too


def run_eval(request: EvalRequest, *, progress: Progress = no_progress, log: Log | None = None) -> dict[str, Any]:
    """FID/KID/IS and the protocol, as ``compare`` returns them, plus the two sources' names."""
    from ganctl.data import image_source
    from ganctl.networks.weights import load_requested_generator

    import time

    started = time.perf_counter()
    r, note = request, log or (lambda message: None)
    image_size, channels, dataset = r.image_size, r.channels, r.dataset
    generator = info = source = fake = None
    if r.fake is None:
        generator, info, source = load_requested_generator(r.weights, r.device)
        made_channels, made_size = info.image_shape[0], info.image_shape[1]
        if image_size not in (None, made_size) or channels not in (None, made_channels):
            raise GanctlError(
                f"the generator makes {made_size}×{made_size}×{made_channels} images; --image-size/--channels cannot change that"
            )
        image_size, channels = made_size, made_channels
        dataset = dataset or _training_dataset(source, info.architecture)
        if r.per_class:
            require_conditional(info.class_names, "--per-class", source)
    else:
        if dataset is None:
            raise GanctlError("--fake needs a reference: pass --real NAME or --real folder:PATH")
        fake, dataset = image_source(r.fake), image_source(dataset)
        if image_size is None or channels is None:
            native_size, native_channels = _native_format(fake, dataset, r.split, r.data_dir, r.download)
            image_size, channels = image_size or native_size, channels or native_channels
    real_source = image_source(dataset)
    weights = resolve_weights(r.inception, download=r.download, log=note)
    if r.inception_score and weights.classifier_zeroed:
        raise GanctlError(inception_score_refusal(weights))

    reference_labels = None
    if generator is not None and info.class_names:  # before any image is measured: --per-class may be refused
        reference_labels = _reference_labels(real_source, r, image_size, channels, info.class_names, note)
    common = dict(data_dir=r.data_dir, weights=weights, device=r.device, batch_size=r.batch_size,
                  download=r.download, compile=r.compile, progress=progress, log=note)  # fmt: skip
    reference_started = time.perf_counter()
    reference = reference_stats(real_source, r.split, image_size, channels, r.real_n if r.real_n is not None else r.n, cache=r.cache, **common)
    reference_seconds = time.perf_counter() - reference_started
    if reference.cached:
        note(f"Reference statistics from the cache: {reference.cache_file}")
    if r.fid:
        check_fid_sample_count(reference.n, f"the reference ({_name(real_source, r.split)})", r.allow_small_n)

    labels = None
    if generator is not None:
        count = r.n if r.n is not None else reference.n  # as many as the reference by default
        if info.class_names:  # classes in the reference's proportions (the training set's when it has no labels)
            reference_labels = None if reference_labels is None else reference_labels[: reference.n]
            labels = labels_for(count, _class_weights(reference_labels, info))
        if r.save_images is not None:
            from ganctl import outputs
            from ganctl.data.images import individual_names

            outputs.check_output_folder(r.save_images, individual_names(count), r.force)
            outputs.make_folder(r.save_images)
        side = generated_features(
            generator, info.pixel_range, info.latent_dim, weights=weights, n=count, device=r.device,
            batch_size=r.batch_size, seed=r.seed, logits=r.inception_score, save_images=r.save_images,
            compile=r.compile, progress=progress, log=note, labels=labels,
        )  # fmt: skip
        side.protocol["weights"] = str(source)
    else:
        # a dataset on the evaluated side is cached like a reference; a folder of generated images is not.
        # Without --n each side takes its own default count (CIFAR-10: 50,000 train vs 10,000 test).
        stats = reference_stats(fake, r.fake_split, image_size, channels, r.n, cache=r.cache and not fake.startswith("folder:"), **common)
        side = side_from_stats(stats)
        if r.inception_score:  # logits are not cached: measure them again
            _measure_logits(side, fake, r.fake_split, image_size, channels, stats.n, common)

    result = compare(reference, side, fid=r.fid, kid=r.kid, allow_small_n=r.allow_small_n, seed=r.seed, fid_method=r.fid_method)
    if r.per_class:
        from ganctl.metrics.per_class import intra_class_fid

        result.update(intra_class_fid(
            reference.features, reference_labels.numpy(), side.features, labels.numpy(), info.class_names,
            allow_small_n=r.allow_small_n, fid_method=r.fid_method,
        ))  # fmt: skip
    if r.prdc:
        from ganctl.metrics.prdc import prdc_of_sides

        measured = prdc_of_sides(reference.features, side.features, seed=r.seed)
        result["protocol"]["prdc"] = measured.pop("prdc_protocol")
        result.update(measured)
    result["protocol"]["reference_source"] = _name(real_source, r.split)
    result["protocol"]["evaluated_source"] = str(source) if source is not None else _name(fake, r.fake_split)
    # the whole time, so that the parts printed add up to it: the reference pass (or reading
    # its cached statistics), the evaluated side's features, the metrics, and the rest (loading)
    seconds = result["seconds"]
    seconds["reference"] = round(reference_seconds, 2)
    seconds["total"] = round(time.perf_counter() - started, 2)
    seconds["other"] = round(max(0.0, seconds["total"] - seconds["reference"] - seconds["features"] - seconds["metrics"]), 2)
    return result


def _reference_labels(source: str, r: EvalRequest, image_size: int, channels: int, class_names, note):
    """The labels of the reference's images (as many as it will use, or more), when it has the
    generator's classes; else None (an error with ``--per-class``, which needs them)."""
    from ganctl.data import load_labelled

    limit = r.real_n if r.real_n is not None else r.n
    loaded = load_labelled(source, data_dir=r.data_dir, split=r.split, image_size=image_size, channels=channels,
                           download=r.download, limit=limit)  # fmt: skip
    if loaded.labels is not None and tuple(loaded.class_names) == tuple(class_names):
        return loaded.labels
    why = "has no labels" if loaded.labels is None else f"has other classes ({', '.join(loaded.class_names[:5])}...)"
    if r.per_class:
        raise GanctlError(f"--per-class needs reference images labelled with the generator's classes; {_name(source, r.split)} {why}")
    note(f"the reference {why}: the generated images take the classes in the training set's proportions")
    return None


def _class_weights(reference_labels, info) -> list[float]:
    """Images per class: the reference's, else the training set's (from the generator file), else equal."""
    if reference_labels is not None:
        return [float(c) for c in class_counts(reference_labels, info.num_classes)]
    return [float(c) for c in info.class_counts] if info.class_counts else [1.0] * info.num_classes


def _name(source: str, split: str) -> str:
    return source if source.startswith("folder:") else f"{source}/{split}"


def _training_dataset(generator_file: Path, architecture: str) -> str:
    """The dataset the generator was trained on: its run's config, else its architecture's recipe."""
    from ganctl.registry import ARCHITECTURES
    from ganctl.runfolder.config import training_dataset

    dataset = training_dataset(generator_file)
    if dataset is not None:
        return dataset
    if architecture in ARCHITECTURES:
        return ARCHITECTURES.get(architecture).obj.recipe.dataset
    raise GanctlError(f"cannot tell which dataset {generator_file} was trained on; pass --dataset NAME")


def _native_format(fake: str, dataset: str, split: str, data_dir: Path | None, download: bool) -> tuple[int, int]:
    """Size and channels to compare two image sets at: a registered reference dataset's own
    format, else the first image of a folder (3 channels: gray is repeated to RGB anyway)."""
    from ganctl.data import FOLDER_PREFIX, first_image_size, native_format

    if not dataset.startswith(FOLDER_PREFIX):
        return native_format(dataset, data_dir=data_dir, split=split, download=download)
    for source in (fake, dataset):
        if source.startswith(FOLDER_PREFIX):
            size = first_image_size(Path(source[len(FOLDER_PREFIX) :]).expanduser())
            if size is not None:
                return size, 3
    raise GanctlError("pass --image-size: it cannot be read from the images to compare")


def _measure_logits(side: SideResult, fake: str, split: str, image_size: int, channels: int, count: int, common: dict) -> None:
    from ganctl.data import load_images

    images = load_images(fake, data_dir=common["data_dir"], split=split, image_size=image_size, channels=channels,
                         download=common["download"], limit=count)  # fmt: skip
    extractor = feature_extractor(common["weights"], common["device"], logits=True, compile=common["compile"], log=common["log"])
    _, side.logits = extract(tensor_batches(images, common["batch_size"]), extractor, len(images),
                             label="Inception logits", progress=common["progress"])  # fmt: skip
