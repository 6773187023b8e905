"""``ganctl latent-arith``: vector arithmetic on latent points, as in the DCGAN paper."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import (
    AmpOption, DeviceOption, ForceOption, QuietOption, ScaleOption, check_at_least, check_memory, check_not_negative,
    handles_errors, images_bytes, out, writing_outputs,
)
from ganctl.errors import GanctlError
from ganctl.latent.latents import check_latent_file_name

WHAT = "The arithmetic"
DEFAULT_OUT = Path("arith.png")


@handles_errors
def latent_arith_command(
    z_file: Annotated[Path, typer.Option(help="Latent points to pick concepts from (.npy or .safetensors, as `ganctl sample --save-z` writes).", metavar="PATH", rich_help_panel=WHAT)],
    concept: Annotated[list[str], typer.Option(help="NAME=I,J,K: a concept as the mean of these rows of --z-file (repeatable; the paper averages 3).", metavar="NAME=I,J,...", rich_help_panel=WHAT)],
    expr: Annotated[str, typer.Option(help="The combination, e.g. 'smiling_woman - neutral_woman + neutral_man' (terms may be K*name).", rich_help_panel=WHAT)],
    weights: Annotated[Optional[Path], typer.Option(help="Generator .safetensors file or run folder (default: the latest run's generator).", metavar="FILE|RUN")] = None,
    variations: Annotated[int, typer.Option(help="Images of the result with noise added, beside it.", rich_help_panel=WHAT)] = 7,
    noise: Annotated[float, typer.Option(help="Standard deviation of the variations' noise, relative to the N(0, I) latents.", rich_help_panel=WHAT)] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the variations' noise.", rich_help_panel=WHAT)] = 0,
    arith_class: Annotated[Optional[str], typer.Option("--class", help="A class-conditional generator draws every image of this class (name or index; default: its first class).", metavar="NAME", rich_help_panel=WHAT)] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help=f"The PNG to write (default {DEFAULT_OUT}).", metavar="PATH", rich_help_panel="Output")] = None,
    save_z: Annotated[Optional[Path], typer.Option(help="Also write the result and its variations as latents (.npy or .safetensors).", metavar="PATH", rich_help_panel="Output")] = None,
    scale: ScaleOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    device: DeviceOption = "auto",
    amp: AmpOption = None,
) -> None:
    """Latent vector arithmetic: average latents per concept, combine them, look at the result.

    One row per concept (its images, then the image of their mean), and a last row with the result and variations of it.

    Example:

    ganctl latent-arith --z-file z.npy --concept a=3,17 --concept b=5,9 --expr a-b
    """
    from ganctl import outputs
    from ganctl.latent import arithmetic as latent_arithmetic

    out_path = out_path or DEFAULT_OUT
    if out_path.suffix.lower() != ".png":
        raise GanctlError(f"--out {out_path}: the picture is written as PNG; name a .png file")
    check_not_negative("--variations", variations)
    if not 0 <= noise <= latent_arithmetic.MAX_FACTOR:
        raise GanctlError(f"--noise must be from 0 to {latent_arithmetic.MAX_FACTOR:g} (relative to the N(0, I) latents), not {noise}")
    check_at_least("--scale", scale)
    concepts: dict[str, list[int]] = {}
    for spec in concept:
        name, rows = latent_arithmetic.parse_concept(spec)
        if name in concepts:
            raise GanctlError(f"--concept {name} is given twice")
        concepts[name] = rows
    terms = latent_arithmetic.parse_expression(expr, concepts)
    for path in (z_file, save_z):
        if path is not None:
            check_latent_file_name(path)
    outputs.check_output_file(out_path, force)
    if save_z is not None:
        outputs.check_output_file(save_z, force)

    import torch

    from ganctl.conditional import chosen_classes
    from ganctl.device import resolve_device, use_amp
    from ganctl.data.images import grid, save_png, to_pil
    from ganctl.latent.latents import check_labels_can_be_saved, read_latents, save_latents
    from ganctl.latent.sampling import generate_all
    from ganctl.networks.weights import load_requested_generator

    torch_device = resolve_device(device)
    generator, info, source = load_requested_generator(weights, torch_device)
    if save_z is not None:
        check_labels_can_be_saved(save_z, bool(info.class_names))
    latents = read_latents(z_file, info.latent_dim)
    shown_count = sum(len(concepts[name]) + 1 for name in dict.fromkeys(n for _, n in terms)) + 1 + variations
    check_memory(f"{shown_count:,} images", images_bytes(shown_count, info.latent_dim, info.image_shape, scale),
                 "use fewer --variations or a smaller --scale")  # fmt: skip
    means = latent_arithmetic.concept_means(latents, concepts)
    result = latent_arithmetic.combine(means, terms)
    noise_rng = torch.Generator().manual_seed(seed)
    varied = result + noise * torch.randn(variations, info.latent_dim, generator=noise_rng, dtype=result.dtype)

    # Rows: each concept of the expression (its members, then their mean); then the result and its variations.
    used = list(dict.fromkeys(name for _, name in terms))
    rows = [torch.cat([latents[concepts[name]], means[name][None]]) for name in used]
    rows.append(torch.cat([result[None], varied]))
    # a conditional generator draws every image of the one class asked (default: its first)
    chosen = chosen_classes([arith_class] if arith_class is not None else None, info.class_names, source)
    shown = torch.cat(rows)
    labels = torch.full((len(shown),), chosen[0]) if info.class_names else None
    images = generate_all(generator, shown, info.pixel_range, device=torch_device, amp=use_amp(torch_device, amp), labels=labels)
    columns = max(len(r) for r in rows)
    cells, start = [], 0
    for row in rows:  # pad each row with blank cells to the widest
        cells.append(images[start : start + len(row)])
        cells.append(torch.zeros(columns - len(row), *images.shape[1:], dtype=images.dtype))
        start += len(row)
    picture = to_pil(grid(torch.cat(cells), nrow=columns), scale=scale)
    with writing_outputs():
        outputs.make_folder(out_path.parent)
        save_png(picture, out_path)
        if save_z is not None:
            outputs.make_folder(save_z.parent)
            save_latents(save_z, torch.cat([result[None], varied]), None if labels is None else labels[: 1 + variations])
    if not quiet:
        formula = " ".join(f"{'-' if f < 0 else '+'} {'' if abs(f) == 1 else f'{abs(f):g}×'}{n}" for f, n in terms).lstrip("+ ")
        out.print(f"Wrote {out_path} ({formula}; {len(rows) - 1} concept rows, the result and {variations} variations) "
                  f"from {source}.", markup=False, soft_wrap=True)  # fmt: skip
        if save_z is not None:
            out.print(f"Latents: {save_z} (row 0 is the result)", markup=False, soft_wrap=True)
