"""``ganctl export``: a generator as an ONNX model or a Hugging Face-style model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import ForceOption, QuietOption, handles_errors, out, writing_outputs
from ganctl.errors import GanctlError

FORMATS = ("onnx", "hf")
DEFAULT_LICENSE = "other"


@handles_errors
def export_command(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="onnx: the .onnx file to write; hf: the folder to write (made if missing).", metavar="PATH")],
    format: Annotated[str, typer.Option("--format", help="onnx: an ONNX model, checked with onnxruntime; hf: a Hugging Face-style model folder.", metavar="onnx|hf")],
    weights: Annotated[Optional[Path], typer.Option(help="A generator .safetensors file, a run folder or an exported model folder (default: the latest run's generator).", metavar="PATH")] = None,
    license_id: Annotated[str, typer.Option("--license", help=f"hf: the model card's license field, a Hub license id such as mit or cc-by-4.0 (default {DEFAULT_LICENSE}).")] = DEFAULT_LICENSE,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Export a generator for use outside ganctl: ONNX (onnxruntime, browsers, C++) or a Hub model folder.

    The ONNX model takes z (batch, latent_dim) and, for a class-conditional generator, class
    (batch,) and gives images (batch, C, H, W) in the generator's pixel range; the command checks it
    against PyTorch with onnxruntime before writing it. Needs: pip install 'ganctl\\[export]'.

    Examples:

    ganctl export --weights runs/my-run --format onnx --out g.onnx

    ganctl export --weights g.safetensors --format hf --out my-gan
    """
    from ganctl import outputs
    from ganctl.interop import hf_folder

    if format not in FORMATS:
        raise GanctlError(f"--format {format!r}: choose onnx or hf")
    if format == "onnx":
        if out_path.suffix.lower() != ".onnx":
            raise GanctlError(f"--out {out_path}: an ONNX model is written to a .onnx file")
        outputs.check_output_file(out_path, force)
        from ganctl.interop.onnx_export import require_onnx

        require_onnx()  # say what to install before any work
    else:
        if not license_id or any(ch.isspace() or ch in ":#'\"" for ch in license_id):
            raise GanctlError(f"--license {license_id!r} is not a license id (such as mit, apache-2.0, cc-by-4.0, other)")
        outputs.check_output_folder(out_path, hf_folder.FILES, force)

    from ganctl.networks.weights import load_requested_generator

    generator, info, source = load_requested_generator(weights, "cpu")
    if format == "onnx":
        from ganctl.interop.onnx_export import OPSET, TOLERANCE, export_onnx, onnx_metadata

        data, difference = export_onnx(generator, info, onnx_metadata(info))
        with writing_outputs():
            outputs.make_folder(out_path.parent)
            from ganctl.fileio import atomic_write_bytes

            atomic_write_bytes(out_path, data)
        what = (
            f"{out_path} ({len(data) / 1e6:.1f} MB, opset {OPSET}); onnxruntime matches PyTorch within {difference:.2g} "
            f"(allowed {TOLERANCE:g} of the pixel range)"
        )
    else:
        with writing_outputs():
            outputs.make_folder(out_path)
            hf_folder.write_hf_folder(out_path, source, generator, info, license_id=license_id)
        what = f"{out_path}/ ({', '.join(hf_folder.FILES)}); upload it with: huggingface-cli upload USER/NAME {out_path}"
    if not quiet:
        out.print(f"Wrote {what} from {source}.", markup=False, soft_wrap=True)
