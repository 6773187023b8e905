"""A training run, top to bottom.

``Trainer(config, resume=...).run()`` sets up the run folder, the data on the device, the
networks and optimisers (or restores them from the newest checkpoint), then iterates:

    every step           one TrainStep (its phases; no host sync), statistics summed on the
                         device by name; the LR schedules step
    every log_every      statistics read back once, checked, written to metrics.jsonl
    every sample_every   a grid of the fixed latents and a generator snapshot (epochs)
    every eval_every     FID and KID into metrics.jsonl; the best generator as best.safetensors
    every checkpoint     the whole named state, atomically; the oldest beyond keep_checkpoints deleted
    at the end           final grid, progress.gif, generator.safetensors, a last checkpoint

With a generator EMA, grids, snapshots, evaluations and the generator files use the averaged
weights, and the raw generator is saved beside them as generator-raw.safetensors.

On the CPU with a fixed seed, a run that is interrupted (Ctrl-C, kill -9) and resumed ends
with the same generator, bit for bit, as the run without the interruption: every random
generator's state is in the checkpoint, and nothing outside the step draws from them.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganctl import __version__, distributed
from ganctl.conditional import GridLayout, class_counts
from ganctl.device import use_amp
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_json
from ganctl.images import grid, save_animation_of_files, save_png, to_pil, to_uint8
from ganctl.registry import ARCHITECTURES, LOSSES, REGULARIZERS
from ganctl.runfolder.layout import (
    BEST_GENERATOR, CHECKPOINTS, CONFIG, FINAL_GENERATOR, FINAL_GRID, FINAL_TAG, GRID_GLOB, METRICS, PROGRESS_ANIMATION,
    RAW_GENERATOR, REAL_GRID, SAMPLES, SNAPSHOTS, epoch_tag, grid_name, set_latest, snapshot_name,
)
from ganctl.runfolder.lock import RunFolderLock, holds_files, remove_stale_temporaries
from ganctl.runfolder.manifest import Manifest, write_manifest
from ganctl.runfolder.records import truncate_after as truncate_metrics
from ganctl.spectral import apply_spectral_norm, baked_copy, has_parametrizations
from ganctl.training import checkpoint as ckpt
from ganctl.training.augment import DiffAugment
from ganctl.training.streaming import real_batches
from ganctl.training.config import TrainConfig, check, iterations_per_epoch, real_per_step
from ganctl.training.ema import GeneratorEMA
from ganctl.training.health import (
    REMEDIES, BlankWatch, CollapseWatch, DiscriminatorWinsWatch, DiversityWatch, blank_fraction, check_finite, sample_spread,
)
from ganctl.training.stats import StepStats
from ganctl.training.step import CORE_STATS, Networks, TrainStep
from ganctl.weights import save_generator


def make_adam(network: torch.nn.Module, recipe, lr: float, device: torch.device, lazy_interval: int = 1) -> torch.optim.Optimizer:
    """Adam as the recipe says; for a regulariser applied lazily every N steps, StyleGAN2's adjustment.

    A lazy penalty adds one optimiser step every N iterations; scaling the lr by r = N / (N + 1)
    and raising the betas to the power r keeps the effective step size and the moments' memory
    (in iterations) what they would be without it.
    """
    ratio = lazy_interval / (lazy_interval + 1) if lazy_interval > 1 else 1.0
    return torch.optim.Adam(
        network.parameters(), lr=lr * ratio, betas=(recipe.beta1**ratio, recipe.beta2**ratio), eps=recipe.adam_eps,
        fused=(device.type == "cuda") or None,  # one kernel for the whole Adam update
    )  # fmt: skip


class TrainingInterrupted(GanctlError):
    exit_code = 130


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        say: Callable[[str], None] = print,
        warn: Callable[[str], None] | None = None,
        progress: Any = None,
    ) -> None:
        check(config)
        self.config = config
        self.recipe = config.recipe
        self.resume = resume
        self.say = say  # one line of news for the user
        # what the user must see even with --quiet (a resume from an older checkpoint than asked)
        self.warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
        self.progress = progress  # a ganctl.commands.train.ProgressView, or None
        self.run_dir = Path(config.run_dir)
        # under torchrun: this process's place among the run's processes (one process: rank 0 of 1)
        self.processes = distributed.current()
        self.per_rank = distributed.PerRankParts(self.processes)
        self._interrupted = False
        self.last_checkpoint: Path | None = None

    # ------------------------------------------------------------------------------------
    def run(self) -> Path:
        # Everything that can be wrong with the request is found before the run folder is made
        # (under torchrun, a refusal on any process stops them all).
        self.processes.together(self._load_data)
        with contextlib.ExitStack() as held:
            self.processes.together(lambda: self._open_run_dir(held), writer_only=True)
            self._setup()
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_interrupt)
            signal.signal(signal.SIGTERM, self._on_interrupt)
            try:
                self._loop()
            finally:
                if self.tensorboard is not None:
                    self.tensorboard.close()
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return self.run_dir

    def _on_interrupt(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        self._interrupted = True

    # --- set-up ---------------------------------------------------------------------------
    def _open_run_dir(self, held: contextlib.ExitStack) -> None:
        """Make and lock the run folder, then write its config (rank 0 alone: the others never touch it)."""
        self._check_run_dir()
        self._make_run_dir()
        # The lock before anything is removed or written: a second `train --resume` started
        # while this one runs must not touch its files (its temporary files above all).
        held.enter_context(RunFolderLock(self.run_dir))
        self._prepare_run_dir()

    def _check_run_dir(self) -> None:
        """A new run only goes into an empty folder (stale temporary files and the lock don't count)."""
        if not self.resume and self.run_dir.exists() and holds_files(self.run_dir):
            raise GanctlError(
                f"{self.run_dir} already holds files; continue it with --resume or choose another --out"
            )

    def _make_run_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GanctlError(f"cannot write to {self.run_dir}: {exc.strerror}") from None

    def _prepare_run_dir(self) -> None:
        """Under the lock: remove what a killed process left half-written, then write config.json."""
        self._check_run_dir()  # again, now that no other training can be writing into it
        config_file = self.run_dir / CONFIG
        try:
            remove_stale_temporaries(self.run_dir)
            # config.json first: once the folder holds anything, it can be resumed
            if not config_file.exists():
                atomic_write_json(config_file, {"ganctl_version": __version__, **self.config.to_dict()})
            write_manifest(self.run_dir, Manifest.create(  # once: what the run was set up as (kept on resume)
                steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps, epochs=self.recipe.epochs,
                images=self.images.shape[0], world_size=self.processes.world, device=self.device,
                classes=zip(self.class_names, class_counts(self.labels, len(self.class_names))) if self.class_names else (),
            ))  # fmt: skip
            for sub in (CHECKPOINTS, SAMPLES, SNAPSHOTS):
                (self.run_dir / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise GanctlError(f"cannot write to {self.run_dir}: {exc.strerror}") from None
        set_latest(self.run_dir)

    def _load_data(self) -> None:
        """Check the names and load the training images (not yet onto the device)."""
        from ganctl.conditional import check_conditional_arch, check_labelled
        from ganctl.data import LoadedImages, load_labelled
        from ganctl.image_cache import load_images_to_stream

        c, r = self.config, self.recipe
        self.device = self.processes.device_for(c.device)
        self.processes.check_batch(r.batch_size, real_per_step(r), halves=r.d_update in ("separate", "joint"))
        if c.sync_bn and self.device.type != "cuda":
            raise GanctlError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        self.arch = ARCHITECTURES.get(c.arch).obj
        self.arch.check(**self.arch.arch_args(r.image_size, r.channels, r.latent_dim))  # before minutes of loading
        if r.conditional:
            check_conditional_arch(self.arch)
        self.loss_class = LOSSES.get(r.loss).obj
        self.regularizer_class = REGULARIZERS.get(r.regularizer).obj if r.regularizer != "none" else None
        options = dict(
            data_dir=Path(c.data_dir) if c.data_dir else None,
            split="train",
            image_size=r.image_size,
            channels=r.channels,
            download=c.download,
            limit=c.dataset_limit,
            log=self.say,
        )
        if c.stream_data and not r.conditional:
            # streamed: a folder comes memory-mapped from its cache file, never whole in memory
            # (the cache holds no labels: a conditional run loads its folder into host memory)
            loaded = LoadedImages(load_images_to_stream(r.dataset, **options))
        else:
            loaded = load_labelled(r.dataset, **options)
        self.images = loaded.images
        # a conditional run keeps the labels; an unconditional one never sees them
        self.labels, self.class_names = (loaded.labels, loaded.class_names) if r.conditional else (None, ())
        if r.conditional:
            check_labelled(r.dataset, loaded.labels, loaded.class_names)
        self.arch_args = self.arch.arch_args(r.image_size, r.channels, r.latent_dim, num_classes=len(self.class_names))
        self.steps_per_epoch = iterations_per_epoch(r, self.images.shape[0])
        self.total_steps = r.epochs * self.steps_per_epoch
        if c.max_steps is not None:
            self.total_steps = min(self.total_steps, c.max_steps)
        self.checkpoint_every = c.checkpoint_every or self.steps_per_epoch
        self.evaluation = None
        if c.eval_every is not None:
            from ganctl.training.evaluation import TrainingEval

            self.evaluation = TrainingEval(
                dataset=r.dataset, data_dir=Path(c.data_dir) if c.data_dir else None, image_size=r.image_size,
                channels=r.channels, train_images=self.images.shape[0], n=c.eval_n, inception=c.inception,
                download=c.download, device=self.device, say=self.say, processes=self.processes,
            )  # fmt: skip
        self.last_eval_step = -1

    def _setup(self) -> None:
        c, r = self.config, self.recipe
        torch.manual_seed(c.seed)  # initialisation and dropout draw from the global generator
        generator, discriminator = self.arch.build(**self.arch_args)
        if r.spectral_norm in ("g", "both"):
            apply_spectral_norm(generator)
        if r.spectral_norm in ("d", "both"):
            apply_spectral_norm(discriminator)
        p = self.processes
        if p.distributed:
            if c.sync_bn:  # batch statistics over the global batch instead of each process's share
                generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
                discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
            # the networks start alike on every process; dropout and other global draws differ
            torch.manual_seed(distributed.rank_seed(c.seed, p.rank))
        layout = torch.channels_last if c.channels_last else torch.contiguous_format
        self.G = generator.to(self.device, memory_format=layout)
        self.D = discriminator.to(self.device, memory_format=layout)
        self.g_opt = make_adam(self.G, r, r.g_lr, self.device)
        self.d_opt = make_adam(self.D, r, r.d_lr, self.device, lazy_interval=r.reg_every if self.regularizer_class else 1)
        self.schedules = []
        if r.lr_decay == "linear":
            # to zero at the end of the recipe's epochs (--epochs on resume moves it; --max-steps,
            # a stop for smoke runs, does not)
            planned = r.epochs * self.steps_per_epoch
            decay = lambda done: max(0.0, 1.0 - done / planned)  # noqa: E731
            self.schedules = [torch.optim.lr_scheduler.LambdaLR(opt, decay) for opt in (self.g_opt, self.d_opt)]

        self.real = real_batches(
            self.images.contiguous(memory_format=layout), batch=real_per_step(r), sampling=r.sampling, pixel_range=r.pixel_range,
            device=self.device, seed=c.seed + 1, labels=self.labels, share=(p.rank, p.world), stream=c.stream_data, say=self.say,
        )
        del self.images  # now inside self.real (on the device unless streamed)
        self.latent_rng = torch.Generator(device=self.device)
        self.latent_rng.manual_seed(c.seed + 2)
        fixed = torch.Generator().manual_seed(c.seed + 3)  # on the CPU: the same grid on any device
        self.class_counts = class_counts(self.labels, len(self.class_names)) if self.class_names else []
        # a conditional grid: one row per class, the same latents in every row
        self.grid = GridLayout.for_run(r.sample_grid, len(self.class_names))
        self.fixed_z = torch.randn(self.grid.latents, r.latent_dim, generator=fixed).repeat(self.grid.rows_of_latents, 1).to(self.device)
        # each process's own streams (rank 0's are the single-process ones)
        own_seed = distributed.rank_seed(c.seed, p.rank)
        self.augment = DiffAugment(r.augment, r.pixel_range, self.device, seed=own_seed + 4) if r.augment else None
        self.penalty_rng = torch.Generator(device=self.device)
        self.penalty_rng.manual_seed(own_seed + 5)
        self.ema = None
        if r.ema_kimg is not None:
            self.ema = GeneratorEMA(self.G, half_life_kimg=r.ema_kimg, batch_size=r.batch_size, rampup=r.ema_rampup,
                                    start_step=r.ema_start)
        self.stats = StepStats()
        nets = Networks(self.G, self.D, self.g_opt, self.d_opt)
        # the step sees this process's share of the batch (the recipe's batch is the global one)
        self.step_fn = TrainStep(
            nets, loss=self.loss_class(real_target=1.0 - r.label_smoothing), recipe=r.replace(batch_size=r.batch_size // p.world),
            real=self.real,
            latent_rng=self.latent_rng, device=self.device, amp=use_amp(self.device, c.amp), stats=self.stats,
            regularizer=self.regularizer_class() if self.regularizer_class else None, penalty_rng=self.penalty_rng,
            augment=self.augment, ema=self.ema, average_gradients=p.average_gradients if p.distributed else None,
            latent_share=(p.rank, p.world), compile=c.compile, log=self.say,
            class_weights=torch.tensor(self.class_counts, dtype=torch.float, device=self.device) if self.class_names else None,
        )  # fmt: skip
        self.step = 0
        self.collapse = CollapseWatch()
        self.diversity = DiversityWatch()
        self.d_wins = DiscriminatorWinsWatch()
        self.blank_watch = BlankWatch()
        self.state = self._named_state()
        if self.resume:
            self._restore()
        elif p.is_writer:
            (self.run_dir / METRICS).touch()
        self.tensorboard = None
        if c.tensorboard and p.is_writer:
            from ganctl.tensorboard_sink import TensorBoardSink

            # on resume, TensorBoard hides what the interrupted session wrote after the checkpoint
            self.tensorboard = TensorBoardSink(
                self.run_dir, purge_step=self.step + 1 if self.resume else None,
                config={"ganctl_version": __version__, **c.to_dict()},
            )  # fmt: skip

    def _named_state(self) -> ckpt.NamedState:
        """Every stateful part of the run, by name: what a checkpoint saves and restores."""
        state = ckpt.NamedState()
        state.add("progress", lambda: ({}, self._progress_values()), lambda _, values: self._load_progress(values))
        state.add_module("G", self.G)
        state.add_module("D", self.D)
        state.add_optimizer("opt_G", self.g_opt)
        state.add_optimizer("opt_D", self.d_opt)
        for name, schedule in zip(("lr_G", "lr_D"), self.schedules):
            state.add(name, lambda s=schedule: ({}, s.state_dict()), lambda _, values, s=schedule: s.load_state_dict(values))
        if self.ema is not None:
            state.add_module("G_ema", self.ema.average)
        state.add("real", lambda: (self.real.state(), None), lambda tensors, _: self.real.load_state(tensors))
        state.add_rng("rng_latent", self.latent_rng)  # the latents of the global batch: one stream for all processes
        # each process's own: every rank's are saved (one process: as they always were)
        own = self.per_rank.wrap
        state.add("rng_penalty", *own(*self._rng_part(self.penalty_rng, 5)))
        if self.augment is not None:
            state.add("rng_augment", *own(*self._rng_part(self.augment.rng, 4)))
        state.add("rng_torch", *own(self._global_rng_state, self._load_global_rng_state, lambda: torch.manual_seed(self._new_seed())))
        state.add("fixed_z", lambda: ({"z": self.fixed_z}, None), lambda t, _: setattr(self, "fixed_z", t["z"].to(self.device)))
        state.add("stats", *own(self.stats.state, lambda t, values: self.stats.load_state(t, values, self.device), self.stats.reset))
        state.add_values("collapse_watch", self.collapse, ("_run", "reported"))
        state.add_values("diversity_watch", self.diversity, ("peak",))
        state.add_values("d_wins_watch", self.d_wins, ("_run", "reported"))
        state.add_values("blank_watch", self.blank_watch, ("_run", "reported"))
        return state

    def _rng_part(self, generator: torch.Generator, offset: int):
        """save, load and start-afresh of one of a process's own random generators."""
        return (
            lambda: ({"state": generator.get_state()}, None),
            lambda t, _: generator.set_state(t["state"]),
            lambda: generator.manual_seed(self._new_seed() + offset),
        )

    def _new_seed(self) -> int:
        """A process's seed for new streams, when a checkpoint of another world size cannot give it its own."""
        return distributed.rank_seed(self.config.seed, self.processes.rank, restart_step=max(self.step, 1))

    def _progress_values(self) -> dict[str, Any]:
        best = self.evaluation.best_fid if self.evaluation else math.inf
        return {"step": self.step, "last_eval_step": self.last_eval_step, "best_fid": best if math.isfinite(best) else None}

    def _load_progress(self, values: dict[str, Any]) -> None:
        self.step = values["step"]
        self.last_eval_step = values["last_eval_step"]
        if self.evaluation and values["best_fid"] is not None:
            self.evaluation.best_fid = values["best_fid"]

    def _global_rng_state(self) -> tuple[dict[str, torch.Tensor], None]:
        tensors = {"cpu": torch.get_rng_state()}  # dropout and other global draws
        if self.device.type == "cuda":
            tensors["cuda"] = torch.cuda.get_rng_state(self.device)
        return tensors, None

    def _load_global_rng_state(self, tensors: dict[str, torch.Tensor], _: Any) -> None:
        torch.set_rng_state(tensors["cpu"])
        if "cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["cuda"], self.device)

    def _sampling_generator(self) -> torch.nn.Module:
        """What grids, snapshots and evaluations use: the EMA generator when there is one."""
        return self.ema.average if self.ema is not None else self.G

    # --- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        c = self.config
        if self.progress:
            self.progress.start(self.total_steps, self.step, self.steps_per_epoch)
        self._clock = (time.perf_counter(), self.step)
        while self.step < self.total_steps:
            self.step_fn(self.step)
            for schedule in self.schedules:
                schedule.step()
            self.step += 1
            if self.progress:
                self.progress.advance(self.step)
            if self.step % c.log_every == 0:
                self._log()
            if self.step % self.steps_per_epoch == 0:
                epoch = self.step // self.steps_per_epoch
                if epoch % self.recipe.sample_every == 0:
                    self._samples(epoch_tag(epoch))
                if self.evaluation and epoch % c.eval_every == 0:
                    self._evaluate()
            if self.step % self.checkpoint_every == 0:
                self._checkpoint()
            if self._stop_requested():
                self._checkpoint()
                self._progress_animation()
                interrupted = TrainingInterrupted(
                    f"interrupted at step {self.step}; checkpoint saved; continue with "
                    f"`ganctl train --resume --out {self.run_dir}`"
                )
                interrupted.quiet = not self.processes.is_writer  # (under torchrun: rank 0 says it once)
                raise interrupted
        self._finish()

    def _stop_requested(self) -> bool:
        """Ctrl-C or SIGTERM; under torchrun the processes agree at each log interval, so all stop at one step."""
        if not self.processes.distributed:
            return self._interrupted
        return self.step % self.config.log_every == 0 and self.processes.any_rank(self._interrupted)

    def _finish(self) -> None:
        if self.stats:
            self._log()
        epoch_end = self.step % self.steps_per_epoch == 0
        epoch = self.step // self.steps_per_epoch
        if not (epoch_end and epoch % self.recipe.sample_every == 0):
            self._samples(FINAL_TAG)  # the last grid, unless the epoch's grid is it already
        evaluated = False
        if self.evaluation and self.last_eval_step != self.step:
            self._evaluate()  # the final generator gets its figures too
            evaluated = True
        self._save_generator(self.run_dir / FINAL_GENERATOR)
        if self.ema is not None:
            self._save_generator(self.run_dir / RAW_GENERATOR, raw=True)
        self._progress_animation()
        # (again if the step's checkpoint predates the evaluation: it records the best FID)
        if evaluated or self.last_checkpoint != ckpt.checkpoint_path(self.run_dir / CHECKPOINTS, self.step):
            self._checkpoint()
        if self.progress:
            self.progress.stop()
        self.say(f"done: {self.step} iterations; generator in {self.run_dir / FINAL_GENERATOR}")

    # --- logging and health ---------------------------------------------------------------
    def _log(self) -> None:
        stats = self.processes.read_stats(self.stats)  # the one host sync per interval (averaged over processes)
        now, then = time.perf_counter(), self._clock
        steps = self.step - then[1]
        check_finite(stats, self.step, str(self.last_checkpoint) if self.last_checkpoint else None)
        ordered = [k for k in CORE_STATS if k in stats] + [k for k in stats if k not in CORE_STATS]
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            **{k: round(stats[k], 6) for k in ordered},
        }
        if self.schedules:
            record["lr_g"], record["lr_d"] = (s.get_last_lr()[0] for s in self.schedules)
        record["images_per_s"] = round(steps * self.recipe.batch_size / max(now - then[0], 1e-9), 1)
        self._append_metrics(record)
        self.stats.reset()
        self._clock = (now, self.step)
        if self.progress:
            self.progress.show(record)
        # A WGAN critic's loss is a signed score, not a classification loss: no collapse test.
        if self.step_fn.loss.has_accuracy and "d_loss_real" in stats and "d_loss_fake" in stats:
            d_loss = 0.5 * (stats["d_loss_real"] + stats["d_loss_fake"])
            if self.collapse.update(d_loss):
                self._event(
                    "d_collapse",
                    f"discriminator loss has stayed below {self.collapse.threshold} for {self.collapse.window} "
                    f"log intervals (now {d_loss:.4f}): the generator may be producing rubbish (the warning sign "
                    f"the Keras CIFAR-10 tutorial names); {REMEDIES}",
                )
        if "d_acc_real" in stats and "d_acc_fake" in stats:
            wins = self.d_wins
            if wins.update(stats["d_acc_real"], stats["d_acc_fake"]):
                self._event(
                    "d_wins",
                    f"the discriminator has won outright: accuracy 1.0 on real and on fake images for {wins.window} "
                    f"log intervals, so the generator learns little; {REMEDIES}",
                )

    def _event(self, kind: str, message: str) -> None:
        self._append_metrics({"step": self.step, "event": kind, "message": message})
        self.say(f"warning: {message}")

    def _append_metrics(self, record: dict[str, Any]) -> None:
        if not self.processes.is_writer:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:  # the same record, from values already on the host
            self.tensorboard.record(record)

    # --- samples, snapshots, checkpoints --------------------------------------------------
    @torch.no_grad()
    def _samples(self, tag: str) -> None:
        if not self.processes.is_writer:  # grids and snapshots are rank 0's (no random draw: nothing to keep in step)
            return
        low_high = self.recipe.pixel_range
        generator = self._sampling_generator()
        was_training = generator.training
        generator.eval()  # batch norm from its running statistics; no random state is touched
        images = generator(*self.grid.inputs(self.fixed_z)).float()
        generator.train(was_training)
        png = to_pil(grid(to_uint8(images, low_high), nrow=self.grid.columns))
        save_png(png, self.run_dir / SAMPLES / grid_name(tag))
        real = self.run_dir / SAMPLES / REAL_GRID
        if not real.exists():  # once: what the model learns from, at its size, beside its grids
            shown = self.real.images[: images.shape[0]].cpu().contiguous()  # the first images: no random draw
            save_png(to_pil(grid(shown)), real)
        if self.tensorboard is not None:
            self.tensorboard.image("samples", self.step, png)
        if tag != FINAL_TAG:
            self._save_generator(self.run_dir / SNAPSHOTS / snapshot_name(tag))
        spread = sample_spread(images, low_high)
        if self.diversity.update(spread):
            self._event(
                "low_diversity",
                f"generated samples have stopped varying (spread {spread:.3f}, at best {self.diversity.peak:.3f}): "
                "mode collapse?",
            )
        blank = blank_fraction(images, low_high)
        if self.blank_watch.update(blank):
            self._event(
                "blank_samples",
                f"{blank:.0%} of the generated samples in {tag}.png are blank (one flat colour): the generator has "
                f"given up or not started; {REMEDIES}",
            )

    def _progress_animation(self) -> None:
        """progress.gif from the grids so far, built once (at the end or on interruption), not per grid."""
        if not self.processes.is_writer:
            return
        frames = sorted((self.run_dir / SAMPLES).glob(GRID_GLOB))
        if (self.run_dir / SAMPLES / FINAL_GRID).exists():
            frames.append(self.run_dir / SAMPLES / FINAL_GRID)
        save_animation_of_files(frames, self.run_dir / PROGRESS_ANIMATION, fps=2)

    def _evaluate(self) -> None:
        """FID/KID of the generator now into metrics.jsonl; keep it as best.safetensors if it is the best yet."""
        started = time.perf_counter()
        conditional = {"class_weights": self.class_counts} if self.class_counts else {}  # the classes in the training set's proportions
        result = self.evaluation.measure(self._sampling_generator(), self.recipe.pixel_range, self.recipe.latent_dim, **conditional)
        if result is None:  # under torchrun, a process that measured its share: rank 0 has the figures
            self.last_eval_step = self.step
            return
        best = self.evaluation.is_best(result["fid"])
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "fid": round(result["fid"], 4),
            "kid_mean": round(result["kid_mean"], 6),
            "kid_std": round(result["kid_std"], 6),
            "best": best,
            "eval_seconds": round(sum(result["seconds"].values()), 1),
            "protocol": result["protocol"],
        }
        self._append_metrics(record)
        self.last_eval_step = self.step
        if best:
            self._save_generator(
                self.run_dir / BEST_GENERATOR,
                fid=record["fid"], kid_mean=record["kid_mean"], eval_n=result["protocol"]["n_evaluated"],
            )
        if self.progress:
            self.progress.show_eval(record)
        self.say(
            f"step {self.step}: FID {record['fid']:.2f}, KID {record['kid_mean']:.4f} ± {record['kid_std']:.4f}"
            + (" (best so far: best.safetensors)" if best else f" (best {self.evaluation.best_fid:.2f})")
        )
        # images/s measures training: the interval's clock does not count the evaluation
        self._clock = (self._clock[0] + time.perf_counter() - started, self._clock[1])

    def _save_generator(self, path: Path, *, raw: bool = False, **extra: Any) -> None:
        """A generator file: the EMA weights when EMA is on (unless ``raw``); spectral norm baked in."""
        if not self.processes.is_writer:
            return
        network = self.G if raw else self._sampling_generator()
        weights = "ema" if network is not self.G else "raw"
        if has_parametrizations(network):
            network = baked_copy(network)
        save_generator(
            path,
            network,
            architecture=self.config.arch,
            arch_args=self.arch_args,
            pixel_range=self.recipe.pixel_range,
            class_names=self.class_names,
            class_counts=self.class_counts,
            extra={
                "step": self.step,
                "epoch": round(self.step / self.steps_per_epoch, 4),
                "dataset": self.recipe.dataset,
                "loss": self.recipe.loss,
                "run": self.run_dir.name,
                "weights": weights,  # which of an EMA run's generators this file holds
                **extra,
            },
        )

    def _checkpoint(self) -> None:
        if self.stats:  # never save a state whose losses went non-finite
            stats = self.processes.read_stats(self.stats)
            check_finite(stats, self.step, str(self.last_checkpoint) if self.last_checkpoint else None)
        folder = self.run_dir / CHECKPOINTS
        path = ckpt.checkpoint_path(folder, self.step)
        if not self.processes.is_writer:
            self.state.collect()  # this process's random states go to rank 0, which writes the file
            self.last_checkpoint = path
            return
        self.state.save(path, step=self.step)
        if self.tensorboard is not None:  # what precedes a checkpoint is never written again on resume
            self.tensorboard.flush()
        self.last_checkpoint = path
        ckpt.prune(folder, self.config.keep_checkpoints)

    def _restore(self) -> None:
        """Resume from the newest checkpoint that reads and fits: rank 0 reads it, every process loads it."""
        p = self.processes
        checkpoint = p.together(self._restore_newest, writer_only=True)
        if not p.distributed:
            return
        shared = p.share_json(None if checkpoint is None else {"path": str(checkpoint.path), "step": checkpoint.step, "values": checkpoint.values})
        if shared is None:  # no checkpoint yet: every process starts from the beginning
            return
        tensors = p.share_tensors(checkpoint.tensors if p.is_writer else None)
        self.last_checkpoint = Path(shared["path"])
        if not p.is_writer:
            self.state.load(ckpt.Checkpoint(Path(shared["path"]), shared["step"], tensors, shared["values"]))

    def _restore_newest(self) -> ckpt.Checkpoint | None:
        """The newest checkpoint that reads and fits, loaded; a damaged one is reported and skipped."""
        folder = self.run_dir / CHECKPOINTS
        found = ckpt.list_checkpoints(folder)
        if not found:
            self.say(f"no checkpoint in {self.run_dir} yet: starting it from the beginning")
            truncate_metrics(self.run_dir / METRICS, 0)
            return None
        skipped: list[str] = []
        for path in reversed(found):
            try:
                checkpoint = ckpt.load_checkpoint(path)
                self.state.load(checkpoint)
            except GanctlError as exc:
                # a message for the user even with --quiet: the run goes back further than asked
                self.warn(f"{exc}; trying the checkpoint before it")
                skipped.append(path.name)
                continue
            self.last_checkpoint = path
            truncate_metrics(self.run_dir / METRICS, self.step)
            instead = f", instead of the damaged {', '.join(skipped)}" if skipped else ""
            (self.warn if skipped else self.say)(f"resuming {self.run_dir} from step {self.step} ({path.name}{instead})")
            saved, now = self.per_rank.saved_world, self.processes.world
            if saved is not None and saved != now:  # (even with --quiet: the run is no longer reproducible)
                self.warn(
                    f"the checkpoint was written by {saved} process(es) and this run has {now}: each process starts "
                    f"new random streams (augmentation, penalties, dropout), so the run continues, but not as it would have"
                )
            return checkpoint
        raise GanctlError(
            f"none of the {len(found)} checkpoint(s) in {folder} can be read ({', '.join(skipped)}); "
            "restore one, or move them away to start the run again from the beginning"
        )
