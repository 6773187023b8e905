"""``ganctl project``: find the latents of real images in a generator's latent space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import (
    DeviceOption, ForceOption, QuietOption, check_at_least, check_numbers, err, handles_errors, out, writing_outputs,
)
from ganctl.errors import GanctlError

DEFAULT_STEPS = 1000
DEFAULT_OUT = Path("projection")
LATENTS, COMPARISON, ANIMATION, REPORT, IMAGES = "latents.safetensors", "comparison.png", "projection.gif", "projection.json", "images"
FRAMES = 50  # GIF frames over the whole search


@handles_errors
def project_command(
    images: Annotated[list[Path], typer.Argument(help="The images to project (PNG, JPEG...); resized/converted to the generator's format, which is said.", metavar="IMAGE...", show_default=False)],
    weights: Annotated[Optional[Path], typer.Option(help="A generator .safetensors file, a run folder or an exported model folder (default: the latest run's generator).", metavar="PATH")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="The folder to write: latents.safetensors, images/, comparison.png, projection.json.", metavar="DIR")] = DEFAULT_OUT,
    steps: Annotated[int, typer.Option(help="Optimisation steps (StyleGAN2's projector uses 1000).")] = DEFAULT_STEPS,
    distance: Annotated[str, typer.Option(help="Perceptual distance: auto (LPIPS if installed with its weights, else the FID Inception's features, else pixels), lpips, inception or pixel.", metavar="auto|lpips|inception|pixel")] = "auto",
    pixel_weight: Annotated[float, typer.Option(help="Weight of the mean squared pixel error beside the perceptual distance.")] = 1.0,
    inception: Annotated[Optional[Path], typer.Option(help="Inception weights file for --distance inception (default: as ganctl eval finds them).", metavar="PATH")] = None,
    gif: Annotated[bool, typer.Option("--gif", help=f"Also write {ANIMATION}: the reconstructions during the search.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise added to the latents during the search.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images projected at once.")] = 16,
    force: ForceOption = False,
    quiet: QuietOption = False,
    device: DeviceOption = "auto",
) -> None:
    """Project images into a generator's latent space: the latents whose images come closest.

    Writes the latents (for sample --z-file, latent-walk, latent-arith), each reconstruction
    (images/000000.png...) and comparison.png (each target beside its reconstruction).

    Example:

    ganctl project a.png b.png --weights g.safetensors --gif
    """
    from ganctl.latent.perceptual import CHOICES

    check_numbers({"steps": steps, "seed": seed, "batch_size": batch_size, "pixel_weight": pixel_weight})
    check_at_least("--steps", steps)
    check_at_least("--batch-size", batch_size)
    if distance not in CHOICES:
        raise GanctlError(f"--distance {distance!r}: choose one of {', '.join(CHOICES)}")
    if not pixel_weight >= 0 or pixel_weight == float("inf"):
        raise GanctlError(f"--pixel-weight must be a finite number of at least 0, not {pixel_weight}")
    if pixel_weight == 0 and distance == "pixel":
        raise GanctlError("--pixel-weight 0 with --distance pixel leaves nothing to minimise")
    from ganctl import outputs
    from ganctl.data.images import individual_names

    names = individual_names(len(images))
    outputs.check_output_folder(out_dir, [LATENTS, COMPARISON, REPORT, IMAGES] + ([ANIMATION] if gif else []), force)

    import torch

    from ganctl.device import resolve_device
    from ganctl.latent import perceptual as perceptual_module
    from ganctl.latent.projection import from_uint8, load_targets, project
    from ganctl.networks.weights import load_requested_generator

    note = (lambda text: None) if quiet else (lambda text: err.print(f"note: {text}", markup=False, soft_wrap=True))
    torch_device = resolve_device(device)
    generator, info, source = load_requested_generator(weights, torch_device)
    if info.num_classes:
        raise GanctlError(f"{source} is class-conditional; projection finds z for unconditional generators only")
    channels, size = info.image_shape[0], info.image_shape[1]
    targets = load_targets(images, size, channels, note)  # every image read before any work
    chosen = perceptual_module.choose(distance, inception, torch_device, note)
    if not quiet:
        err.print(f"Distance: {chosen.name}" + (f" + {pixel_weight:g} × pixel MSE" if chosen.distance and pixel_weight else ""), markup=False, soft_wrap=True)

    results = []
    with _progress(len(images) * steps, quiet) as advance:
        for start in range(0, len(images), batch_size):
            batch = from_uint8(targets[start : start + batch_size], info.pixel_range).to(torch_device)
            count = len(batch)
            results.append(project(
                generator, batch, info.pixel_range, info.latent_dim, chosen, steps=steps, pixel_weight=pixel_weight,
                seed=(seed + start) % 2**64, frame_every=max(1, steps // FRAMES) if gif else 0, on_step=lambda step: advance(count),  # noqa: B023 (called within this iteration)
            ))
    z = torch.cat([r.z for r in results])
    _write(out_dir, names, images, targets, z, results, generator, info, torch_device, chosen.name, gif, steps)
    if not quiet:
        first = sum(d for r in results for d in r.first_distances) / len(images)
        last = sum(d for r in results for d in r.distances) / len(images)
        out.print(f"Wrote {out_dir}/ ({LATENTS}, {IMAGES}/, {COMPARISON}{', ' + ANIMATION if gif else ''}) from {source}: "
                  f"mean loss {first:.4g} at z = 0, {last:.4g} after {steps} steps.", markup=False, soft_wrap=True)
        out.print(f"Reuse: ganctl sample --weights {source} --z-file {out_dir / LATENTS}", markup=False, soft_wrap=True)


def _write(out_dir, names, images, targets, z, results, generator, info, device, distance_name, gif, steps) -> None:
    import torch

    from ganctl import outputs
    from ganctl.data.images import grid_picture, save_animation, save_png, to_uint8, write_individual
    from ganctl.fileio import atomic_write_bytes
    from ganctl.latent.latents import save_latents
    from ganctl.latent.sampling import generate_all

    # the reconstructions through sample's own path: `sample --z-file` gives these very pixels
    reconstructions = generate_all(generator, z, info.pixel_range, device=device)
    pairs = torch.stack([targets, reconstructions], dim=1).flatten(0, 1)  # target, reconstruction, target...
    with writing_outputs():
        outputs.make_folder(out_dir / IMAGES)
        save_latents(out_dir / LATENTS, z)
        write_individual([reconstructions], out_dir / IMAGES, names)
        save_png(grid_picture([pairs], 2, 2, None), out_dir / COMPARISON)
        report = {
            "steps": steps, "distance": distance_name,
            "images": [{"image": str(path), "reconstruction": f"{IMAGES}/{name}", "latent_index": i, "final_loss": loss, "loss_at_zero": first}
                       for i, (path, name, loss, first) in enumerate(zip(images, names,
                           [d for r in results for d in r.distances], [d for r in results for d in r.first_distances]))],
        }
        atomic_write_bytes(out_dir / REPORT, (json.dumps(report, indent=2) + "\n").encode())
        if gif:
            frames_per_batch = [r.frames for r in results]
            count = min(len(f) for f in frames_per_batch)
            pictures = []
            for k in range(count):
                made = to_uint8(torch.cat([f[k] for f in frames_per_batch]), info.pixel_range)
                pictures.append(grid_picture([torch.stack([targets, made], dim=1).flatten(0, 1)], 2, 2, None))
            save_animation(pictures, out_dir / ANIMATION, fps=10)


def _progress(total: int, quiet: bool):
    """A context yielding ``advance(k)``: a progress bar on stderr in a terminal, nothing otherwise."""
    import contextlib

    @contextlib.contextmanager
    def bar():
        if quiet or not err.is_terminal:
            yield lambda k: None
            return
        from rich.progress import Progress

        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("Projecting", total=total)
            yield lambda k: progress.advance(task, k)

    return bar()
