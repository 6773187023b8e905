"""A generator as a folder in the Hugging Face Hub's model layout.

    model.safetensors   the generator file itself: tensors and ganctl metadata, byte for byte
                        the tensors of the file it came from
    config.json         everything needed to rebuild G (architecture, its arguments, latent size,
                        pixel range, classes), for readers that do not open safetensors metadata
    README.md           the model card: YAML front matter (library_name, pipeline_tag, license,
                        datasets), then the recipe and the run's FID/KID with their protocol
    samples.png         a grid of the generator's images (seed 0), shown by the card

``--weights FOLDER`` loads ``model.safetensors`` as any generator file (strictly: a missing or
extra tensor is refused) after checking that ``config.json`` describes the same generator.
Nothing here uploads: ``huggingface-cli upload`` does that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
GRID_FILE = "samples.png"
FILES = (MODEL_FILE, CONFIG_FILE, CARD_FILE, GRID_FILE)
CONFIG_FORMAT = "ganctl-hf-generator"
# ganctl's dataset names -> the Hub's ids of the same data (the card's `datasets:` field)
HUB_DATASETS = {"cifar10": "uoft-cs/cifar10", "mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist"}


def is_hf_folder(folder: Path) -> bool:
    return (Path(folder) / MODEL_FILE).is_file()


def model_file_in(folder: Path) -> Path:
    """The generator file of an exported folder, once its ``config.json`` is found to agree with it."""
    from ganctl.networks.weights import read_info

    folder = Path(folder)
    model = folder / MODEL_FILE
    info = read_info(model)
    config_path = folder / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GanctlError(f"{folder} holds {MODEL_FILE} but no {CONFIG_FILE}; export the generator again") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise GanctlError(f"{config_path} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise GanctlError(f"{config_path} is not a ganctl generator's config (no \"format\": \"{CONFIG_FORMAT}\")")
    for key, value in generator_config(info).items():
        if key in ("ganctl_version", "training"):
            continue
        if config.get(key) != value:
            raise GanctlError(f"{config_path} says {key} = {config.get(key)!r} but {model} holds {value!r}")
    return model


def generator_config(info) -> dict[str, Any]:
    """``config.json``: the generator file's description in plain JSON."""
    return {
        "format": CONFIG_FORMAT,
        "library_name": "ganctl",
        "architecture": info.architecture,
        "arch_args": info.arch_args,
        "latent_dim": info.latent_dim,
        "image_shape": list(info.image_shape),
        "pixel_range": list(info.pixel_range),
        "latent_distribution": "normal",
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "class_counts": list(info.class_counts),
        "ganctl_version": info.ganctl_version,
        "training": dict(info.extra),
    }


def write_hf_folder(folder: Path, source: Path, generator, info, *, license_id: str) -> None:
    """Write the four files into ``folder`` (made if missing)."""
    from safetensors import safe_open
    from safetensors.torch import save

    from ganctl.data.images import grid_picture, save_png
    from ganctl.fileio import atomic_write_bytes
    from ganctl.latent.latents import random_latents
    from ganctl.latent.sampling import generate
    from ganctl.conditional import cycled_labels

    folder = Path(folder)
    with safe_open(str(source), framework="pt", device="cpu") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    z = random_latents(64, info.latent_dim, seed=0)
    labels = cycled_labels(64, list(range(info.num_classes))) if info.num_classes else None
    picture = grid_picture(generate(generator, z, info.pixel_range, device="cpu", labels=labels), 8, 2, None)
    atomic_write_bytes(folder / MODEL_FILE, save(tensors, metadata=metadata))
    atomic_write_bytes(folder / CONFIG_FILE, (json.dumps(generator_config(info), indent=2) + "\n").encode())
    save_png(picture, folder / GRID_FILE)
    atomic_write_bytes(folder / CARD_FILE, model_card(source, info, license_id).encode("utf-8"))


