"""Every option of ``ganctl train``, declared once.

Each row of ``OPTIONS`` says which field it sets (of the ``Recipe`` or of the run's
``TrainConfig``), how the command line spells it, its help text and panel, its type, whether
it may change when a run is resumed, and the check of its value. From this table come:

* the Typer options of ``ganctl train`` (``ganctl.commands.train`` builds the command's
  signature from it);
* the overrides a command line makes (``overrides``), with no hand-written field list;
* the resume rule and its refusal (``changed_on_resume``, ``resume_refusal``);
* ``ganctl.training.config.check``: every field's value check (``check_fields``).

Rows without flags declare a field's check only (the field is not on the command line).
Rows without a field are the few options ``ganctl train`` handles itself, each commented.

Plain data, no torch and no Typer: importing this module is cheap.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ganctl.recipe import DUpdate, Fit, Init, LRDecay, Sampling, SpectralNorm

# --- help panels -------------------------------------------------------------------------
DATA = "Data"
OPTIM = "Optimisation"
RUN = "Run folder and output"
HW = "Device"
DIST = "Several processes (under torchrun, see docs/distributed.md)"
EVAL = "Evaluation (FID/KID, see docs/eval.md)"
MODERN = "Stabilisers and quality (all off in the tutorials' recipes; see docs/train.md)"
FINETUNE = "Fine-tuning (see docs/own-images.md)"

# Help texts other commands share (ganctl.commands.common).
DEVICE_HELP = "auto | cpu | cuda | mps (auto: CUDA, then MPS, then CPU)."
AMP_HELP = "bf16 autocast (default auto: on for CUDA and for CPUs with native bf16, AVX-512 BF16 or AMX; --no-amp: exact float32)."


# --- value checks: each returns the complaint about a value, or None -----------------------
@dataclass(frozen=True)
class AtLeast:
    least: int = 1

    def __call__(self, label: str, value: Any) -> str | None:
        return f"{label} must be at least {self.least}, not {value}" if value < self.least else None


@dataclass(frozen=True)
class Positive:
    number: bool = False  # "must be a positive number" rather than "must be positive"
    note: str = ""  # said after the option's name: what the number is

    def __call__(self, label: str, value: Any) -> str | None:
        if math.isfinite(value) and value > 0:
            return None
        what = f"{label} ({self.note})" if self.note else label
        return f"{what} must be {'a positive number' if self.number else 'positive'}, not {value}"


@dataclass(frozen=True)
class NotNegative:
    def __call__(self, label: str, value: Any) -> str | None:
        ok = math.isfinite(value) and value >= 0
        return None if ok else f"{label} must be a non-negative number, not {value}"


@dataclass(frozen=True)
class Fraction:
    """In [0, 1)."""

    def __call__(self, label: str, value: Any) -> str | None:
        return None if 0 <= value < 1 else f"{label} must lie in [0, 1), not {value}"


@dataclass(frozen=True)
class OneOf:
    """One of a Literal type's values: the type is the one list of them."""

    literal: Any

    @property
    def values(self) -> tuple[Any, ...]:
        return typing.get_args(self.literal)

    def __call__(self, label: str, value: Any) -> str | None:
        return None if value in self.values else f"unknown {label} '{value}'; use one of {', '.join(self.values)}"


@dataclass(frozen=True)
class AugmentPolicy:
    """A DiffAugment policy (``ganctl.training.augment`` raises its own sentence)."""

    def __call__(self, label: str, value: Any) -> str | None:
        if value:
            from ganctl.training.augment import parse_policy  # torch: only when there is a policy

            parse_policy(value)
        return None


Check = Callable[[str, Any], "str | None"]


