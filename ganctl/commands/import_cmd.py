"""``ganctl import``: a generator saved by the Keras tutorials, as a ganctl generator file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganctl.commands.common import ForceOption, QuietOption, err, handles_errors, out, writing_outputs
from ganctl.errors import GanctlError

# ganctl's tf-dcgan pads its stride-2 k5 transposed convolutions symmetrically (PyTorch has no
# other way); Keras' 'same' puts the odd pixel of padding at the end, so the images are shifted.
TF_DCGAN_NOTE = (
    "note: tf-dcgan's stride-2 transposed convolutions align their output one pixel differently from Keras' "
    "padding='same', so the images resemble but do not equal the Keras model's"
)


@handles_errors
def import_command(
    file: Annotated[Path, typer.Argument(help="The Keras generator: a Keras 2 .h5 file (model.save) or a Keras 3 .keras file.", metavar="FILE", show_default=False)],
    arch: Annotated[str, typer.Option(help="The ganctl architecture the Keras model is: cifar-dcgan, mnist-dcgan or tf-dcgan.", metavar="NAME")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The generator .safetensors file to write.", metavar="PATH")] = Path("generator.safetensors"),
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Import a generator trained with the Keras tutorials' code, for sample, latent-walk, eval and export.

    The file is read with h5py (nothing in it is run); every layer's shape is checked against the
    architecture. Needs: pip install 'ganctl\\[keras-import]'.

    Example:

    ganctl import generator_model_200.h5 --arch cifar-dcgan
    """
    from ganctl import outputs
    from ganctl.interop.keras_import import IMPORTABLE

    if arch not in IMPORTABLE:
        raise GanctlError(f"--arch {arch!r}: Keras generators import into {', '.join(IMPORTABLE)}")
    if out_path.suffix.lower() != ".safetensors":
        raise GanctlError(f"--out {out_path}: a generator file is a .safetensors file")
    outputs.check_output_file(out_path, force)

    from ganctl.interop.keras_import import infer_arch_args, load_keras_into, read_keras_layers
    from ganctl.networks.weights import save_generator
    from ganctl.registry import ARCHITECTURES

    layers = read_keras_layers(file)
    architecture = ARCHITECTURES.get(arch).obj
    arch_args = infer_arch_args(layers, architecture, file)
    generator = architecture.build_generator(**arch_args)
    load_keras_into(generator, layers, file)
    with writing_outputs():
        outputs.make_folder(out_path.parent)
        save_generator(
            out_path, generator.eval(), architecture=arch, arch_args=arch_args, pixel_range=architecture.recipe.pixel_range,
            extra={"imported_from": file.name, "dataset": architecture.recipe.dataset, "weights": "keras"},
        )
    if not quiet:
        if arch == "tf-dcgan":
            err.print(TF_DCGAN_NOTE, markup=False, soft_wrap=True)
        out.print(f"Wrote {out_path}: {arch} with latent size {arch_args['latent_dim']}, {len(layers)} Keras layers from {file}.", markup=False, soft_wrap=True)
