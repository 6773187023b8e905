"""``ganctl train``: run an architecture's recipe, with any value overridden."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl import options as opts
from ganctl.commands.common import err, handles_errors, out


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
        if values["dry_run"]:  # nothing is loaded or created: the table says so of the run folder
            if processes.is_writer:
                _print_config(config, run_dir_note=" (not created: --dry-run)")
            return
        _train(config, resume, writer=processes.is_writer)
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


def _train(config, resume: bool, *, writer: bool) -> None:
    """Train; only the process that writes the run folder (rank 0) shows progress and news."""
    from ganctl.training.loop import Trainer

    if not writer:
        config.quiet = True
    # The table is printed once the data is loaded and the run folder made (just before the
    # first step), so a missing dataset or a refused run is reported alone, first.
    progress = None if config.quiet else ProgressView(before_start=lambda: _print_config(config))
    say = (lambda message: None) if config.quiet else (lambda message: err.print(message, markup=False))
    try:
        Trainer(config, resume=resume, say=say, progress=progress).run()
    finally:
        if progress:
            progress.stop()
    if not config.quiet:
        out.print(f"Run folder: {config.run_dir}")


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


BAR_WIDTH = 10  # columns of the progress bar itself


def _hms(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; -:-- while unknown."""
    if seconds is None:
        return "-:--"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressView:
    """A rich progress bar on stderr: epoch, iteration, losses, images/s, time elapsed and left.

    It fits the terminal: the figures that do not fit are left out whole (the least useful
    first), never cut in the middle of a number.
    """

    def __init__(self, before_start: Any = None, console: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._console = console or err
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(bar_width=BAR_WIDTH),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[times]}"),
            console=self._console,
            transient=False,
        )
        self._before_start = before_start
        self._task: Any = None
        self._per_epoch = 1
        self._total = 1
        self._record: dict[str, Any] = {}
        self._fid = None

    def start(self, total: int, done: int, per_epoch: int) -> None:
        if self._before_start is not None:
            self._before_start()
        self._per_epoch, self._total = per_epoch, total
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=total, completed=done, epoch=self._epoch(done), losses="", times=self._times(None)
        )

    def advance(self, step: int) -> None:
        task = self._progress.tasks[0] if self._progress.tasks else None
        times = self._times(task)
        self._progress.update(self._task, completed=step, epoch=self._epoch(step), times=times, losses=self._losses(times))

    def show(self, record: dict[str, Any]) -> None:
        self._record = record
        self._refresh()

    def show_eval(self, record: dict[str, Any]) -> None:
        self._fid = record["fid"]
        self._refresh()

    def stop(self) -> None:
        self._progress.stop()

    def _refresh(self) -> None:
        if self._task is None:
            return
        times = self._times(self._progress.tasks[0])
        self._progress.update(self._task, times=times, losses=self._losses(times))

    def _epoch(self, step: int) -> str:
        """The epoch being trained (the last one once the run is done), of how many."""
        epochs = max(1, -(-self._total // self._per_epoch))
        return f"{min(step // self._per_epoch + 1, epochs)}/{epochs}"

    @staticmethod
    def _times(task: Any) -> str:
        elapsed = task.elapsed if task is not None else None
        left = task.time_remaining if task is not None else None
        return f"elapsed {_hms(elapsed or 0)}  left {_hms(left)}"

    def _parts(self) -> list[str]:
        """The figures, most useful first."""
        r, parts = self._record, []
        if "g_loss" in r and "d_loss_real" in r and "d_loss_fake" in r:
            parts.append(f"D {r['d_loss_real']:.3f}/{r['d_loss_fake']:.3f} G {r['g_loss']:.3f}")
        elif "g_loss" in r:
            parts.append(f"G {r['g_loss']:.3f}")
        if self._fid is not None:
            parts.append(f"FID {self._fid:.1f}")
        if "d_acc_real" in r and "d_acc_fake" in r:  # absent for a WGAN critic
            parts.append(f"acc {r['d_acc_real']:.2f}/{r['d_acc_fake']:.2f}")
        if "images_per_s" in r:
            parts.append(f"{r['images_per_s']:.0f} img/s")
        return parts

    def _losses(self, times: str) -> str:
        """As many whole figures as fit beside the other columns, in order of use."""
        epochs = max(1, -(-self._total // self._per_epoch))
        fixed = (
            len("epoch ") + 2 * len(str(epochs)) + 1 + BAR_WIDTH + 2 * len(str(self._total)) + 1 + len(times)
            + 4  # a space between each two of the five columns
        )
        room = self._console.width - fixed - 1
        shown: list[str] = []
        for part in self._parts():
            if len("  ".join([*shown, part])) <= room:
                shown.append(part)
        return "  ".join(shown)
