"""``ganctl latent-walk``: interpolate between latent points, as a grid PNG or an animation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import (
    AmpOption, DeviceOption, ForceOption, QuietOption, ScaleOption, check_at_least, check_memory, check_not_negative,
    handles_errors, images_bytes, out, writing_outputs,
)
from ganctl.errors import GanctlError
from ganctl.latent.interpolation import MODES
from ganctl.latent.latents import check_latent_file_name

WALK = "The walk"
CLASSES = "Classes (class-conditional generators)"
OUTPUT = "Output"
HW = "Device"

MAX_FPS = 100  # GIF times frames in hundredths of a second
DEFAULT_POINTS = 2
DEFAULT_ROWS = 4
DEFAULT_OUT = Path("walk.gif")
GRID_SUFFIXES = (".png",)
ANIMATION_SUFFIXES = (".gif", ".webp")


@handles_errors
def latent_walk_command(
    weights: Annotated[Optional[Path], typer.Option(help="A generator .safetensors file or a run folder (default: the latest run's generator).", metavar="PATH")] = None,
    # the walk
    steps: Annotated[int, typer.Option(help="Frames per segment, counting the segment's start point: a walk through P points has steps × (P − 1) + 1 frames (steps × P with --loop).", rich_help_panel=WALK)] = 8,
    points: Annotated[Optional[int], typer.Option(help=f"Random points each walk passes through (default {DEFAULT_POINTS}).", rich_help_panel=WALK)] = None,
    rows: Annotated[Optional[int], typer.Option(help=f"Independent walks, one per grid row (default {DEFAULT_ROWS}).", rich_help_panel=WALK)] = None,
    mode: Annotated[str, typer.Option(help="slerp (along the sphere Gaussian latents live near) or lerp (straight line).", metavar="slerp|lerp", rich_help_panel=WALK)] = "slerp",
    loop: Annotated[bool, typer.Option("--loop", help="Walk back to the start, for a seamless animation loop (without it an animation plays forwards then backwards).", rich_help_panel=WALK)] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the random points (default: a fresh one, printed).", rich_help_panel=WALK)] = None,
    z_file: Annotated[Optional[Path], typer.Option(help="One walk through the latents of a .npy or .safetensors file (N, latent_dim), in order, instead of random points; with their classes when the file keeps them.", metavar="PATH", rich_help_panel=WALK)] = None,
    # classes
    walk_class: Annotated[Optional[str], typer.Option("--class", help="Walk the latents with the class fixed (name or index). Default: each walk its own class, in turn.", metavar="NAME", rich_help_panel=CLASSES)] = None,
    class_walk: Annotated[Optional[str], typer.Option(help="Walk the class instead, latents fixed: through these classes in order (comma list, e.g. cat,dog), the class embedding interpolated.", metavar="A,B,...", rich_help_panel=CLASSES)] = None,
    # output
    out_paths: Annotated[Optional[list[Path]], typer.Option("--out", "-o", help=f"Output, by extension: .png (grid, a walk per row), .gif or .webp (animation); repeatable (default {DEFAULT_OUT}).", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    fps: Annotated[float, typer.Option(help="Animation frames per second.", rich_help_panel=OUTPUT)] = 10.0,
    scale: ScaleOption = None,
    padding: Annotated[int, typer.Option(help="Pixels between images, before --scale.", rich_help_panel=OUTPUT)] = 2,
    force: ForceOption = False,
    quiet: QuietOption = False,
    # device
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Images generated at once.", rich_help_panel=HW)] = 500,
    amp: AmpOption = None,
) -> None:
    """Walk through latent space: images between random points, as a grid PNG or a GIF/WebP animation.

    Example:

    ganctl latent-walk --rows 4 --points 3 --loop --out walk.gif --out walk.png
    """
    targets = list(dict.fromkeys(out_paths or [DEFAULT_OUT]))  # a path given twice is written once
    _check_options(steps, points, rows, mode, seed, z_file, targets, fps, scale, padding, batch_size)
    _check_class_options(walk_class, class_walk, points, z_file)

    from ganctl import outputs

    for target in targets:  # an output that exists is refused before torch is imported (seconds)
        outputs.check_output_file(target, force)
    from ganctl.device import resolve_device, use_amp
    from ganctl.data.images import save_animation, save_png, walk_animation, walk_grid
    from ganctl.latent.interpolation import walk, walk_length
    from ganctl.conditional import describe_classes
    from ganctl.networks.weights import load_requested_generator

    torch_device = resolve_device(device)
    generator, info, source = load_requested_generator(weights, torch_device)
    if class_walk is not None:
        latents, labels, origin = _class_walk(info, source, class_walk, rows, seed, steps, loop, scale, padding)
        mode = "classes interpolated"
    else:
        walks, wanted = (1, None) if z_file is not None else (rows or DEFAULT_ROWS, points or DEFAULT_POINTS)
        if wanted is not None:
            _check_walk_memory(info, walks, walk_length(wanted, steps, loop), scale, padding)
        endpoints, origin = _endpoints(info.latent_dim, points, rows, seed, z_file)
        _check_walk_memory(info, walks, walk_length(endpoints.shape[1], steps, loop), scale, padding)
        latents = walk(endpoints, steps, mode, loop)
        labels = _z_file_labels(info, z_file, steps, loop) if walk_class is None else None
        if labels is not None:
            origin += ", with its classes"
        else:
            labels = _walk_labels(info, source, walk_class, latents.shape[:2])
            if labels is not None:
                origin += f", classes {describe_classes(labels.flatten().tolist(), info.class_names)}"
    walks, length = latents.shape[:2]

    frames = generate_frames(
        generator, latents.flatten(0, 1), info.pixel_range, labels=None if labels is None else labels.flatten(0, 1),
        device=torch_device, batch_size=batch_size, amp=use_amp(torch_device, amp),
    ).unflatten(0, (walks, length))  # (rows, frames, C, H, W)
    with writing_outputs():
        for target in targets:
            outputs.make_folder(target.parent)
            if target.suffix.lower() in GRID_SUFFIXES:
                save_png(walk_grid(frames, padding, scale), target)
            else:
                # an open walk plays forwards then backwards, so the repeat has no jump
                save_animation(walk_animation(frames, padding, scale, ping_pong=not loop), target, fps=fps)
    if not quiet:
        written = ", ".join(str(t) for t in targets)
        animated = any(t.suffix.lower() in ANIMATION_SUFFIXES for t in targets)
        how = ", looped" if loop else (", the animation forwards then back" if animated else "")
        shape = f"{walks} walk{'s' if walks > 1 else ''} × {length} frames, {mode}{how}"
        out.print(f"Wrote {written} ({shape}) from {source}, {origin}.", markup=False, soft_wrap=True)


def _check_options(steps, points, rows, mode, seed, z_file, targets, fps, scale, padding, batch_size) -> None:
    """Every check that needs no file and no torch, so a mistake is reported at once."""
    check_at_least("--steps", steps)
    if points is not None and points < 2:
        raise GanctlError(f"--points must be at least 2 (a walk goes from one point to another), not {points}")
    check_at_least("--rows", rows)
    if mode not in MODES:
        raise GanctlError(f"unknown --mode '{mode}'; use {' or '.join(MODES)}")
    if z_file is not None:
        clashing = [name for name, value in (("--seed", seed), ("--points", points), ("--rows", rows)) if value is not None]
        if clashing:
            raise GanctlError(f"{', '.join(clashing)} cannot be used with --z-file, whose latents are the walk's points")
        check_latent_file_name(z_file)
    for target in targets:
        if target.suffix.lower() not in GRID_SUFFIXES + ANIMATION_SUFFIXES:
            raise GanctlError(f"--out {target}: use .png (a grid), .gif or .webp (an animation)")
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise GanctlError(f"--fps must be a positive number, at most {MAX_FPS} (a frame shows for at least 10 ms), not {fps}")
    check_at_least("--scale", scale)
    check_not_negative("--padding", padding)
    check_at_least("--batch-size", batch_size)


def _check_class_options(walk_class, class_walk, points, z_file) -> None:
    if walk_class is not None and class_walk is not None:
        raise GanctlError("--class fixes the class of a latent walk and --class-walk walks the classes; pick one")
    if class_walk is not None:
        clashing = [name for name, value in (("--points", points), ("--z-file", z_file)) if value is not None]
        if clashing:
            raise GanctlError(f"{', '.join(clashing)} cannot be used with --class-walk, whose points are classes")
        if len([c for c in class_walk.split(",") if c.strip()]) < 2:
            raise GanctlError(f"--class-walk '{class_walk}' names fewer than 2 classes; a walk goes from one class to another (cat,dog)")


def _walk_labels(info, source, walk_class, shape):
    """A conditional generator's class for each frame: --class, else each walk (row) its own class in turn."""
    from ganctl.conditional import chosen_classes, cycled_labels

    if walk_class is None and not info.class_names:
        return None
    chosen = chosen_classes([walk_class] if walk_class is not None else None, info.class_names, source)
    walks, length = shape
    return cycled_labels(walks, chosen)[:, None].expand(walks, length)