# --- the table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionSpec:
    field: str | None  # the field it sets; None: an option `ganctl train` handles itself
    on: Literal["recipe", "run", None]  # of the Recipe or of the TrainConfig
    flags: tuple[str, ...] = ()  # how the command line spells it ("--a/--no-a" for a switch); (): none
    help: str = ""
    panel: str | None = None
    type: type = str  # the command line's value type
    metavar: str | None = None
    default: Any = None  # what the command line gives when the option is absent: "not given"
    flag_value: Any = None  # a one-way flag (--quiet, --no-download): the field's value when it is given
    resumable: bool = False  # may change when a run is resumed
    check: Check | None = None
    label: str = ""  # how messages name it: its first flag (a field without flags: the field)
    check_label: str = ""  # how its check's message names it, where that differs from label
    to_field: Callable[[Any], Any] | None = None  # the command line's value → the field's (Path → str)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.flags[0].split("/")[0] if self.flags else str(self.field))
        if not self.check_label:
            object.__setattr__(self, "check_label", self.label)

    @property
    def param(self) -> str:
        """The Python parameter of the command: the long flag's name (--limit → limit)."""
        return self.label.lstrip("-").replace("-", "_")

    @property
    def on_command_line(self) -> bool:
        return bool(self.flags)

    def given(self, value: Any) -> bool:
        return value is not None and value != self.default

    def field_value(self, value: Any) -> Any:
        if self.flag_value is not None:
            return self.flag_value
        return self.to_field(value) if self.to_field is not None else value


def R(field: str, *flags: str, **kw: Any) -> OptionSpec:
    """A recipe field's row."""
    return OptionSpec(field, "recipe", flags, **kw)


def C(field: str, *flags: str, **kw: Any) -> OptionSpec:
    """A run (TrainConfig) field's row."""
    return OptionSpec(field, "run", flags, **kw)


def S(*flags: str, **kw: Any) -> OptionSpec:
    """An option that is no field: ``ganctl train`` handles it itself (say why where it is used)."""
    return OptionSpec(None, None, flags, **kw)


N = AtLeast(1)  # the usual check of a count

