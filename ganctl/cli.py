"""The ``ganctl`` command line.

This module only wires commands together. Each command lives in ``ganctl/commands/`` and
imports torch inside its body, so ``ganctl --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl import __version__
from ganctl.commands import (
    bench, doctor, eval_cmd, export_cmd, import_cmd, inspect_arch, latent_arith, latent_walk, list_cmd, project_cmd, report_cmd,
    runs_cmd, sample, study_cmd, train,
)

# What --help shows after an option that takes a value: a word that says what to give,
# instead of Typer's Python type labels (<int>, <list[str]>...); flags show none.
METAVARS = {
    "<int>": "N", "<float>": "X", "<str>": "TEXT", "<path>": "PATH", "<Path>": "PATH",
    "<list[str]>": "TEXT", "<list[Path]>": "PATH", "<list[path]>": "PATH",
}  # fmt: skip


def _meaningful_metavars() -> None:
    """Typer (0.2x) labels each option with its Python type; show a metavar instead."""
    from typer import core

    for cls in (getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)):
        if cls is None or not hasattr(cls, "display_type_rich") or getattr(cls, "_ganctl_metavars", False):
            continue
        original = cls.display_type_rich

        def display_type_rich(self, ctx, _original=original):
            if self.metavar is not None:
                return self.metavar
            if getattr(self, "is_flag", False):
                return None  # a switch takes no value
            label = _original(self, ctx)
            return METAVARS.get(label, label) if isinstance(label, str) else label

        cls.display_type_rich = display_type_rich
        cls._ganctl_metavars = True


_meaningful_metavars()

app = typer.Typer(
    name="ganctl",
    help="Train, sample and inspect GANs: the classic DCGAN recipes by name, one trainer, safetensors weights.\n\n"
    "Example: ganctl train --arch cifar-dcgan --epochs 200\n\n"
    "New here? `ganctl doctor` checks the install; the terms (FID, EMA, kimg, bf16, hinge...) are in docs/glossary.md.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    plugin: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--plugin",
            help="Load a plugin from a Python file (repeatable; also $GANCTL_PLUGINS).",
            metavar="PATH",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error (also $GANCTL_DEBUG=1).")
    ] = False,
) -> None:
    from ganctl.environment import set_debug

    set_debug(debug)
    if plugin:
        from ganctl.plugins import request_files

        request_files(list(plugin))


app.command("train")(train.train_command)
app.command("list")(list_cmd.list_command)
app.command("inspect-arch")(inspect_arch.inspect_arch)
app.command("bench")(bench.bench_command)
app.command("sample")(sample.sample_command)
app.command("latent-walk")(latent_walk.latent_walk_command)
app.command("latent-arith")(latent_arith.latent_arith_command)
app.command("eval")(eval_cmd.eval_command)
app.command("export")(export_cmd.export_command)
app.command("import")(import_cmd.import_command)
app.command("project")(project_cmd.project_command)
app.command("runs")(runs_cmd.runs_command)
app.command("report")(report_cmd.report_command)
app.command("study")(study_cmd.study_command)
app.command("doctor")(doctor.doctor_command)


def main() -> None:
    app()
