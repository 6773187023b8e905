"""``ganctl train``: run an architecture's recipe, with any value overridden."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl.commands.common import AmpOption, err, handles_errors, out

DATA = "Data"
OPTIM = "Optimisation"
RUN = "Run folder and output"
HW = "Device"
DIST = "Several processes (under torchrun, see docs/distributed.md)"
EVAL = "Evaluation (FID/KID, see docs/eval.md)"
MODERN = "Stabilisers and quality (all off in the tutorials' recipes; see docs/train.md)"

# Options that may change when a run is resumed; anything else would make it another run.
# --eval-n is not among them: figures of different sample counts do not compare.
RESUMABLE = {
    "epochs", "max_steps", "device", "quiet", "checkpoint_every", "keep_checkpoints", "log_every", "compile",
    "eval_every", "inception", "tensorboard", "stream_data", "sync_bn",
}  # fmt: skip


@handles_errors
def train_command(
    arch: Annotated[Optional[str], typer.Option(help="Architecture to train (see `ganctl inspect-arch`).", metavar="NAME")] = None,
    # data
    dataset: Annotated[Optional[str], typer.Option(help="cifar10, mnist, fashion-mnist, synthetic, or folder:PATH.", rich_help_panel=DATA)] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where dataset files are looked for (default: ~/.cache/ganctl/data).", rich_help_panel=DATA)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images of the dataset.", rich_help_panel=DATA)] = None,
    conditional: Annotated[Optional[bool], typer.Option("--conditional/--unconditional", help="Class-conditional networks trained on the dataset's labels: G(z, y), D(x, y) (see docs/conditional.md).", rich_help_panel=DATA)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Train at this image size (the architecture must build at it).", rich_help_panel=DATA)] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 (grayscale) or 3 (RGB).", rich_help_panel=DATA)] = None,
    no_download: Annotated[bool, typer.Option("--no-download", help="Never try to download a missing dataset.", rich_help_panel=DATA)] = False,
    # optimisation
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (floor(N / batch) iterations each).", rich_help_panel=OPTIM)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per iteration.", rich_help_panel=OPTIM)] = None,
    loss: Annotated[Optional[str], typer.Option(help="Loss (see `ganctl list`): bce, lsgan, hinge...", rich_help_panel=OPTIM)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of both networks.", rich_help_panel=OPTIM)] = None,
    g_lr: Annotated[Optional[float], typer.Option(help="Generator learning rate (overrides --lr).", rich_help_panel=OPTIM)] = None,
    d_lr: Annotated[Optional[float], typer.Option(help="Discriminator learning rate (overrides --lr).", rich_help_panel=OPTIM)] = None,
    beta1: Annotated[Optional[float], typer.Option(help="Adam beta1.", rich_help_panel=OPTIM)] = None,
    beta2: Annotated[Optional[float], typer.Option(help="Adam beta2.", rich_help_panel=OPTIM)] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Latent size.", rich_help_panel=OPTIM)] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="One-sided: the real target becomes 1 - this (the Keras CIFAR-10 tutorial suggests 0.1).", rich_help_panel=OPTIM)] = None,
    d_update: Annotated[Optional[str], typer.Option(help="separate | joint | simultaneous (see docs/train.md).", rich_help_panel=OPTIM)] = None,
    init: Annotated[Optional[str], typer.Option(help="Weight initialisation: keras | dcgan | torch.", rich_help_panel=OPTIM)] = None,
    d_steps: Annotated[Optional[int], typer.Option(help="D updates per G update, in every --d-update mode (5 for a WGAN critic).", rich_help_panel=OPTIM)] = None,
    lr_decay: Annotated[Optional[str], typer.Option(help="constant | linear (to zero at the last step).", metavar="SCHEDULE", rich_help_panel=OPTIM)] = None,
    # modern ingredients
    reg: Annotated[Optional[str], typer.Option("--reg", help="Regulariser of D: none | r1 | r2 | gp (see `ganctl list`).", metavar="NAME", rich_help_panel=MODERN)] = None,
    reg_weight: Annotated[Optional[float], typer.Option(help="Its weight (gamma for r1/r2, lambda for gp; default 10).", rich_help_panel=MODERN)] = None,
    reg_every: Annotated[Optional[int], typer.Option(help="Apply it every N iterations, scaled by N (lazy; StyleGAN2 uses 16 for r1).", rich_help_panel=MODERN)] = None,
    ema_kimg: Annotated[Optional[float], typer.Option(help="Generator EMA with this half-life in thousands of images (e.g. 10).", metavar="KIMG", rich_help_panel=MODERN)] = None,
    ema_start: Annotated[Optional[int], typer.Option(help="Iterations before the EMA starts averaging (it copies G until then).", rich_help_panel=MODERN)] = None,
    augment: Annotated[Optional[str], typer.Option(help="DiffAugment policy: any of color,translation,cutout.", metavar="POLICY", rich_help_panel=MODERN)] = None,
    spectral_norm: Annotated[Optional[str], typer.Option(help="Spectral normalisation of none | d | g | both.", metavar="NETS", rich_help_panel=MODERN)] = None,
    d_input_scale: Annotated[Optional[float], typer.Option(help="D sees its images multiplied by X: with spectral norm, a D that is X-Lipschitz in pixel units (default 1).", metavar="X", rich_help_panel=MODERN)] = None,
    seed: Annotated[int, typer.Option(help="Random seed; on the CPU a fixed seed makes the run deterministic.", rich_help_panel=OPTIM)] = 0,
    # run folder
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/<arch>-<time>).", rich_help_panel=RUN)] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out (default: the latest run) from its newest checkpoint.", rich_help_panel=RUN)] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N iterations (smoke runs).", rich_help_panel=RUN)] = None,
    sample_every: Annotated[Optional[int], typer.Option(help="Epochs between sample grids and generator snapshots.", rich_help_panel=RUN)] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Iterations between checkpoints (default: one epoch).", rich_help_panel=RUN)] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help="How many checkpoints to keep (default 3).", rich_help_panel=RUN)] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Iterations between metrics records (default 50).", rich_help_panel=RUN)] = None,
    tensorboard: Annotated[Optional[bool], typer.Option("--tensorboard/--no-tensorboard", help="Also write TensorBoard event files to RUN/tb/ (pip install 'ganctl[tensorboard]').", rich_help_panel=RUN)] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved configuration and exit.", rich_help_panel=RUN)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or configuration table.", rich_help_panel=RUN)] = False,
    # evaluation
    eval_every: Annotated[Optional[int], typer.Option(help="Measure FID and KID every N epochs and at the end; keep the best generator as best.safetensors.", rich_help_panel=EVAL)] = None,
    eval_n: Annotated[Optional[int], typer.Option(help="Generated (and reference) images per evaluation; at least 2048 (default 10000).", rich_help_panel=EVAL)] = None,
    inception: Annotated[Optional[Path], typer.Option(help="FID Inception weights file (default: $GANCTL_INCEPTION_WEIGHTS or torch's cache).", rich_help_panel=EVAL)] = None,
    # device
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | mps (auto: CUDA, then MPS, then CPU).", rich_help_panel=HW)] = None,
    amp: AmpOption = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="NHWC memory layout (default on).", rich_help_panel=HW)] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile each phase of the step whole: G, augmentation, D and losses in one graph (default off: eager; a failed compile falls back to eager).", rich_help_panel=HW)] = None,
    stream_data: Annotated[Optional[bool], typer.Option("--stream-data/--no-stream-data", help="Keep the images in host memory and copy each batch over (default: only when they do not fit on the device).", rich_help_panel=HW)] = None,
    # several processes
    batch_per_gpu: Annotated[Optional[int], typer.Option(help="Images per process and iteration: the batch becomes N × the number of processes (instead of --batch-size, which is the global batch).", rich_help_panel=DIST)] = None,
    sync_bn: Annotated[Optional[bool], typer.Option("--sync-bn/--no-sync-bn", help="Batch norm over the global batch (SyncBatchNorm; CUDA only). Default: each process's own statistics.", rich_help_panel=DIST)] = None,
    dist_backend: Annotated[str, typer.Option(help="auto (NCCL for CUDA tensors, gloo for CPU ones) | nccl | gloo.", metavar="NAME", rich_help_panel=DIST)] = "auto",
) -> None:
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

    processes = distributed.start(dist_backend)  # under torchrun: join the other processes
    try:
        if batch_per_gpu is not None:
            try:
                check_at_least("--batch-per-gpu", batch_per_gpu)
                if batch_size is not None:
                    raise GanctlError("give --batch-size (the global batch) or --batch-per-gpu, not both")
            except GanctlError as exc:
                raise distributed.quiet_unless_first(exc, processes.rank) from None
            batch_size = batch_per_gpu * processes.world
        recipe_overrides = {
            "dataset": dataset, "image_size": image_size, "channels": channels, "epochs": epochs,
            "batch_size": batch_size, "loss": loss, "g_lr": g_lr or lr, "d_lr": d_lr or lr, "beta1": beta1,
            "beta2": beta2, "latent_dim": latent_dim, "label_smoothing": label_smoothing,
            "d_update": d_update, "init": init, "sample_every": sample_every, "d_steps": d_steps,
            "lr_decay": lr_decay, "regularizer": reg, "reg_weight": reg_weight, "reg_every": reg_every,
            "ema_kimg": ema_kimg, "ema_start": ema_start, "augment": augment, "spectral_norm": spectral_norm,
            "d_input_scale": d_input_scale, "conditional": conditional,
        }
        run_overrides = {
            "data_dir": str(data_dir) if data_dir else None, "dataset_limit": limit, "device": device,
            "amp": amp, "channels_last": channels_last, "compile": compile, "stream_data": stream_data, "max_steps": max_steps, "checkpoint_every": checkpoint_every,
            "keep_checkpoints": keep_checkpoints, "log_every": log_every, "quiet": quiet or None,
            "download": False if no_download else None, "eval_every": eval_every, "eval_n": eval_n,
            "inception": str(inception) if inception else None, "tensorboard": tensorboard, "sync_bn": sync_bn,
        }
        # Rank 0 resolves the run (a new run's folder name, a resumed run's config.json) for every process.
        resolved = processes.together(
            lambda: _resolve(processes, arch, seed, resume, out_dir, recipe_overrides, run_overrides), writer_only=True
        )
        shared = processes.share_json(None if resolved is None else {"config": resolved[0].to_dict(), "resume": resolved[1]})
        config, resume = resolved if processes.is_writer else (TrainConfig.from_dict(shared["config"]), shared["resume"])
        if dry_run:  # nothing is loaded or created: the table says so of the run folder
            if processes.is_writer:
                _print_config(config, run_dir_note=" (not created: --dry-run)")
            return
        _train(config, resume, writer=processes.is_writer)
    finally:
        distributed.stop()


def _resolve(processes, arch, seed, resume, out_dir, recipe_overrides, run_overrides):
    """(the run's configuration, whether it resumes) from the command line and, resuming, its config.json."""
    from ganctl import runs
    from ganctl.registry import ARCHITECTURES
    from ganctl.training.config import TrainConfig

    if not resume and processes.restart > 0:
        # torchrun restarted the processes (--max-restarts): continue the run from its newest checkpoint
        candidate = out_dir or runs.latest_run()
        if candidate is not None and (Path(candidate) / runs.CONFIG).is_file():
            resume, out_dir = True, Path(candidate)
            err.print(f"torchrun restart {processes.restart}: resuming {candidate} from its newest checkpoint", markup=False, soft_wrap=True)
    if resume:
        run_dir = out_dir or runs.latest_run()
        if run_dir is None:
            raise typer.BadParameter(f"there is no run to resume: {runs.where_runs_are_looked_for()}, or name the run with --out")
        config = _resumed_config(Path(run_dir), arch, seed, recipe_overrides, run_overrides)
    else:
        if arch is None:
            raise typer.BadParameter("choose an architecture with --arch (`ganctl inspect-arch` lists them)")
        recipe = ARCHITECTURES.get(arch).obj.recipe.replace(**recipe_overrides)
        config = TrainConfig(arch=arch, recipe=recipe, seed=seed)
        for key, value in run_overrides.items():
            if value is not None:
                setattr(config, key, value)
        config.run_dir = str(out_dir or runs.new_run_dir(arch))

    if config.tensorboard:
        from ganctl.tensorboard_sink import require_tensorboard

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


def _resumed_config(run_dir: Path, arch, seed, recipe_overrides, run_overrides):
    from ganctl import runs
    from ganctl.errors import GanctlError
    from ganctl.training.config import read_config_file
    from ganctl.training.run_folder import holds_files

    config_file = run_dir / runs.CONFIG
    if not config_file.is_file():
        if run_dir.is_dir() and not config_file.exists() and not holds_files(run_dir):
            raise GanctlError(
                f"{run_dir} holds no run yet (a training stopped before writing its {runs.CONFIG}); "
                "start it again without --resume"
            )
        raise GanctlError(f"{run_dir} is not a ganctl run folder (no {runs.CONFIG})")
    config = read_config_file(config_file)
    # Repeating the original options is fine (re-running the same command with --resume);
    # a different value would make it another run.
    stored_recipe = config.recipe.to_dict()
    changed = [
        k for k, v in recipe_overrides.items()
        if v is not None and k != "epochs" and _differs(v, stored_recipe[k])
    ]
    changed += [
        k for k, v in run_overrides.items()
        if v is not None and k not in RESUMABLE and _differs(v, getattr(config, k))
    ]
    if arch is not None and arch != config.arch:
        changed.append("arch")
    if seed != 0 and seed != config.seed:
        changed.append("seed")
    if changed:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise GanctlError(f"{names} cannot change when resuming {run_dir}; only --epochs, --max-steps, --device, --eval-every, --inception and output options can")
    if recipe_overrides["epochs"] is not None:
        config.recipe = config.recipe.replace(epochs=recipe_overrides["epochs"])
    for key in RESUMABLE - {"epochs"}:
        if run_overrides.get(key) is not None:
            setattr(config, key, run_overrides[key])
    config.run_dir = str(run_dir)
    return config


def _differs(given: Any, stored: Any) -> bool:
    if isinstance(stored, list):
        stored = tuple(stored)
    return given != stored


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