def _z_file_labels(info, z_file, steps, loop):
    """The classes a conditional generator's latent file keeps beside its points (``sample --save-z``):
    each frame of the walk gets them as its points do; between points of different classes the
    class is interpolated as ``--class-walk`` does. None without a file or without classes in it."""
    import torch

    from ganctl.latent.interpolation import walk, walk_length
    from ganctl.latent.latents import read_latent_labels

    if z_file is None or not info.num_classes:
        return None
    stored = read_latent_labels(z_file, info.num_classes)
    if stored is None:
        return None
    if bool((stored == stored[0]).all()):  # one class: whole labels, which every conditional G takes
        return stored[:1, None].expand(1, walk_length(len(stored), steps, loop))
    one_hot = torch.eye(info.num_classes)[stored].unsqueeze(0)  # (1, P, K)
    return walk(one_hot, steps, "lerp", loop)  # (1, F, K) class weights


def _check_walk_memory(info, walks: int, length: int, scale, padding) -> None:
    """Every frame of the walks is held at once (the grid, the animation): bounded before any is made."""
    check_memory(f"{walks:,} walk(s) of {length:,} frames", images_bytes(walks * length, info.latent_dim, info.image_shape, scale, padding),
                 "use fewer --steps, --points or --rows, or a smaller --scale")  # fmt: skip


