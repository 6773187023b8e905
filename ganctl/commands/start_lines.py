"""The few lines ``ganctl train`` prints before its first step.

What is trained and how (the architecture, and what was changed from its recipe), on what
data, where, for how long, into which folder, and how to stop and continue. Every resolved
setting is in the run's config.json; ``--verbose`` and ``--dry-run`` print them all.
"""

from __future__ import annotations

from typing import Any

MAX_CHANGES_SHOWN = 6  # recipe values named on the first line; the rest are "and N more"


def recipe_changes(config: Any) -> list[str]:
    """The options that changed the architecture's recipe, as the command line spells them."""
    from ganctl.options import BY_FIELD
    from ganctl.registry import ARCHITECTURES

    own = ARCHITECTURES.get(config.arch).obj.recipe.to_dict()
    changes = []
    for field, value in config.recipe.to_dict().items():
        if field in own and own[field] != value:
            option = BY_FIELD.get(("recipe", field))
            label = option.label if option is not None and option.flags else field
            changes.append(f"{label} {_short(value)}")
    return changes


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def start_lines(config: Any, facts: Any, *, resume: bool = False) -> list[str]:
    """The start of a run in 5-6 lines (``facts``: ``training.loading.StartFacts``; None: unknown)."""
    r = config.recipe
    changes = recipe_changes(config)
    shown = ", ".join(changes[:MAX_CHANGES_SHOWN]) + (f" and {len(changes) - MAX_CHANGES_SHOWN} more" if len(changes) > MAX_CHANGES_SHOWN else "")
    lines = [f"{'Resuming' if resume else 'Training'} {config.arch}: {r.loss} loss, batch {r.batch_size}, "
             + (f"its recipe with {shown}" if changes else "its own recipe")]  # fmt: skip
    if facts is None:
        lines.append(f"Data: {r.dataset}")
    else:
        classes = f", {facts.classes} classes (conditional)" if facts.classes else ""
        lines.append(f"Data: {r.dataset}, {facts.images:,} images at {r.image_size} px{classes}")
        precision = "bf16 autocast" if facts.bf16 else "float32"
        lines.append(f"Device: {facts.device}, {precision}")
        epochs = facts.total_steps / max(1, facts.steps_per_epoch)
        length = f"{facts.total_steps:,} iterations ({epochs:.3g} epoch{'' if epochs == 1 else 's'} of {facts.steps_per_epoch:,})"
        lines.append(f"Length: {length}; speed and time left on the progress line")
    lines.append(f"Run folder: {config.run_dir} (every setting in its config.json)")
    lines.append(f"Stop with Ctrl-C (a checkpoint is saved); continue with `ganctl train --resume --out {config.run_dir}`")
    return lines


def print_start(config: Any, facts: Any, *, resume: bool = False) -> None:
    from ganctl.commands.common import out

    for line in start_lines(config, facts, resume=resume):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
