"""The loop's periodic work, each piece a small object: when it is due, what it does, what it keeps.

    LogEvent         every --log-every iterations: statistics read back (the one host sync),
                     checked, written to metrics.jsonl, shown; the health watches fed
    GridEvent        every sample_every epochs: a grid of the fixed latents and a generator snapshot
    EvalEvent        every --eval-every epochs: FID/KID, and best.safetensors when it is the best yet
    CheckpointEvent  every --checkpoint-every iterations: the whole named state, atomically

Each event's state joins the checkpoint's table through ``add_state``; ``finish`` is its work
at the end of the run. Events write through the run's writer, which on a process that does not
write (under torchrun, every rank but 0) writes nothing, so no event asks which rank it is on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganctl.data.images import grid, to_pil, to_uint8, with_row_legend
from ganctl.runfolder.layout import FINAL_TAG, RunFolder, epoch_tag, kimg_tag
from ganctl.training import checkpoint as ckpt
from ganctl.training.assembly import RunParts
from ganctl.training.config import TrainConfig
from ganctl.training.health import (
    BlankWatch, CollapseWatch, DiscriminatorWinsWatch, DiversityWatch, blank_fraction, check_finite, remedies, sample_spread,
)  # fmt: skip
from ganctl.training.step import CORE_STATS
from ganctl.training.writer import SilentWriter


@dataclass
class Progress:
    """How far the run is: kept in every checkpoint as its "progress" part."""

    step: int = 0
    last_eval_step: int = -1
    best_fid: float = math.inf

    def save(self) -> tuple[dict, dict[str, Any]]:
        best = self.best_fid if math.isfinite(self.best_fid) else None
        return {}, {"step": self.step, "last_eval_step": self.last_eval_step, "best_fid": best}

    def load(self, _: dict, values: dict[str, Any]) -> None:
        self.step, self.last_eval_step = values["step"], values["last_eval_step"]
        self.best_fid = math.inf if values["best_fid"] is None else values["best_fid"]


class IntervalClock:
    """Training time between two logs, evaluations excluded: images/s measures training."""

    def __init__(self) -> None:
        self.started, self.step = time.perf_counter(), 0

    def restart(self, step: int) -> None:
        self.started, self.step = time.perf_counter(), step

    def exclude(self, seconds: float) -> None:
        self.started += seconds

    def lap(self, step: int) -> tuple[int, float]:
        """(iterations, seconds) since the last lap, and a new interval starts."""
        now = time.perf_counter()
        steps, seconds = step - self.step, max(now - self.started, 1e-9)
        self.started, self.step = now, step
        return steps, seconds


@dataclass
class RunContext:
    """What the events share: the run's parts, its writer, its progress and its voices."""

    config: TrainConfig
    parts: RunParts
    writer: SilentWriter
    say: Callable[[str], None]
    view: Any = None  # a commands.train.ProgressView, or None
    progress: Progress = field(default_factory=Progress)
    clock: IntervalClock = field(default_factory=IntervalClock)
    state: ckpt.NamedState = field(default_factory=ckpt.NamedState)
    last_checkpoint: Path | None = None

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.config.run_dir)

    @property
    def step(self) -> int:
        return self.progress.step

    def epoch(self) -> float:
        return round(self.step / self.parts.schedule.steps_per_epoch, 4)

    def kimg(self) -> float:
        """Thousands of images shown to D so far."""
        return round(self.step * self.config.recipe.batch_size / 1000, 3)

    def position(self) -> dict[str, float]:
        """Where the run is, as every record and generator file says it."""
        return {"step": self.step, "epoch": self.epoch(), "kimg": self.kimg()}

    def at_tick_end(self, every: int) -> bool:
        """Whether this step ends a tick (an epoch, or tick_kimg of images) whose number is a multiple of ``every``."""
        per_tick = self.parts.schedule.steps_per_tick
        return self.step % per_tick == 0 and (self.step // per_tick) % every == 0

    def tick_tag(self) -> str:
        """The name of this tick's grid and snapshot: epoch-0012, or kimg-000119.808 for a run measured in images."""
        if self.parts.schedule.unit == "kimg":
            return kimg_tag(self.step * self.config.recipe.batch_size)
        return epoch_tag(self.step // self.parts.schedule.steps_per_epoch)

    def warn_event(self, kind: str, message: str) -> None:
        self.writer.record({"step": self.step, "event": kind, "message": message})
        self.say(f"warning: {message}")

    def save_generator(self, path: Path, *, raw: bool = False, **extra: Any) -> None:
        """A generator file: the EMA weights when EMA is on (unless ``raw``)."""
        parts, r = self.parts, self.config.recipe
        network = parts.G if raw else parts.sampling_generator()
        self.writer.generator(
            path, network, architecture=self.config.arch, arch_args=parts.arch_args, pixel_range=r.pixel_range,
            class_names=parts.class_names, class_counts=parts.class_counts,
            extra={
                **self.position(), "dataset": r.dataset, "loss": r.loss,
                "run": Path(self.config.run_dir).name,
                "weights": "ema" if network is not parts.G else "raw",  # which of an EMA run's generators this file holds
                **extra,
            },
        )  # fmt: skip


class Event:
    """Periodic work of the loop."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def due(self) -> bool:
        return False

    def __call__(self) -> None:
        raise NotImplementedError

    def add_state(self, state: ckpt.NamedState) -> None:
        """Register what this event keeps across a resume (nothing by default)."""

    def finish(self) -> None:
        """Its work at the end of the run (nothing by default)."""


HEALTH_WARMUP = 200  # iterations (at most a quarter of the run) before the watches speak: an untrained G draws blanks


class Health:
    """The watches for the ways GAN training goes wrong (training/health.py), fed by the log and the
    grids once the run is past its warm-up; their advice leaves out what the recipe already uses."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.collapse, self.d_wins = CollapseWatch(), DiscriminatorWinsWatch()
        self.diversity, self.blank = DiversityWatch(), BlankWatch()

    def warming_up(self) -> bool:
        return self.ctx.step < min(HEALTH_WARMUP, self.ctx.parts.schedule.total_steps // 4)

    def add_state(self, state: ckpt.NamedState) -> None:
        state.add_values("collapse_watch", self.collapse, ("_run", "reported"))
        state.add_values("diversity_watch", self.diversity, ("peak",))
        state.add_values("d_wins_watch", self.d_wins, ("_run", "reported"))
        state.add_values("blank_watch", self.blank, ("_run", "reported"))

    def after_log(self, stats: dict[str, float]) -> None:
        if self.warming_up():
            return
        ctx, advice = self.ctx, remedies(self.ctx.config.recipe)
        # A WGAN critic's loss is a signed score, not a classification loss: no collapse test.
        if ctx.parts.step.loss.has_accuracy and "d_loss_real" in stats and "d_loss_fake" in stats:
            d_loss = 0.5 * (stats["d_loss_real"] + stats["d_loss_fake"])
            if self.collapse.update(d_loss):
                ctx.warn_event(
                    "d_collapse",
                    f"discriminator loss has stayed below {self.collapse.threshold} for {self.collapse.window} "
                    f"log intervals (now {d_loss:.4f}): the generator may be producing rubbish (the warning sign "
                    f"the Keras CIFAR-10 tutorial names); {advice}",
                )
        if "d_acc_real" in stats and "d_acc_fake" in stats and self.d_wins.update(stats["d_acc_real"], stats["d_acc_fake"]):
            ctx.warn_event(
                "d_wins",
                f"the discriminator has won outright: accuracy 1.0 on real and on fake images for {self.d_wins.window} "
                f"log intervals, so the generator learns little; {advice}",
            )

    def after_grid(self, images: torch.Tensor, tag: str) -> None:
        if self.warming_up():
            return
        low_high = self.ctx.config.recipe.pixel_range
        spread = sample_spread(images, low_high)
        if self.diversity.update(spread):
            self.ctx.warn_event(
                "low_diversity",
                f"generated samples have stopped varying (spread {spread:.3f}, at best {self.diversity.peak:.3f}): mode collapse?",
            )
        blank = blank_fraction(images, low_high)
        if self.blank.update(blank):
            self.ctx.warn_event(
                "blank_samples",
                f"{blank:.0%} of the generated samples in {tag}.png are blank (one flat colour): the generator has "
                f"given up or not started; {remedies(self.ctx.config.recipe)}",
            )


class LogEvent(Event):
    def __init__(self, ctx: RunContext, health: Health) -> None:
        super().__init__(ctx)
        self.health = health

    def due(self) -> bool:
        return self.ctx.step % self.ctx.config.log_every == 0

    def __call__(self) -> None:
        ctx, parts = self.ctx, self.ctx.parts
        stats = parts.processes.read_stats(parts.stats)  # the one host sync per interval (averaged over processes)
        steps, seconds = ctx.clock.lap(ctx.step)
        check_finite(stats, ctx.step, str(ctx.last_checkpoint) if ctx.last_checkpoint else None)
        ordered = [k for k in CORE_STATS if k in stats] + [k for k in stats if k not in CORE_STATS]
        record = {**ctx.position(), **{k: round(stats[k], 6) for k in ordered}}
        if parts.schedules:
            record["lr_g"], record["lr_d"] = (s.get_last_lr()[0] for s in parts.schedules)
        record["images_per_s"] = round(steps * ctx.config.recipe.batch_size / seconds, 1)
        ctx.writer.record(record)
        parts.stats.reset()
        if ctx.view:
            ctx.view.show(record)
        self.health.after_log(stats)

    def finish(self) -> None:
        if self.ctx.parts.stats:  # the unfinished interval
            self()


class GridEvent(Event):
    def __init__(self, ctx: RunContext, health: Health) -> None:
        super().__init__(ctx)
        self.health = health

    def due(self) -> bool:
        return self.ctx.at_tick_end(self.ctx.config.recipe.sample_every)

    def __call__(self) -> None:
        self.grid(self.ctx.tick_tag())

    def finish(self) -> None:
        if not self.due():  # the last grid, unless the epoch's grid is it already
            self.grid(FINAL_TAG)

    @torch.no_grad()
    def grid(self, tag: str) -> None:
        ctx, parts = self.ctx, self.ctx.parts
        if not ctx.writer.writes:  # grids and snapshots are rank 0's (no random draw: nothing to keep in step)
            return
        low_high = ctx.config.recipe.pixel_range
        generator = parts.sampling_generator()
        was_training = generator.training
        generator.eval()  # batch norm from its running statistics; no random state is touched
        images = generator(*parts.grid.inputs(parts.fixed_z)).float()
        generator.train(was_training)
        ctx.writer.grid(to_pil(grid(to_uint8(images, low_high), nrow=parts.grid.columns)), tag, ctx.step)
        ctx.writer.real_grid(lambda: self.real_picture(images.shape[0]))
        if tag != FINAL_TAG:
            ctx.save_generator(ctx.folder.snapshot(tag))
        self.health.after_grid(images, tag)

    def real_picture(self, n: int) -> Any:
        """``real.png``: a seeded random sample of the whole training set (its own generator: the
        training's streams are untouched); for a conditional run one labelled row per class."""
        parts = self.ctx.parts
        real, draw = parts.streams.real, torch.Generator().manual_seed(self.ctx.config.seed + 6)
        if not parts.class_names or real.labels is None:
            index = torch.randperm(len(real), generator=draw)[:n]
            return to_pil(grid(real.images[index.to(real.images.device)].cpu().contiguous()))
        labels, columns = real.labels.cpu(), parts.grid.columns
        rows = []
        for label in range(len(parts.class_names)):
            members = (labels == label).nonzero().flatten()
            picks = members[torch.randperm(len(members), generator=draw)[:columns]]
            row = real.images[picks.to(real.images.device)].cpu()
            blank = torch.zeros((columns - len(row), *row.shape[1:]), dtype=row.dtype)  # a class with fewer images
            rows.append(torch.cat([row, blank]))
        picture = to_pil(grid(torch.cat(rows).contiguous(), nrow=columns))
        return with_row_legend(picture, list(parts.class_names), padding=2, scale=1)


class EvalEvent(Event):
    """FID/KID of the generator now into metrics.jsonl; kept as best.safetensors if it is the best yet."""

    def __init__(self, ctx: RunContext, evaluation: Any) -> None:
        super().__init__(ctx)
        self.evaluation = evaluation  # a training.evaluation.TrainingEval

    def due(self) -> bool:
        return self.ctx.at_tick_end(self.ctx.config.eval_every)

    def finish(self) -> None:
        if self.ctx.progress.last_eval_step != self.ctx.step:  # the final generator gets its figures too
            self()

    def __call__(self) -> None:
        ctx, parts, progress = self.ctx, self.ctx.parts, self.ctx.progress
        started = time.perf_counter()
        self.evaluation.best_fid = progress.best_fid
        conditional = {"class_weights": parts.class_counts} if parts.class_counts else {}  # the training set's proportions
        result = self.evaluation.measure(parts.sampling_generator(), ctx.config.recipe.pixel_range, ctx.config.recipe.latent_dim, **conditional)
        progress.last_eval_step = ctx.step
        if result is None:  # under torchrun, a process that measured its share: rank 0 has the figures
            return
        best = self.evaluation.is_best(result["fid"])
        progress.best_fid = self.evaluation.best_fid
        record = {
            **ctx.position(), "fid": round(result["fid"], 4), "kid_mean": round(result["kid_mean"], 6),
            "kid_std": round(result["kid_std"], 6), "best": best, "eval_seconds": round(sum(result["seconds"].values()), 1),
            "protocol": result["protocol"],
        }  # fmt: skip
        ctx.writer.record(record)
        if best:
            ctx.save_generator(
                ctx.folder.best_generator, fid=record["fid"], kid_mean=record["kid_mean"],
                eval_n=result["protocol"]["n_evaluated"],
            )  # fmt: skip
        if ctx.view:
            ctx.view.show_eval(record)
        ctx.say(
            f"step {ctx.step}: FID {record['fid']:.2f}, KID {record['kid_mean']:.4f} ± {record['kid_std']:.4f}"
            + (" (best so far: best.safetensors)" if best else f" (best {progress.best_fid:.2f})")
        )
        ctx.clock.exclude(time.perf_counter() - started)


class CheckpointEvent(Event):
    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.every = ctx.config.checkpoint_every or ctx.parts.schedule.steps_per_tick
        self.written_at: int | None = None  # the step of this session's newest checkpoint
        self.written_eval = -1  # the progress.last_eval_step it holds

    def due(self) -> bool:
        return self.ctx.step % self.every == 0

    def restored(self) -> None:
        """The run resumed from a checkpoint of this step: no need to write it again at the end."""
        self.written_at, self.written_eval = self.ctx.step, self.ctx.progress.last_eval_step

    def __call__(self) -> None:
        ctx, parts = self.ctx, self.ctx.parts
        if parts.stats:  # never save a state whose losses went non-finite
            stats = parts.processes.read_stats(parts.stats)
            check_finite(stats, ctx.step, str(ctx.last_checkpoint) if ctx.last_checkpoint else None)
        ctx.last_checkpoint = ctx.writer.checkpoint(ctx.state, ctx.step, ctx.config.keep_checkpoints)
        self.written_at, self.written_eval = ctx.step, ctx.progress.last_eval_step

    def finish(self) -> None:
        # again if the step's checkpoint predates the final evaluation: it records the best FID
        if self.written_at != self.ctx.step or self.written_eval != self.ctx.progress.last_eval_step:
            self()