def _class_walk(info, source, class_walk, rows, seed, steps, loop, scale, padding):
    """``(latents, class weights, origin)`` of walks through classes: each row one fixed latent."""
    import torch

    from ganctl.conditional import chosen_classes, describe_classes
    from ganctl.latent.interpolation import walk, walk_length
    from ganctl.latent.latents import fresh_seed, random_latents

    classes = chosen_classes([class_walk], info.class_names, source, option="--class-walk")
    rows = rows or DEFAULT_ROWS
    _check_walk_memory(info, rows, walk_length(len(classes), steps, loop), scale, padding)
    seed = fresh_seed() if seed is None else seed
    points = torch.eye(info.num_classes)[classes].unsqueeze(0)  # (1, P, K): one-hot classes to pass through
    weights = walk(points, steps, "lerp", loop)  # (1, F, K)
    length = weights.shape[1]
    latents = random_latents(rows, info.latent_dim, seed)[:, None].expand(rows, length, info.latent_dim)
    return latents, weights.expand(rows, length, info.num_classes), f"seed {seed}, classes {describe_classes(classes, info.class_names)}"


def generate_frames(generator, latents, pixel_range, *, labels, **options):
    """``sampling.generate_all``; a generator that cannot take class weights (a plugin's) is one sentence."""
    from ganctl.latent.sampling import generate_all

    try:
        return generate_all(generator, latents, pixel_range, labels=labels, **options)
    except (RuntimeError, TypeError, IndexError) as exc:
        if labels is None or not labels.is_floating_point():
            raise
        raise GanctlError(f"this generator cannot interpolate between classes (--class-walk): {str(exc).splitlines()[0][:120]}") from None


def _endpoints(latent_dim: int, points, rows, seed, z_file):
    """The walks' points ``(rows, points, latent_dim)`` and how to name them in the message."""
    from ganctl.latent.latents import fresh_seed, random_latents, read_latents

    if z_file is not None:
        z = read_latents(z_file, latent_dim)
        if z.shape[0] < 2:
            raise GanctlError(f"{z_file} holds {z.shape[0]} latent; a walk needs at least 2")
        return z.unsqueeze(0), f"points from {z_file}"
    rows, points = rows or DEFAULT_ROWS, points or DEFAULT_POINTS
    seed = fresh_seed() if seed is None else seed
    z = random_latents(rows * points, latent_dim, seed)
    return z.unflatten(0, (rows, points)), f"seed {seed}"

