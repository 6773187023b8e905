"""``ganctl train``: run an architecture's recipe, with any value overridden."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl import options as opts
from ganctl.commands.common import err, handles_errors, out
from ganctl.commands.progress import ProgressView  # noqa: F401  (its old import path)


def _typer_parameters() -> list[inspect.Parameter]:
    """The command's parameters, one per row of ``ganctl.options.OPTIONS`` that has flags."""
    from rich.markup import escape

    parameters = []
    for option in opts.COMMAND_LINE:
        info = typer.Option(
            *option.flags,
            help=escape(option.help),  # plain text: "ganctl[tensorboard]" is no markup
            metavar=option.metavar,
            rich_help_panel=option.panel,
        )
        # None stands for "not given" unless the option has a value of its own when absent
        absent_value = option.default is not None or option.flag_value is not None
        annotation = Annotated[option.type if absent_value else Optional[option.type], info]
        parameters.append(inspect.Parameter(option.param, inspect.Parameter.KEYWORD_ONLY, default=option.default, annotation=annotation))
    return parameters


def _with_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command(**values)`` the signature Typer reads its options from."""
    parameters = _typer_parameters()
    command.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return command


@handles_errors
@_with_options
def train_command(**values: Any) -> None:
    """Train a GAN with its architecture's recipe; any recipe value can be overridden.

    The terms (EMA, kimg, bf16, hinge, spectral norm, DiffAugment, R1...) are explained in docs/glossary.md.

    Examples (the first run; a tutorial's recipe; FID every 10 epochs; stabilisers):

    ganctl train --arch sngan-upconv-small

    ganctl train --arch cifar-dcgan --epochs 200

    ganctl train --arch cifar-dcgan --eval-every 10

    ganctl train --arch cifar-dcgan --loss hinge --spectral-norm d --ema-kimg 10

    ganctl train --arch sngan-resnet --dataset cifar10 --conditional

    torchrun --nproc-per-node 4 -m ganctl train --arch cifar-dcgan
    """
    from ganctl import distributed
    from ganctl.commands.common import check_at_least
    from ganctl.errors import GanctlError
    from ganctl.training.config import TrainConfig

    processes = distributed.start(values["dist_backend"])  # under torchrun: join the other processes
    try:
        batch_per_gpu = values["batch_per_gpu"]
        if batch_per_gpu is not None:  # --batch-size is the global batch: N × the number of processes
            try:
                check_at_least("--batch-per-gpu", batch_per_gpu)
                if values["batch_size"] is not None:
                    raise GanctlError("give --batch-size (the global batch) or --batch-per-gpu, not both")
            except GanctlError as exc:
                raise distributed.quiet_unless_first(exc, processes.rank) from None
            values = {**values, "batch_size": batch_per_gpu * processes.world}
        recipe_overrides, run_overrides = opts.overrides(values)
        # Rank 0 resolves the run (a new run's folder name, a resumed run's config.json) for every process.
        resolved = processes.together(
            lambda: _resolve(processes, values["resume"], recipe_overrides, run_overrides), writer_only=True
        )
        shared = processes.share_json(None if resolved is None else {"config": resolved[0].to_dict(), "resume": resolved[1]})
        config, resume = resolved if processes.is_writer else (TrainConfig.from_dict(shared["config"]), shared["resume"])
        if processes.is_writer and not values["dry_run"]:
            from ganctl.install_check import warn_if_torchvision_broken

            # a broken pair fails later in the CIFAR-10/MNIST loaders or FID: name the fix first
            warn_if_torchvision_broken(lambda line: err.print(line, markup=False, soft_wrap=True))
        if values["dry_run"]:  # nothing is loaded or created: the table says so of the run folder
            if processes.is_writer:
                _print_config(config, run_dir_note=" (not created: --dry-run)")
            return
        _train(config, resume, writer=processes.is_writer, verbose=values["verbose"])
    finally:
        distributed.stop()


def _resolve(processes, resume, recipe_overrides, run_overrides):
    """(the run's configuration, whether it resumes) from the command line and, resuming, its config.json."""
    from ganctl.registry import ARCHITECTURES
    from ganctl.runfolder import layout
    from ganctl.training.config import TrainConfig

    run_overrides = dict(run_overrides)
    out_dir = run_overrides.pop("run_dir", None)  # --out: the run folder to make, or to resume
    out_dir = Path(out_dir) if out_dir is not None else None
    if not resume and processes.restart > 0:
        # torchrun restarted the processes (--max-restarts): continue the run from its newest checkpoint
        candidate = out_dir or layout.latest_run()
        if candidate is not None and (Path(candidate) / layout.CONFIG).is_file():
            resume, out_dir = True, Path(candidate)
            err.print(f"torchrun restart {processes.restart}: resuming {candidate} from its newest checkpoint", markup=False, soft_wrap=True)
    if resume:
        run_dir = out_dir or layout.latest_run()
        if run_dir is None:
            raise typer.BadParameter(f"there is no run to resume: {layout.where_runs_are_looked_for()}, or name the run with --out")
        config = _resumed_config(Path(run_dir), recipe_overrides, run_overrides)
    else:
        arch = run_overrides.pop("arch", None)
        if arch is None:
            raise typer.BadParameter("choose an architecture with --arch (`ganctl inspect-arch` lists them)")
        recipe = ARCHITECTURES.get(arch).obj.recipe.replace(**recipe_overrides)
        config = TrainConfig(arch=arch, recipe=recipe)
        for key, value in run_overrides.items():
            setattr(config, key, value)
        config.run_dir = str(out_dir or layout.new_run_dir(arch))

    if config.tensorboard:
        from ganctl.runfolder.tensorboard import require_tensorboard

        require_tensorboard()
    return config, resume


def _train(config, resume: bool, *, writer: bool, verbose: bool = False) -> None:
    """Train; only the process that writes the run folder (rank 0) shows progress and news."""
    from ganctl.training.loop import Trainer

    if not writer:
        config.quiet = True
    from ganctl.commands.start_lines import print_start

    # The start lines are printed once the data is loaded and the run folder made (just before
    # the first step), so a missing dataset or a refused run is reported alone, first.
    show = (lambda facts: _print_config(config)) if verbose else (lambda facts: print_start(config, facts, resume=resume))
    progress = None if config.quiet else ProgressView(before_start=show)
    say = (lambda message: None) if config.quiet else (lambda message: err.print(message, markup=False))
    try:
        Trainer(config, resume=resume, say=say, progress=progress).run()
    finally:
        if progress:
            progress.stop()
    if not config.quiet:
        out.print(f"Run folder: {config.run_dir}", markup=False, soft_wrap=True)


def _resumed_config(run_dir: Path, recipe_overrides, run_overrides):
    from ganctl.errors import GanctlError
    from ganctl.runfolder import layout
    from ganctl.training.config import read_config_file
    from ganctl.runfolder.lock import holds_files

    config_file = run_dir / layout.CONFIG
    if not config_file.is_file():
        if run_dir.is_dir() and not config_file.exists() and not holds_files(run_dir):
            raise GanctlError(
                f"{run_dir} holds no run yet (a training stopped before writing its {layout.CONFIG}); "
                "start it again without --resume"
            )
        raise GanctlError(f"{run_dir} is not a ganctl run folder (no {layout.CONFIG})")
    config = read_config_file(config_file)
    # Repeating the original options is fine (re-running the same command with --resume);
    # a different value would make it another run.
    changed = opts.changed_on_resume(config, recipe_overrides, run_overrides)
    if changed:
        raise GanctlError(opts.resume_refusal(changed, run_dir))
    opts.resumed(config, recipe_overrides, run_overrides)
    config.run_dir = str(run_dir)
    return config


def _print_config(config, run_dir_note: str = "") -> None:
    from rich.table import Table
    from rich.text import Text

    # Text, not str: names and paths are the user's, printed literally (never rich markup)
    table = Table(title=Text(f"Training {config.arch}"), title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in config.recipe.to_dict().items():
        table.add_row(key, Text(str(value)))
    for key, value in config.to_dict().items():
        if key != "recipe":
            table.add_row(key, Text(str(value) + (run_dir_note if key == "run_dir" else "")))
    out.print(table)
