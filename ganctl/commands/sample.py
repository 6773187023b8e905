"""``ganctl sample``: images from a generator file, as one grid or one PNG each."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import (
    AmpOption, DeviceOption, ForceOption, QuietOption, ScaleOption, check_at_least, check_memory, check_not_negative, err,
    handles_errors, images_bytes, out, writing_outputs,
)
from ganctl.errors import GanctlError
from ganctl.latent.latents import check_latent_file_name

LATENTS = "Latent points"
CLASSES = "Classes (class-conditional generators)"
OUTPUT = "Output"
HW = "Device"
WSPACE = "Truncation and style mixing"

DEFAULT_N = 100
MAX_Z_VALUE = 1000.0  # beyond any latent a generator was trained on, and within float32
DEFAULT_OUT = Path("samples.png")
DEFAULT_PADDING = 2


@handles_errors
def sample_command(
    weights: Annotated[Optional[Path], typer.Option(help="A generator .safetensors file or a run folder (default: the latest run's generator).", metavar="PATH")] = None,
    n: Annotated[Optional[int], typer.Option("--n", "-n", help=f"How many images (default {DEFAULT_N}; with --z-file, one per latent in it).")] = None,
    # classes
    classes: Annotated[Optional[list[str]], typer.Option("--class", help="Generate this class (name or index; repeatable, or a comma list); the images take the classes in turn. Default: every class in turn.", metavar="NAME", rich_help_panel=CLASSES)] = None,
    per_class: Annotated[Optional[int], typer.Option(help="A grid with one row per class (every class, or those of --class), K images each, the same latents in every row; the class names at the left.", metavar="K", rich_help_panel=CLASSES)] = None,
    # latent points
    seed: Annotated[Optional[int], typer.Option(help="Seed of the random latents; the same seed gives the same images (default: a fresh one, printed).", rich_help_panel=LATENTS)] = None,
    z_value: Annotated[Optional[float], typer.Option(help="Use the latent point whose entries all equal this value (every image is that point).", rich_help_panel=LATENTS)] = None,
    z_file: Annotated[Optional[Path], typer.Option(help="Take the latents from a .npy or .safetensors file: shape (N, latent_dim) or (latent_dim,).", metavar="PATH", rich_help_panel=LATENTS)] = None,
    save_z: Annotated[Optional[Path], typer.Option(help="Also write the latents used to this .npy or .safetensors file (to reuse with --z-file).", metavar="PATH", rich_help_panel=LATENTS)] = None,
    # truncation and style mixing
    truncation: Annotated[Optional[float], typer.Option(help="Truncation PSI in [0, 1] (1: none; 0: one image). A style-based generator (StyleGAN2) pulls each w towards the mean w: w_avg + PSI·(w − w_avg). Any other generator uses BigGAN's truncation trick on z: entries beyond ±2 drawn again, then z × PSI (random latents of --seed only).", metavar="PSI", rich_help_panel=WSPACE)] = None,
    style_mix: Annotated[Optional[str], typer.Option(help="A style-mixing grid of a style-based generator instead: ROWS/COLS, two comma lists of seeds (1,2,3/10,11). The top row shows the columns' images, the left column the rows'; each other cell takes its row's w before --mix-from and its column's from there on.", metavar="ROWS/COLS", rich_help_panel=WSPACE)] = None,
    mix_from: Annotated[Optional[int], typer.Option(help="With --style-mix: the first style layer taken from the column (0 = the 4 px layer; each resolution above adds 2). Default: half the layers (coarse styles from the row, fine from the column).", metavar="LAYER", rich_help_panel=WSPACE)] = None,
    # output
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help=f"The grid PNG to write (default {DEFAULT_OUT}).", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    nrow: Annotated[Optional[int], typer.Option(help="Images per grid row (default ⌈√n⌉).", rich_help_panel=OUTPUT)] = None,
    padding: Annotated[Optional[int], typer.Option(help=f"Pixels between grid images (default {DEFAULT_PADDING}), before --scale.", rich_help_panel=OUTPUT)] = None,
    scale: ScaleOption = None,
    individual: Annotated[Optional[Path], typer.Option(help="Write one PNG per image into this folder (000000.png, ...) instead of a grid.", metavar="DIR", rich_help_panel=OUTPUT)] = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    # device
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Images generated at once; only one batch is held in memory with --individual.", rich_help_panel=HW)] = 500,
    amp: AmpOption = None,
) -> None:
    """Generate images from a trained generator: one grid PNG, or one PNG per image with --individual.

    Examples (any generator; one row per class of a conditional one):

    ganctl sample --n 100 --scale 4

    ganctl sample --per-class 8 --class cat,dog
    """
    _check_options(n, seed, z_value, z_file, out_path, nrow, padding, scale, individual, batch_size)
    _check_class_options(per_class, n, nrow, z_file)
    from ganctl.latent import wspace

    wspace.check_truncation(truncation)
    mixing = _check_style_mix(style_mix, mix_from, n=n, seed=seed, z_value=z_value, z_file=z_file, per_class=per_class,
                              individual=individual, nrow=nrow, save_z=save_z)  # fmt: skip
    if z_file is None and n is None and per_class is None:
        n = DEFAULT_N

    from ganctl import outputs
    from ganctl.outputs import individual_names

    # outputs that exist are refused before torch is imported (seconds on a busy machine)
    out_path = out_path or DEFAULT_OUT
    names = individual_names(n) if individual is not None and n is not None else []  # --per-class: once the classes are known
    if individual is None:
        outputs.check_output_file(out_path, force)
    elif names:  # with --z-file, n is only known once the file is read
        outputs.check_output_folder(individual, names, force)
    if save_z is not None:
        check_latent_file_name(save_z)
        outputs.check_output_file(save_z, force)

    import torch

    from ganctl.conditional import chosen_classes, describe_classes, require_conditional
    from ganctl.data.images import grid_picture, save_png, with_row_legend, write_individual
    from ganctl.device import resolve_device, use_amp
    from ganctl.latent import latents
    from ganctl.latent.sampling import generate
    from ganctl.networks.weights import load_requested_generator

    torch_device = resolve_device(device)
    generator, info, source = load_requested_generator(weights, torch_device)
    if per_class is not None:
        require_conditional(info.class_names, "--per-class", source)
    chosen = chosen_classes(classes, info.class_names, source)
    if z_file is None:  # (a latent file's points are bounded by its size)
        count = per_class * len(chosen) if per_class is not None else n
        check_memory(f"{count:,} images", images_bytes(count, info.latent_dim, info.image_shape, scale if individual is None else 1,
                     padding), "ask for fewer (--n, --per-class) or a smaller --scale")  # fmt: skip
    if mixing is not None:
        _style_mix_grid(generator, info, source, mixing, mix_from, truncation, chosen, out_path, padding, scale, torch_device, quiet)
        return
    w_space = wspace.has_w_space(generator)
    if truncation is not None and not w_space and (z_file is not None or z_value is not None):
        raise GanctlError(f"--truncation on {source}, a z-space generator, truncates the random latents of --seed, not those of --z-file or --z-value")
    if truncation is not None and not w_space and seed is None:
        seed = latents.fresh_seed()  # drawn here: the truncation's redraws are seeded from it
    if save_z is not None:
        latents.check_labels_can_be_saved(save_z, bool(info.class_names))
    if per_class is not None:  # the same K latents in every class's row
        z, origin = _latents(info.latent_dim, per_class, seed, z_value, None)
        z, labels, nrow = z.repeat(len(chosen), 1), torch.tensor(chosen).repeat_interleave(per_class), per_class
    else:
        z, origin = _latents(info.latent_dim, n, seed, z_value, z_file)
        labels = _labels(z, z_file, classes, chosen, info) if info.class_names else None
    if truncation is not None:
        if w_space:
            generator = wspace.truncated(generator, truncation)
        else:
            z = wspace.truncated_z(z, truncation, seed)
        origin += f", truncation {truncation:g}"
    n = z.shape[0]
    if individual is not None and not names:
        names = individual_names(n)
        outputs.check_output_folder(individual, names, force)

    batches = generate(
        generator, z, info.pixel_range, device=torch_device, batch_size=batch_size, amp=use_amp(torch_device, amp), labels=labels
    )
    with writing_outputs():
        if save_z is not None:
            outputs.make_folder(save_z.parent)
            latents.save_latents(save_z, z, labels)
        if individual is None:
            gap = DEFAULT_PADDING if padding is None else padding
            picture = grid_picture(batches, nrow, gap, scale)
            if per_class is not None:
                enlarged = picture.height // (len(chosen) * (info.image_shape[1] + gap) + gap)  # --scale, or the automatic one
                picture = with_row_legend(picture, [info.class_names[c] for c in chosen], gap, enlarged)
            outputs.make_folder(out_path.parent)
            save_png(picture, out_path)
            what = f"{out_path} ({n:,} images, {min(nrow or math.ceil(n ** 0.5), n)} per row)"
        else:
            outputs.make_folder(individual)
            total = math.ceil(n / batch_size)
            write_individual(_with_progress(batches, total, quiet), individual, names, scale or 1)
            what = f"{n:,} PNGs to {individual}/ ({names[0]} to {names[-1]})"
    if not quiet:
        of_classes = f", classes {describe_classes(labels.tolist(), info.class_names)}" if labels is not None else ""
        out.print(f"Wrote {what} from {source}, {origin}{of_classes}.", markup=False, soft_wrap=True)
        if save_z is not None:
            out.print(f"Latents: {save_z}", markup=False, soft_wrap=True)


def _check_options(n, seed, z_value, z_file, out_path, nrow, padding, scale, individual, batch_size) -> None:
    """Every check that needs no file and no torch, so a mistake is reported at once."""
    sources = [name for name, value in (("--seed", seed), ("--z-value", z_value), ("--z-file", z_file)) if value is not None]
    if len(sources) > 1:
        raise GanctlError(f"{' and '.join(sources)} cannot be used together; pick one source of latent points")
    check_at_least("--n", n)
    if z_value is not None and not abs(z_value) <= MAX_Z_VALUE:
        raise GanctlError(f"--z-value must be a number from -{MAX_Z_VALUE:g} to {MAX_Z_VALUE:g} (latents are N(0, I)), not {z_value}")
    if z_file is not None:
        check_latent_file_name(z_file)
    check_at_least("--scale", scale)
    check_at_least("--batch-size", batch_size)
    check_at_least("--nrow", nrow)
    check_not_negative("--padding", padding)
    if individual is not None:
        grid_only = [name for name, value in (("--out", out_path), ("--nrow", nrow), ("--padding", padding)) if value is not None]
        if grid_only:
            raise GanctlError(f"{', '.join(grid_only)} shape(s) the grid; --individual writes separate images instead")
    elif out_path is not None and out_path.suffix.lower() != ".png":
        raise GanctlError(f"--out {out_path}: the grid is written as PNG; name a .png file")


def _check_class_options(per_class, n, nrow, z_file) -> None:
    check_at_least("--per-class", per_class)
    if per_class is not None:
        clashing = [name for name, value in (("--n", n), ("--nrow", nrow), ("--z-file", z_file)) if value is not None]
        if clashing:
            raise GanctlError(f"{', '.join(clashing)} cannot be used with --per-class, which makes K images of each class, a row each")


def _check_style_mix(style_mix, mix_from, **clashing_options):
    """The rows' and columns' seeds of --style-mix (None without it); refused with the options it replaces."""
    from ganctl.latent.wspace import parse_style_mix

    check_not_negative("--mix-from", mix_from)
    if style_mix is None:
        if mix_from is not None:
            raise GanctlError("--mix-from chooses the layer of a --style-mix grid; give --style-mix ROWS/COLS too")
        return None
    clashing = [f"--{name.replace('_', '-')}" for name, value in clashing_options.items() if value is not None]
    if clashing:
        raise GanctlError(f"{', '.join(clashing)} cannot be used with --style-mix, which makes its own grid from its seeds")
    return parse_style_mix(style_mix)


def _style_mix_grid(generator, info, source, mixing, mix_from, psi, chosen, out_path, padding, scale, device, quiet) -> None:
    """Write the style-mixing grid of ``mixing`` (rows' seeds, columns' seeds); a conditional G draws every cell in the first chosen class."""
    import torch

    from ganctl import outputs
    from ganctl.data.images import grid_picture, save_png
    from ganctl.latent import latents, wspace

    if mix_from is None:
        mix_from = getattr(generator, "num_ws", 2) // 2
    wspace.check_mix_from(mix_from, generator, source)
    rows, cols = mixing
    row_z = torch.cat([latents.random_latents(1, info.latent_dim, s) for s in rows])
    col_z = torch.cat([latents.random_latents(1, info.latent_dim, s) for s in cols])
    labels = (lambda k: torch.full((k,), chosen[0], dtype=torch.long, device=device)) if info.class_names else (lambda k: None)
    images = wspace.style_mix_images(generator, row_z, col_z, mix_from, psi=psi, pixel_range=info.pixel_range, device=device,
                                     labels_row=labels(len(rows)), labels_col=labels(len(cols)))  # fmt: skip
    picture = grid_picture([images], len(cols) + 1, DEFAULT_PADDING if padding is None else padding, scale)
    with writing_outputs():
        outputs.make_folder(out_path.parent)
        save_png(picture, out_path)
    if not quiet:
        of_class = f", class {info.class_names[chosen[0]]}" if info.class_names else ""
        out.print(f"Wrote {out_path} (style mixing: {len(rows)} rows x {len(cols)} columns, the columns' styles from layer {mix_from} of "
                  f"{generator.num_ws}) from {source}{of_class}.", markup=False, soft_wrap=True)  # fmt: skip


def _labels(z, z_file, classes, chosen, info):
    """A conditional generator's classes for ``z``: the latent file's own, unless --class chooses; else the classes in turn."""
    from ganctl.conditional import cycled_labels
    from ganctl.latent.latents import read_latent_labels

    stored = read_latent_labels(z_file, info.num_classes) if z_file is not None and not classes else None
    return stored[: z.shape[0]] if stored is not None else cycled_labels(z.shape[0], chosen)


def _latents(latent_dim: int, n: int | None, seed, z_value, z_file):
    """The latent points to draw and how to name them in the message."""
    from ganctl.latent import latents

    if z_file is not None:
        z = latents.read_latents(z_file, latent_dim)
        if n is not None and n > z.shape[0]:
            raise GanctlError(f"--n {n} but {z_file} holds {z.shape[0]} latents; leave --n out to use them all")
        return z[:n], f"latents from {z_file}"
    if z_value is not None:
        return latents.constant_latents(n, latent_dim, z_value), f"every latent entry = {z_value:g}"
    seed = latents.fresh_seed() if seed is None else seed
    return latents.random_latents(n, latent_dim, seed), f"seed {seed}"


def _with_progress(batches, total: int, quiet: bool):
    """A progress bar on stderr for long runs in a terminal; the batches unchanged otherwise."""
    if quiet or total < 2 or not err.is_terminal:
        return batches
    from rich.progress import track

    return track(batches, total=total, description="Generating", console=err, transient=True)