# In the order --help shows them (within each panel).
OPTIONS: tuple[OptionSpec, ...] = (
    C("arch", "--arch", help="Architecture to train (see `ganctl inspect-arch`).", metavar="NAME"),
    # data
    R("dataset", "--dataset", help="cifar10, mnist, fashion-mnist, synthetic, or folder:PATH.", panel=DATA),
    C("data_dir", "--data-dir", help="Where dataset files are looked for (default: ~/.cache/ganctl/data).", panel=DATA, type=Path, to_field=str),
    C("dataset_limit", "--limit", help="Use only the first N images of the dataset.", panel=DATA, type=int, check=N),
    C("fit", "--fit", help="How a folder's non-square images become square: crop (the centre; default) | pad (with black) | stretch.", panel=DATA, check=OneOf(Fit)),
    R("conditional", "--conditional/--unconditional", help="Class-conditional networks trained on the dataset's labels: G(z, y), D(x, y) (see docs/conditional.md).", panel=DATA, type=bool),
    R("image_size", "--image-size", help="Train at this image size (the architecture must build at it).", panel=DATA, type=int),
    R("channels", "--channels", help="1 (grayscale) or 3 (RGB).", panel=DATA, type=int),
    C("download", "--no-download", help="Never try to download a missing dataset.", panel=DATA, type=bool, default=False, flag_value=False),
    # optimisation
    R("epochs", "--epochs", help="Length in epochs (floor(N / batch) iterations each); replaces a recipe's --kimg.", panel=OPTIM, type=int, resumable=True, check=N),
    R("kimg", "--kimg", help="Length in thousands of images shown to D, whatever the dataset's size (StyleGAN's kimg); grids and evaluations then count ticks of --tick-kimg.", metavar="KIMG", panel=OPTIM, type=float, resumable=True,
      check=Positive(number=True)),
    R("tick_kimg", "--tick-kimg", help="With --kimg: thousands of images per tick, the unit of --sample-every, --eval-every and checkpoints (default 4).", metavar="KIMG", panel=RUN, type=float,
      check=Positive(number=True)),
    R("batch_size", "--batch-size", help="Images per iteration.", panel=OPTIM, type=int, check=N),
    R("loss", "--loss", help="Loss (see `ganctl list`): bce, lsgan, hinge...", panel=OPTIM),
    # --lr: the default of --g-lr and --d-lr (``overrides``)
    S("--lr", help="Learning rate of both networks.", panel=OPTIM, type=float),
    R("g_lr", "--g-lr", help="Generator learning rate (overrides --lr).", panel=OPTIM, type=float, check=Positive()),
    R("d_lr", "--d-lr", help="Discriminator learning rate (overrides --lr).", panel=OPTIM, type=float, check=Positive()),
    R("beta1", "--beta1", help="Adam beta1.", panel=OPTIM, type=float),  # checked with beta2 (config.check)
    R("beta2", "--beta2", help="Adam beta2.", panel=OPTIM, type=float),
    R("latent_dim", "--latent-dim", help="Latent size.", panel=OPTIM, type=int, check=N),
    R("label_smoothing", "--label-smoothing", help="One-sided: the real target becomes 1 - this (the Keras CIFAR-10 tutorial suggests 0.1).", panel=OPTIM, type=float, check=Fraction()),
    # d_update and init are named by their field in their messages, as config.json spells them
    R("d_update", "--d-update", help="separate | joint | simultaneous (see docs/train.md).", panel=OPTIM, check=OneOf(DUpdate), check_label="d_update"),
    R("init", "--init", help="Weight initialisation: keras | dcgan | torch.", panel=OPTIM, check=OneOf(Init), check_label="init"),
    R("d_steps", "--d-steps", help="D updates per G update, in every --d-update mode (5 for a WGAN critic).", panel=OPTIM, type=int, check=N),
    R("lr_decay", "--lr-decay", help="constant | linear (to zero at the last step).", metavar="SCHEDULE", panel=OPTIM, check=OneOf(LRDecay)),
    # modern ingredients
    R("regularizer", "--reg", help="Regulariser of D: none | r1 | r2 | gp (see `ganctl list`).", metavar="NAME", panel=MODERN),
    R("reg_weight", "--reg-weight", help="Its weight (gamma for r1/r2, lambda for gp; default 10).", panel=MODERN, type=float, check=NotNegative()),
    R("reg_every", "--reg-every", help="Apply it every N iterations, scaled by N (lazy; StyleGAN2 uses 16 for r1).", panel=MODERN, type=int, check=N),
    R("ema_kimg", "--ema-kimg", help="Generator EMA with this half-life in thousands of images (e.g. 10).", metavar="KIMG", panel=MODERN, type=float,
      check=Positive(note="the EMA's half-life in thousands of images")),
    R("ema_start", "--ema-start", help="Iterations before the EMA starts averaging (it copies G until then).", panel=MODERN, type=int, check=AtLeast(0)),
    R("augment", "--augment", help="Augment every image D sees: ada (adaptive, StyleGAN2-ADA) and/or DiffAugment's color,translation,cutout.", metavar="POLICY", panel=MODERN, check=AugmentPolicy()),
    R("ada_target", "--ada-target", help="With --augment ada: the overfitting E[sign(D(real))] that p is steered to (default 0.6).", panel=MODERN, type=float, check=Fraction()),
    R("ada_kimg", "--ada-kimg", help="With --augment ada: thousands of images for p to rise from 0 to 1 at the fastest (default 500; smaller for short runs).", metavar="KIMG", panel=MODERN, type=float,
      check=Positive(number=True)),
    R("spectral_norm", "--spectral-norm", help="Spectral normalisation of none | d | g | both.", metavar="NETS", panel=MODERN, check=OneOf(SpectralNorm)),
    R("d_input_scale", "--d-input-scale", help="D sees its images multiplied by X: with spectral norm, a D that is X-Lipschitz in pixel units (default 1).", metavar="X", panel=MODERN, type=float,
      check=Positive(number=True)),
    # fine-tuning
    C("init_from", "--init-from", help="Start from a trained run (G, its EMA if any, and D from its newest checkpoint) or a generator file (G only), of this architecture and size.", metavar="RUN|FILE", panel=FINETUNE, type=Path, to_field=str),
    R("freeze_d", "--freeze-d", help="FreezeD: keep D's first N layers with weights as they are (0: none).", metavar="N", panel=FINETUNE, type=int, check=AtLeast(0)),
    # --seed 0 is "not given": a resumed run keeps its own seed
    C("seed", "--seed", help="Random seed; on the CPU a fixed seed makes the run deterministic.", panel=OPTIM, type=int, default=0),
    # run folder
    C("run_dir", "--out", help="Run folder (default runs/<arch>-<time>).", panel=RUN, type=Path, to_field=str),
    # --resume: which run --out names (ganctl.commands.train)
    S("--resume/--no-resume", help="Continue the run in --out (default: the latest run) from its newest checkpoint.", panel=RUN, type=bool, default=False),
    C("max_steps", "--max-steps", help="Stop after N iterations (smoke runs).", panel=RUN, type=int, resumable=True, check=N),
    R("sample_every", "--sample-every", help="Epochs (ticks with --kimg) between sample grids and generator snapshots.", panel=RUN, type=int, check=N),
    C("checkpoint_every", "--checkpoint-every", help="Iterations between checkpoints (default: one epoch, or one tick with --kimg).", panel=RUN, type=int, resumable=True, check=N),
    C("keep_checkpoints", "--keep-checkpoints", help="How many checkpoints to keep (default 3).", panel=RUN, type=int, resumable=True, check=N),
    C("log_every", "--log-every", help="Iterations between metrics records (default 50).", panel=RUN, type=int, resumable=True, check=N),
    C("tensorboard", "--tensorboard/--no-tensorboard", help="Also write TensorBoard event files to RUN/tb/ (pip install 'ganctl[tensorboard]').", panel=RUN, type=bool, resumable=True),
    # --dry-run: print the configuration instead of training
    S("--dry-run/--no-dry-run", help="Print the resolved configuration and exit.", panel=RUN, type=bool, default=False),
    # --verbose: the full resolved configuration before the first step (it is always in RUN/config.json)
    S("--verbose", help="Print every resolved setting before training, not the short start (all are in RUN/config.json).", panel=RUN, type=bool, default=False),
    C("quiet", "--quiet", "-q", help="No start lines or progress bar.", panel=RUN, type=bool, default=False, flag_value=True, resumable=True),
    # evaluation
    C("eval_every", "--eval-every", help="Measure FID and KID every N epochs (ticks with --kimg) and at the end; keep the best generator as best.safetensors.", panel=EVAL, type=int, resumable=True, check=N),
    # --eval-n may not change on resume: figures of different sample counts do not compare
    C("eval_n", "--eval-n", help="Generated (and reference) images per evaluation; at least 2048 (default 10000).", panel=EVAL, type=int),
    C("inception", "--inception", help="FID Inception weights file (default: $GANCTL_INCEPTION_WEIGHTS or torch's cache).", panel=EVAL, type=Path, resumable=True, to_field=str),
    # device
    C("device", "--device", help=DEVICE_HELP, panel=HW, resumable=True),
    C("amp", "--amp/--no-amp", help=AMP_HELP, panel=HW, type=bool),
    C("channels_last", "--channels-last/--no-channels-last", help="NHWC memory layout (default on).", panel=HW, type=bool),
    C("compile", "--compile/--no-compile", help="torch.compile each phase of the step whole: G, augmentation, D and losses in one graph (default off: eager; a failed compile falls back to eager).", panel=HW, type=bool, resumable=True),
    C("micro_batch", "--micro-batch", help="Run each phase N images (of each half) at a time and add up the gradients: the recipe's batch in less memory (the same result up to float rounding, except with batch norm).", metavar="N", panel=HW, type=int, resumable=True, check=N),
    C("stream_data", "--stream-data/--no-stream-data", help="Keep the images in host memory and copy each batch over (default: only when they do not fit on the device).", panel=HW, type=bool, resumable=True),
    # several processes
    # --batch-per-gpu: --batch-size is the global batch, N × the number of processes
    S("--batch-per-gpu", help="Images per process and iteration: the batch becomes N × the number of processes (instead of --batch-size, which is the global batch).", panel=DIST, type=int),
    C("sync_bn", "--sync-bn/--no-sync-bn", help="Batch norm over the global batch (SyncBatchNorm; CUDA only). Default: each process's own statistics.", panel=DIST, type=bool, resumable=True),
    # --dist-backend: how the processes join (ganctl.distributed.start), before any run is resolved
    S("--dist-backend", help="auto (NCCL for CUDA tensors, gloo for CPU ones) | nccl | gloo.", metavar="NAME", panel=DIST, default="auto"),
    # fields not on the command line: their checks only
    R("sample_grid", check=N, check_label="--sample-grid"),
    R("sampling", check=OneOf(Sampling)),
    R("ema_rampup", check=NotNegative(), check_label="--ema-rampup"),
)  # fmt: skip

