"""``ganctl inspect-arch``: layers, parameters and FLOPs of an architecture."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ganctl.commands.common import check_memory, handles_errors, out, print_json
from ganctl.errors import GanctlError


@handles_errors
def inspect_arch(
    name: Annotated[Optional[str], typer.Argument(help="Architecture to inspect; all of them when left out.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Build at this image size (pixels).")] = None,
    channels: Annotated[Optional[int], typer.Option(help="Build for 1 (grayscale) or 3 (RGB) channels.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Build with this latent size.")] = None,
    classes: Annotated[int, typer.Option("--classes", help="Build the class-conditional networks for N classes (what train --conditional builds for N-class data).", metavar="N")] = 0,
    torch_shapes: Annotated[bool, typer.Option("--torch-shapes", help="Output shapes in PyTorch's order (None, C, H, W) instead of Keras' (None, H, W, C).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show an architecture's layers, parameters and FLOPs per image, Keras style; without NAME, a table of all.

    Example: ganctl inspect-arch paper-dcgan --image-size 32 --channels 1
    """
    from ganctl.registry import ARCHITECTURES

    if name is None:
        if image_size is not None or channels is not None or latent_dim is not None or classes:
            raise typer.BadParameter("--image-size, --channels, --latent-dim and --classes need an architecture NAME")
        _overview(ARCHITECTURES.entries(), as_json)
        return

    if classes < 0 or classes == 1:
        raise GanctlError(f"--classes {classes}: a class-conditional network needs at least 2 classes")
    arch = ARCHITECTURES.get(name).obj
    args = arch.arch_args(image_size, channels, latent_dim, classes)
    _check_size(name, arch, args)
    summaries = _summaries(arch, args)
    if as_json:
        print_json({"architecture": name, **args, **{k: s.to_dict() for k, s in summaries.items()}})
        return
    out.print(f"[bold]{name}[/]: {arch.description}")
    conditional = f", class-conditional, {classes} classes" if classes else ""
    out.print(f"image {args['image_size']}×{args['image_size']}×{args['channels']}, latent {args['latent_dim']}{conditional}")
    for network, summary in summaries.items():
        _print_network(network, summary, torch_shapes)


def _check_size(name, arch, args) -> None:
    """Count the parameters on torch's "meta" device (no memory) before building for real: absurd
    sizes are one sentence with the limit, not an allocator's failure."""
    import torch

    try:
        with torch.device("meta"):
            networks = arch.build(**args)
        params = sum(p.numel() for net in networks for p in net.parameters())
    except Exception:  # noqa: BLE001  (a plugin that cannot build on meta: the real build says what is wrong)
        return
    # the weights, their copies while summarised, and the activations of one image
    check_memory(f"{name} at these sizes ({params:,} parameters)", params * 4 * 3,
                 "use a smaller --latent-dim, --image-size, --channels or --classes")  # fmt: skip


def _summaries(arch, args):
    from ganctl.networks.summary import summarize_pair

    generator, discriminator = arch.build(**args)
    return summarize_pair(generator, discriminator, args["latent_dim"], args.get("num_classes", 0))


def _overview(entries, as_json: bool) -> None:
    from rich.table import Table

    rows = []
    for entry in entries:
        arch = entry.obj
        args = arch.arch_args()
        s = _summaries(arch, args)
        rows.append(
            {
                "name": entry.name,
                "image_shape": [args["channels"], args["image_size"], args["image_size"]],
                "generator_params": s["generator"].total_params,
                "discriminator_params": s["discriminator"].total_params,
                "generator_flops_per_image": s["generator"].flops_per_image,
                "discriminator_flops_per_image": s["discriminator"].flops_per_image,
                "description": entry.description,
            }
        )
    if as_json:
        print_json(rows)
        return
    # The figures in a table that fits 80 columns; each description below it, on its own line.
    table = Table(title="Architectures", title_justify="left")
    for column in ("name", "size", "G params", "D params", "G FLOPs", "D FLOPs"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("name", "size") else "right")
    for r in rows:
        c, h, w = r["image_shape"]
        table.add_row(
            f"[bold]{r['name']}[/]",
            f"{h}×{w}×{c}",
            f"{r['generator_params']:,}",
            f"{r['discriminator_params']:,}",
            _si(r["generator_flops_per_image"]),
            _si(r["discriminator_flops_per_image"]),
        )
    out.print(table)
    from rich.markup import escape

    for r in rows:
        out.print(f"[bold]{r['name']}[/]: {escape(r['description'])}")


def _print_network(network: str, summary, torch_shapes: bool = False) -> None:
    from rich.table import Table

    from ganctl.networks.summary import keras_names, keras_shape, readable_size

    table = Table(title=network.capitalize(), title_justify="left")
    table.add_column("layer (type)")
    table.add_column("output shape")
    table.add_column("params", justify="right")
    for row, name in zip(summary.layers, keras_names(summary.layers)):
        dims = row.output_shape if torch_shapes else keras_shape(row.output_shape)
        shape = "(None, " + ", ".join(str(d) for d in dims) + ")"
        params = row.trainable_params + row.non_trainable_params
        table.add_row(f"{name} ({row.kind})", shape, f"{params:,}")
    out.print(table)
    out.print(f"Total params: {summary.total_params:,} ({readable_size(summary.total_params)})", markup=False)
    out.print(f"Trainable params: {summary.trainable_params:,} ({readable_size(summary.trainable_params)})", markup=False)
    out.print(f"Non-trainable params: {summary.non_trainable_params:,} ({readable_size(summary.non_trainable_params)})", markup=False)
    out.print(f"Total size: {readable_size(summary.total_params)} (float32)", markup=False)
    out.print(f"FLOPs per image (forward): {summary.flops_per_image:,} ({_si(summary.flops_per_image)})")


def _si(flops: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return str(flops)
