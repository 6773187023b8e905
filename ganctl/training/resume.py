"""Resuming a run: the newest checkpoint that reads and fits, loaded into the run's named state.

Rank 0 reads the checkpoint; under torchrun it shares the tensors and every process loads them.
A damaged checkpoint is reported (even with --quiet: the run goes back further than asked) and
the one before it is tried. Records written after the checkpoint are dropped from
metrics.jsonl, so the resumed run writes them again exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ganctl.distributed import PerRankParts, Processes
from ganctl.errors import GanctlError
from ganctl.runfolder.layout import RunFolder
from ganctl.runfolder.records import MetricsLog
from ganctl.training import checkpoint as ckpt


def restore(
    state: ckpt.NamedState,
    run_dir: Path,
    *,
    processes: Processes,
    per_rank: PerRankParts,
    current_step: Callable[[], int],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> Path | None:
    """Load the newest usable checkpoint into ``state``; its path, or None when the run has none yet."""
    p = processes
    checkpoint = p.together(lambda: _restore_newest(state, Path(run_dir), per_rank, current_step, say, warn, p.world), writer_only=True)
    if not p.distributed:
        return checkpoint.path if checkpoint is not None else None
    shared = p.share_json(None if checkpoint is None else {"path": str(checkpoint.path), "step": checkpoint.step, "values": checkpoint.values})
    if shared is None:  # no checkpoint yet: every process starts from the beginning
        return None
    tensors = p.share_tensors(checkpoint.tensors if p.is_writer else None)
    if not p.is_writer:
        state.load(ckpt.Checkpoint(Path(shared["path"]), shared["step"], tensors, shared["values"]))
    return Path(shared["path"])


def _restore_newest(state, run_dir: Path, per_rank, current_step, say, warn, world: int) -> ckpt.Checkpoint | None:
    folder = RunFolder(run_dir)
    metrics = MetricsLog(folder.metrics)
    found = folder.list_checkpoints()
    if not found:
        say(f"no checkpoint in {run_dir} yet: starting it from the beginning")
        metrics.truncate_after(0)
        return None
    skipped: list[str] = []
    for path in reversed(found):
        try:
            checkpoint = ckpt.load_checkpoint(path)
            state.load(checkpoint)
        except GanctlError as exc:
            warn(f"{exc}; trying the checkpoint before it")
            skipped.append(path.name)
            continue
        step = current_step()
        metrics.truncate_after(step)
        instead = f", instead of the damaged {', '.join(skipped)}" if skipped else ""
        (warn if skipped else say)(f"resuming {run_dir} from step {step} ({path.name}{instead})")
        saved = per_rank.saved_world
        if saved is not None and saved != world:  # (even with --quiet: the run is no longer reproducible)
            warn(
                f"the checkpoint was written by {saved} process(es) and this run has {world}: each process starts "
                f"new random streams (augmentation, penalties, dropout), so the run continues, but not as it would have"
            )
        return checkpoint
    raise GanctlError(
        f"none of the {len(found)} checkpoint(s) in {folder.checkpoints} can be read ({', '.join(skipped)}); "
        "restore one, or move them away to start the run again from the beginning"
    )