def model_card(source: Path, info, license_id: str) -> str:
    """README.md: front matter the Hub reads, then what the model is and how it was made and measured."""
    from ganctl.runfolder.layout import run_of_file

    dataset = info.extra.get("dataset") or ""
    source = Path(source)
    exported = source.name == MODEL_FILE and (source.parent / CONFIG_FILE).is_file()  # re-exported: no run beside it
    run = None if exported else run_of_file(source)
    recipe = _recipe(run) if run is not None else None
    evaluations = _evaluations(run, info) if run is not None else []
    front = ["---", "library_name: ganctl", "pipeline_tag: unconditional-image-generation", f"license: {license_id}"]
    if dataset in HUB_DATASETS:
        front += ["datasets:", f"- {HUB_DATASETS[dataset]}"]
    front += ["tags:", "- gan", "- image-generation", f"- {info.architecture}", "---", ""]
    c, h, w = info.image_shape
    lo, hi = info.pixel_range
    classes = f" of {info.num_classes} classes ({', '.join(info.class_names[:20])})" if info.num_classes else ""
    body = [
        f"# {info.architecture} generator" + (f" trained on {dataset}" if dataset else ""),
        "",
        f"A {info.architecture} GAN generator{classes} made with [ganctl](https://pypi.org/project/ganctl/): "
        f"{info.latent_dim}-dimensional standard-normal latents to {w}x{h} images with {c} channel(s), pixels in [{lo:g}, {hi:g}].",
        "",
        f"![samples]({GRID_FILE})",
        "",
        "## Use",
        "",
        "```bash",
        "ganctl sample --weights ./this-folder --n 64 --out samples.png",
        "```",
        "",
        f"`{MODEL_FILE}` holds the weights and, in its metadata, everything needed to rebuild the network; "
        f"`{CONFIG_FILE}` repeats it as plain JSON.",
        "",
        "## Training",
        "",
        *_training_lines(info, recipe),
        "",
        "## Evaluation",
        "",
        *(_evaluation_lines(evaluations) or ["Not measured: the run recorded no FID/KID (train with `--eval-every`, or run `ganctl eval`)."]),
        "",
    ]
    return "\n".join(front + body)


def _recipe(run) -> dict[str, Any] | None:
    from ganctl.runfolder.config import read_config_json

    try:
        return read_config_json(run.config)["recipe"]
    except GanctlError:
        return None


def _evaluations(run, info) -> list[dict[str, Any]]:
    """The run's best and last evaluations (FID, KID, protocol), as metrics.jsonl recorded them."""
    from ganctl.runfolder.records import read_metrics

    try:
        metrics = read_metrics(run.metrics)
    except (GanctlError, OSError):
        return []
    chosen = [metrics.best_eval()] + metrics.evals[-1:]
    unique = {record["step"]: record for record in chosen if record is not None}
    return [unique[step] for step in sorted(unique)]


def _training_lines(info, recipe: dict[str, Any] | None) -> list[str]:
    facts = {key: info.extra[key] for key in ("dataset", "loss", "step", "epoch", "weights") if key in info.extra}
    lines = [f"- {key}: {value}" for key, value in facts.items()]
    if recipe:
        lines += ["", "The recipe (the run's `config.json`):", "", "```json", json.dumps(recipe, indent=2, sort_keys=True), "```"]
    return lines or ["The generator file records no training details."]


def _evaluation_lines(evaluations: list[dict[str, Any]]) -> list[str]:
    from ganctl.runfolder.records import is_number

    lines = []
    for record in (r for r in evaluations if is_number(r.get("fid"))):
        kid = f", KID {record['kid_mean']:.5f}" if isinstance(record.get("kid_mean"), (int, float)) else ""
        lines.append(f"- step {record['step']}: FID {record['fid']:.3f}{kid}" + (" (best)" if record.get("best") else ""))
    protocol = next((r["protocol"] for r in reversed(evaluations) if r.get("protocol")), None)
    if lines:
        lines.insert(0, "Measured during training, of the generator at each step (the run's best and last evaluations):\n")
    if lines and protocol:
        lines += ["", "Protocol:", "", "```json", json.dumps(protocol, indent=2, sort_keys=True), "```"]
    return lines
