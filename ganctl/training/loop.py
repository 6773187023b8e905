"""A training run, top to bottom: the step, then the periodic events that are due.

``Trainer(config, resume=...).run()``:

1. ``loading.load_inputs``: the request checked and the images loaded, before anything is written;
2. ``writer.open_run_folder``: the run folder made, locked, its config.json written (rank 0);
3. ``assembly.assemble``: networks, optimisers, streams, EMA, the step (as ``ganctl bench`` builds it);
4. the checkpoint's table (``checkpoint.NamedState``): progress, the run's parts, each event's
   state; on resume, ``resume.restore`` loads the newest usable checkpoint into it;
5. the loop: one ``TrainStep`` per iteration, the LR schedules, then each event that is due
   (``events``: log, grid and snapshot, evaluation, checkpoint); at the end each event's
   ``finish`` (the last log, the final grid and evaluation, the generator files, a checkpoint).

On the CPU with a fixed seed, a run that is interrupted (Ctrl-C, kill -9) and resumed ends
with the same generator, bit for bit, as the run without the interruption: every random
generator's state is in the checkpoint, and nothing outside the step draws from them.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganctl import __version__, distributed
from ganctl.errors import GanctlError
from ganctl.training.assembly import RunParts, assemble
from ganctl.training.config import TrainConfig, check
from ganctl.training.events import CheckpointEvent, EvalEvent, Event, GridEvent, Health, LogEvent, RunContext
from ganctl.training.finetune import init_from
from ganctl.training.loading import RunInputs, load_inputs
from ganctl.training.resume import restore
from ganctl.training.writer import SilentWriter, open_run_folder


class TrainingInterrupted(GanctlError):
    """Ctrl-C or SIGTERM: the run stopped at a checkpoint, as asked (news, not an error)."""

    exit_code = 130
    is_error = False


def finished_already(config: TrainConfig, run_dir: Path, step: int) -> str:
    """What resuming a finished run says: that it was finished, and how to train it longer."""
    epochs = config.recipe.epochs
    how = f"a larger --epochs (it has {epochs}), e.g. `ganctl train --resume --out {run_dir} --epochs {2 * epochs}`"
    if config.max_steps is not None and config.max_steps <= step:
        how = f"a larger --max-steps (it has {config.max_steps}) or --epochs, e.g. `ganctl train --resume --out {run_dir} --max-steps {2 * step}`"
    return f"{run_dir} had already finished its {step} iterations; nothing to train. To train it longer, resume with {how}"


class FinalFiles(Event):
    """At the end: generator.safetensors (and generator-raw.safetensors beside an EMA), progress.gif."""

    def finish(self) -> None:
        folder = self.ctx.folder
        self.ctx.save_generator(folder.final_generator)
        if self.ctx.parts.ema is not None:
            self.ctx.save_generator(folder.raw_generator, raw=True)
        self.ctx.writer.animation()


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
        self.config, self.resume = config, resume
        self.say = say  # one line of news for the user
        # what the user must see even with --quiet (a resume from an older checkpoint than asked)
        self.warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
        self.view = progress  # a ganctl.commands.train.ProgressView, or None
        self.run_dir = Path(config.run_dir)
        # under torchrun: this process's place among the run's processes (one process: rank 0 of 1)
        self.processes = distributed.current()
        self._interrupted = False

    def run(self) -> Path:
        c, p = self.config, self.processes
        # Everything that can be wrong with the request is found before the run folder is made
        # (under torchrun, a refusal on any process stops them all).
        inputs = p.together(lambda: load_inputs(c, p, self.say))
        facts = inputs.facts(c)  # for the start lines, counted before the images move on
        parts = p.together(lambda: self._assemble(inputs))
        with contextlib.ExitStack() as held:
            manifest = inputs.manifest(c, p)
            del inputs.data  # the images are in the sampler now (on the device unless streamed)
            writer = p.together(lambda: open_run_folder(c, manifest, resume=self.resume, held=held), writer_only=True)
            ctx = RunContext(c, parts, writer or SilentWriter(self.run_dir), self.say, self.view)
            events = self._events(ctx, inputs.evaluation)
            self._start(ctx, events)
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_interrupt)
            signal.signal(signal.SIGTERM, self._on_interrupt)
            try:
                self._loop(ctx, events, facts)
            finally:
                ctx.writer.close()
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return self.run_dir

    def _assemble(self, inputs: RunInputs) -> RunParts:
        """The run's parts, and a fine-tuned run's starting weights: still before anything is written."""
        c = self.config
        parts = assemble(c.arch, c.recipe, inputs.data, inputs.hardware, seed=c.seed, max_steps=c.max_steps,
                         processes=self.processes, say=self.say)  # fmt: skip
        if c.init_from and not self.resume:  # (a resumed run restores its own checkpoint)
            self.say(f"fine-tuning: {init_from(parts, c.init_from, c.arch)}")
        return parts

    def _events(self, ctx: RunContext, evaluation: Any) -> list[Event]:
        """The periodic work in the order it runs after a step (and finishes at the end)."""
        self.health = Health(ctx)
        self.checkpoints = CheckpointEvent(ctx)
        evaluations = [EvalEvent(ctx, evaluation)] if evaluation is not None else []
        return [LogEvent(ctx, self.health), GridEvent(ctx, self.health), *evaluations, FinalFiles(ctx), self.checkpoints]

    def _start(self, ctx: RunContext, events: list[Event]) -> None:
        """The checkpoint's table, then a resume from it (or a fresh metrics file), then TensorBoard."""
        state = ctx.state
        state.add("progress", ctx.progress.save, ctx.progress.load)
        ctx.parts.add_state(state, current_step=lambda: ctx.progress.step)
        self.health.add_state(state)
        for event in events:
            event.add_state(state)
        if self.resume:
            ctx.last_checkpoint = restore(
                state, self.run_dir, processes=self.processes, per_rank=ctx.parts.per_rank,
                current_step=lambda: ctx.progress.step, say=self.say, warn=self.warn,
            )  # fmt: skip
            if ctx.last_checkpoint is not None:
                self.checkpoints.restored()
        else:
            ctx.writer.start_metrics()
        if self.config.tensorboard:
            # on resume, TensorBoard hides what the interrupted session wrote after the checkpoint
            ctx.writer.open_tensorboard(
                purge_step=ctx.step + 1 if self.resume else None, config={"ganctl_version": __version__, **self.config.to_dict()}
            )

    def _on_interrupt(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        self._interrupted = True

    def _loop(self, ctx: RunContext, events: list[Event], facts: Any = None) -> None:
        parts, progress = ctx.parts, ctx.progress
        total_steps = parts.schedule.total_steps
        already_finished = self.resume and progress.step >= total_steps
        if self.view and not already_finished:
            self.view.start(total_steps, progress.step, parts.schedule.steps_per_epoch, facts)
        ctx.clock.restart(progress.step)
        while progress.step < total_steps:
            parts.step(progress.step)
            for schedule in parts.schedules:
                schedule.step()
            progress.step += 1
            if self.view:
                self.view.advance(progress.step)
            for event in events:
                if event.due():
                    event()
            if self._stop_requested(ctx):
                self.checkpoints()
                ctx.writer.animation()
                interrupted = TrainingInterrupted(
                    f"stopped at step {progress.step}; checkpoint saved; continue with "
                    f"`ganctl train --resume --out {self.run_dir}`"
                )
                interrupted.quiet = not ctx.writer.writes  # (under torchrun: rank 0 says it once)
                raise interrupted
        for event in events:
            event.finish()
        if self.view:
            self.view.stop()
        if already_finished:  # said even with --quiet (kept from the first run): nothing was trained
            if ctx.writer.writes:
                self.warn(finished_already(self.config, self.run_dir, progress.step))
        else:
            self.say(f"done: {progress.step} iterations; generator in {ctx.folder.final_generator}")

    def _stop_requested(self, ctx: RunContext) -> bool:
        """Ctrl-C or SIGTERM; under torchrun the processes agree at each log interval, so all stop at one step."""
        if not self.processes.distributed:
            return self._interrupted
        return ctx.step % self.config.log_every == 0 and self.processes.any_rank(self._interrupted)
