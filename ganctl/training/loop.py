"""A training run, top to bottom.

``Trainer(config, resume=...).run()`` sets up the run folder, the data on the device, the
networks and optimisers (or restores them from the newest checkpoint), then iterates:

    every step           one TrainStep (no host sync), statistics summed on the device
    every log_every      statistics read back once, checked, written to metrics.jsonl
    every sample_every   a grid of the fixed latents, progress.gif, a generator snapshot (epochs)
    every eval_every     FID and KID into metrics.jsonl; the best generator as best.safetensors
    every checkpoint     the whole state, atomically; the oldest beyond keep_checkpoints deleted
    at the end           final grid, generator.safetensors, a last checkpoint

On the CPU with a fixed seed, a run that is interrupted (Ctrl-C, kill -9) and resumed ends
with the same generator, bit for bit, as the run without the interruption: every random
generator's state is in the checkpoint, and nothing outside the step draws from them.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganctl import __version__, runs
from ganctl.device import resolve_device
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes, atomic_write_json
from ganctl.images import grid, save_animation, save_png, to_pil, to_uint8
from ganctl.registry import ARCHITECTURES, LOSSES
from ganctl.training import checkpoint as ckpt
from ganctl.training.batches import RealBatches
from ganctl.training.config import TrainConfig, check, iterations_per_epoch, real_per_step
from ganctl.training.health import CollapseWatch, DiversityWatch, check_finite, sample_spread
from ganctl.training.step import STAT_NAMES, TrainStep
from ganctl.weights import save_generator


class TrainingInterrupted(GanctlError):
    exit_code = 130


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        say: Callable[[str], None] = print,
        progress: Any = None,
    ) -> None:
        check(config)
        self.config = config
        self.recipe = config.recipe
        self.resume = resume
        self.say = say  # one line of news for the user
        self.progress = progress  # a ganctl.commands.train.ProgressView, or None
        self.run_dir = Path(config.run_dir)
        self._interrupted = False
        self.last_checkpoint: Path | None = None

    # ------------------------------------------------------------------------------------
    def run(self) -> Path:
        # Everything that can be wrong with the request is found before the run folder is made.
        self._load_data()
        self._prepare_run_dir()
        with self._lock():
            self._setup()
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_interrupt)
            signal.signal(signal.SIGTERM, self._on_interrupt)
            try:
                self._loop()
            finally:
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return self.run_dir

    def _on_interrupt(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        self._interrupted = True

    # --- set-up ---------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        config_file = self.run_dir / runs.CONFIG
        if not self.resume and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise GanctlError(
                f"{self.run_dir} already holds files; continue it with --resume or choose another --out"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # config.json first: once the folder holds anything, it can be resumed
            if not config_file.exists():
                atomic_write_json(config_file, {"ganctl_version": __version__, **self.config.to_dict()})
            for sub in (runs.CHECKPOINTS, runs.SAMPLES, runs.SNAPSHOTS):
                (self.run_dir / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise GanctlError(f"cannot write to {self.run_dir}: {exc.strerror}") from None
        for stale in self.run_dir.rglob(".*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        runs.set_latest(self.run_dir)

    def _lock(self):
        """An exclusive lock on the run folder; the kernel drops it if the process dies."""
        trainer = self

        class _Lock:
            def __enter__(self):
                self.fd = os.open(trainer.run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(self.fd)
                    raise GanctlError(f"another training is already running in {trainer.run_dir}") from None
                os.ftruncate(self.fd, 0)
                os.write(self.fd, f"{os.getpid()}\n".encode())

            def __exit__(self, *exc):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)

        return _Lock()

    def _load_data(self) -> None:
        """Check the names and load the training images (not yet onto the device)."""
        from ganctl.data import load_images

        c, r = self.config, self.recipe
        self.device = resolve_device(c.device)
        self.arch = ARCHITECTURES.get(c.arch).obj
        self.arch_args = self.arch.arch_args(r.image_size, r.channels, r.latent_dim)
        self.arch.check(**self.arch_args)
        self.loss_class = LOSSES.get(r.loss).obj
        self.images = load_images(
            r.dataset,
            data_dir=Path(c.data_dir) if c.data_dir else None,
            split="train",
            image_size=r.image_size,
            channels=r.channels,
            download=c.download,
            limit=c.dataset_limit,
            log=self.say,
        )
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
                download=c.download, device=self.device, say=self.say,
            )  # fmt: skip
        self.last_eval_step = -1

    def _setup(self) -> None:
        c, r = self.config, self.recipe
        arch, loss_class = self.arch, self.loss_class
        torch.manual_seed(c.seed)  # initialisation and dropout draw from the global generator
        generator, discriminator = arch.build(**self.arch_args)
        layout = torch.channels_last if c.channels_last else torch.contiguous_format
        self.G = generator.to(self.device, memory_format=layout)
        self.D = discriminator.to(self.device, memory_format=layout)
        fused = self.device.type == "cuda"  # one kernel for the whole Adam update
        adam = lambda params, lr: torch.optim.Adam(  # noqa: E731
            params, lr=lr, betas=(r.beta1, r.beta2), eps=r.adam_eps, fused=fused or None
        )
        self.g_opt, self.d_opt = adam(self.G.parameters(), r.g_lr), adam(self.D.parameters(), r.d_lr)

        self.real = RealBatches(
            self.images.contiguous(memory_format=layout), batch=real_per_step(r), sampling=r.sampling, pixel_range=r.pixel_range,
            device=self.device, seed=c.seed + 1,
        )
        self.latent_rng = torch.Generator(device=self.device)
        self.latent_rng.manual_seed(c.seed + 2)
        fixed = torch.Generator().manual_seed(c.seed + 3)  # on the CPU: the same grid on any device
        self.fixed_z = torch.randn(r.sample_grid, r.latent_dim, generator=fixed).to(self.device)
        # Compiled wrappers share the parameters; state is always read from the plain modules.
        g_forward = torch.compile(self.G) if c.compile else self.G
        d_forward = torch.compile(self.D) if c.compile else self.D
        self.step_fn = TrainStep(
            g_forward, d_forward, self.g_opt, self.d_opt, loss_class(real_target=1.0 - r.label_smoothing),
            r, self.real, self.latent_rng, self.device, c.amp,
        )
        del self.images  # now on the device, inside self.real
        self.stats_sum = torch.zeros(len(STAT_NAMES), device=self.device)
        self.stats_count = 0
        self.step = 0
        self.collapse = CollapseWatch()
        self.diversity = DiversityWatch()
        if self.resume:
            self._restore()
        else:
            (self.run_dir / runs.METRICS).touch()

    # --- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        c = self.config
        if self.progress:
            self.progress.start(self.total_steps, self.step, self.steps_per_epoch)
        self._clock = (time.perf_counter(), self.step)
        while self.step < self.total_steps:
            self.stats_sum += self.step_fn()
            self.stats_count += 1
            self.step += 1
            if self.progress:
                self.progress.advance(self.step)
            if self.step % c.log_every == 0:
                self._log()
            if self.step % self.steps_per_epoch == 0:
                epoch = self.step // self.steps_per_epoch
                if epoch % self.recipe.sample_every == 0:
                    self._samples(f"epoch-{epoch:04d}")
                if self.evaluation and epoch % c.eval_every == 0:
                    self._evaluate()
            if self.step % self.checkpoint_every == 0:
                self._checkpoint()
            if self._interrupted:
                self._checkpoint()
                raise TrainingInterrupted(
                    f"interrupted at step {self.step}; checkpoint saved; continue with "
                    f"`ganctl train --resume --out {self.run_dir}`"
                )
        self._finish()

    def _finish(self) -> None:
        if self.stats_count:
            self._log()
        epoch_end = self.step % self.steps_per_epoch == 0
        epoch = self.step // self.steps_per_epoch
        if not (epoch_end and epoch % self.recipe.sample_every == 0):
            self._samples("final")  # the last grid, unless the epoch's grid is it already
        evaluated = False
        if self.evaluation and self.last_eval_step != self.step:
            self._evaluate()  # the final generator gets its figures too
            evaluated = True
        self._save_generator(self.run_dir / runs.FINAL_GENERATOR)
        # (again if the step's checkpoint predates the evaluation: it records the best FID)
        if evaluated or self.last_checkpoint != ckpt.checkpoint_path(self.run_dir / runs.CHECKPOINTS, self.step):
            self._checkpoint()
        if self.progress:
            self.progress.stop()
        self.say(f"done: {self.step} iterations; generator in {self.run_dir / runs.FINAL_GENERATOR}")

    # --- logging and health ---------------------------------------------------------------
    def _log(self) -> None:
        values = (self.stats_sum / self.stats_count).tolist()  # the one host sync per interval
        now, then = time.perf_counter(), self._clock
        steps = self.step - then[1]
        stats = dict(zip(STAT_NAMES, values))
        check_finite(stats, self.step, str(self.last_checkpoint) if self.last_checkpoint else None)
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            **{k: round(v, 6) for k, v in stats.items()},
            "images_per_s": round(steps * self.recipe.batch_size / max(now - then[0], 1e-9), 1),
        }
        self._append_metrics(record)
        self.stats_sum.zero_()
        self.stats_count = 0
        self._clock = (now, self.step)
        if self.progress:
            self.progress.show(record)
        d_loss = 0.5 * (stats["d_loss_real"] + stats["d_loss_fake"])
        if self.collapse.update(d_loss):
            self._event(
                "d_collapse",
                f"discriminator loss has stayed below {self.collapse.threshold} for {self.collapse.window} "
                f"log intervals (now {d_loss:.4f}): the generator may be producing rubbish (seed 002's warning sign)",
            )

    def _event(self, kind: str, message: str) -> None:
        self._append_metrics({"step": self.step, "event": kind, "message": message})
        self.say(f"warning: {message}")

    def _append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / runs.METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    # --- samples, snapshots, checkpoints --------------------------------------------------
    @torch.no_grad()
    def _samples(self, tag: str) -> None:
        low_high = self.recipe.pixel_range
        self.G.eval()  # batch norm from its running statistics; no random state is touched
        images = self.G(self.fixed_z).float()
        self.G.train()
        png = to_pil(grid(to_uint8(images, low_high)))
        save_png(png, self.run_dir / runs.SAMPLES / f"{tag}.png")
        frames = sorted((self.run_dir / runs.SAMPLES).glob("epoch-*.png"))
        if (self.run_dir / runs.SAMPLES / "final.png").exists():
            frames.append(self.run_dir / runs.SAMPLES / "final.png")
        from PIL import Image

        save_animation([Image.open(p).convert("RGB") for p in frames], self.run_dir / "progress.gif", fps=2)
        if tag != "final":
            self._save_generator(self.run_dir / runs.SNAPSHOTS / f"generator-{tag}.safetensors")
        spread = sample_spread(images, low_high)
        if self.diversity.update(spread):
            self._event(
                "low_diversity",
                f"generated samples have stopped varying (spread {spread:.3f}, at best {self.diversity.peak:.3f}): "
                "mode collapse?",
            )

    def _evaluate(self) -> None:
        """FID/KID of the generator now into metrics.jsonl; keep it as best.safetensors if it is the best yet."""
        started = time.perf_counter()
        result = self.evaluation.measure(self.G, self.recipe.pixel_range, self.recipe.latent_dim)
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
                self.run_dir / runs.BEST_GENERATOR,
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

    def _save_generator(self, path: Path, **extra: Any) -> None:
        save_generator(
            path,
            self.G,
            architecture=self.config.arch,
            arch_args=self.arch_args,
            pixel_range=self.recipe.pixel_range,
            extra={
                "step": self.step,
                "epoch": round(self.step / self.steps_per_epoch, 4),
                "dataset": self.recipe.dataset,
                "loss": self.recipe.loss,
                "run": self.run_dir.name,
                **extra,
            },
        )

    def _checkpoint(self) -> None:
        if self.stats_count:  # never save a state whose losses went non-finite
            values = (self.stats_sum / self.stats_count).tolist()
            check_finite(dict(zip(STAT_NAMES, values)), self.step, str(self.last_checkpoint) if self.last_checkpoint else None)
        folder = self.run_dir / runs.CHECKPOINTS
        path = ckpt.checkpoint_path(folder, self.step)
        extra = {f"real/{k}": v for k, v in self.real.state().items()}
        extra.update(
            {
                "rng/latent": self.latent_rng.get_state(),
                "rng/torch": torch.get_rng_state(),
                "fixed_z": self.fixed_z,
                "stats/sum": self.stats_sum,
            }
        )
        if self.device.type == "cuda":
            extra["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "stats_count": self.stats_count,
            "collapse_run": self.collapse._run,
            "collapse_reported": self.collapse.reported,
            "spread_peak": self.diversity.peak,
            "best_fid": self.evaluation.best_fid if self.evaluation else None,
            "last_eval_step": self.last_eval_step,
        }
        ckpt.save_checkpoint(
            path, generator=self.G, discriminator=self.D, g_optimizer=self.g_opt, d_optimizer=self.d_opt,
            extra_tensors=extra, meta=meta,
        )
        self.last_checkpoint = path
        ckpt.prune(folder, self.config.keep_checkpoints)

    def _restore(self) -> None:
        found = ckpt.list_checkpoints(self.run_dir / runs.CHECKPOINTS)
        if not found:
            self.say(f"no checkpoint in {self.run_dir} yet: starting it from the beginning")
            self._truncate_metrics(0)
            return
        state = ckpt.load_checkpoint(found[-1])
        ckpt.restore_networks(state, self.G, self.D, self.g_opt, self.d_opt)
        self.real.load_state(state.group("real"))
        self.latent_rng.set_state(state.tensors["rng/latent"])
        torch.set_rng_state(state.tensors["rng/torch"])
        if "rng/cuda" in state.tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.tensors["rng/cuda"], self.device)
        self.fixed_z = state.tensors["fixed_z"].to(self.device)
        self.stats_sum = state.tensors["stats/sum"].to(self.device)
        self.stats_count = state.meta["stats_count"]
        self.collapse._run = state.meta["collapse_run"]
        self.collapse.reported = state.meta["collapse_reported"]
        self.diversity.peak = state.meta["spread_peak"]
        if self.evaluation and state.meta.get("best_fid") is not None:
            self.evaluation.best_fid = state.meta["best_fid"]
        self.last_eval_step = state.meta.get("last_eval_step", -1)
        self.step = state.meta["step"]
        self.last_checkpoint = found[-1]
        self._truncate_metrics(self.step)
        self.say(f"resuming {self.run_dir} from step {self.step} ({found[-1].name})")

    def _truncate_metrics(self, step: int) -> None:
        """Drop records written after the checkpoint we resume from (and a torn last line)."""
        path = self.run_dir / runs.METRICS
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("step", math.inf) <= step:
                    kept.append(line)
        atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())