# Fields that have no row: not options, nor checked here.
NOT_OPTIONS = {
    "recipe": {"pixel_range", "adam_eps"},  # the architecture's; from Python only
    "run": {"recipe", "study"},  # the Recipe itself; the study that made the run (ganctl study sets it)
}

COMMAND_LINE = tuple(o for o in OPTIONS if o.on_command_line)
BY_FIELD = {(o.on, o.field): o for o in OPTIONS if o.field is not None}
BY_PARAM = {o.param: o for o in COMMAND_LINE}
RESUMABLE = tuple(o for o in COMMAND_LINE if o.resumable)


def overrides(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recipe fields, run fields) that a command line's values set: only the options given.

    ``values``: the command's parameters by name (options without a field are ignored).
    """
    recipe: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for name, value in values.items():
        option = BY_PARAM.get(name)
        if option is None or option.field is None or not option.given(value):
            continue
        (recipe if option.on == "recipe" else run)[option.field] = option.field_value(value)
    if "epochs" in recipe and "kimg" in recipe:
        from ganctl.errors import GanctlError

        raise GanctlError("give the length as --epochs or as --kimg, not both")
    lr = values.get("lr")
    if lr is not None:  # --lr: both learning rates, unless --g-lr or --d-lr names one
        recipe.setdefault("g_lr", lr)
        recipe.setdefault("d_lr", lr)
    return recipe, run


def changed_on_resume(config: Any, recipe: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The options (as spelled) given with a value other than the resumed run's, that may not change."""
    stored = {"recipe": config.recipe, "run": config}
    changed: list[str] = []
    for on, given in (("recipe", recipe), ("run", run)):
        for name, value in given.items():
            option = BY_FIELD[(on, name)]
            if not option.resumable and _differs(value, getattr(stored[on], name)):
                changed.append(option.label)
    return changed


def resume_refusal(changed: list[str], run_dir: Any) -> str:
    return f"{', '.join(changed)} cannot change when resuming {run_dir}; only {_and(o.label for o in RESUMABLE)} can"


def resumed(config: Any, recipe: dict[str, Any], run: dict[str, Any]) -> None:
    """Apply the resumable options given (after ``changed_on_resume`` found no other change)."""
    config.recipe = config.recipe.replace(**{k: v for k, v in recipe.items() if BY_FIELD[("recipe", k)].resumable})
    for name, value in run.items():
        if BY_FIELD[("run", name)].resumable:
            setattr(config, name, value)


def check_fields(config: Any) -> str | None:
    """The first complaint of a row's check about a TrainConfig's values (None: all fine)."""
    for option in OPTIONS:
        if option.check is None or option.field is None:
            continue
        value = getattr(config.recipe if option.on == "recipe" else config, option.field)
        if value is None:  # an optional field left out
            continue
        complaint = option.check(option.check_label, value)
        if complaint:
            return complaint
    return None


def _differs(given: Any, stored: Any) -> bool:
    if isinstance(stored, list):
        stored = tuple(stored)
    return given != stored


def _and(words: Any) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
