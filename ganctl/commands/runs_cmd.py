"""``ganctl runs``: the run folders under the runs root, how far each got, and which is the latest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import OUTPUT_PANEL, handles_errors, out, print_json
from ganctl.commands.tables import dropped_note
from ganctl.errors import GanctlError


@handles_errors
def runs_command(
    root: Annotated[Optional[Path], typer.Option(help="Folder holding the runs (default: $GANCTL_RUNS_DIR, else ./runs).", metavar="DIR")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.", rich_help_panel=OUTPUT_PANEL)] = False,
) -> None:
    """List the runs: architecture, dataset, loss, steps done of planned, state, best FID, size, last change.

    Narrow terminals leave out, in this order: changed, size, at step, loss, dataset, arch, steps (--json has every field).

    State: finished (generator.safetensors written and every planned step done), running (a training holds the folder's lock) or interrupted. The latest run (runs/LATEST) is marked *; the runs of a study (`ganctl study`) a, b... as the notes below the table say.

    Example: ganctl runs --root runs/
    """
    from ganctl.runfolder import info as runinfo
    from ganctl.runfolder import layout

    if root is not None and root.exists() and not root.is_dir():
        raise GanctlError(f"{root} is a file, not a folder of runs")
    if root is not None and not root.exists():
        raise GanctlError(f"{root} does not exist")
    folder = root if root is not None else layout.runs_root()
    summaries = runinfo.list_runs(folder)
    if as_json:
        print_json([s.to_json() for s in summaries])
        return
    if not summaries:
        out.print(f"No runs under {folder}/; train one with `ganctl train`.", markup=False, soft_wrap=True)
        return
    marks = study_marks(summaries)
    table, dropped = _table(summaries, runinfo.human_size, marks)
    out.print(table)
    if dropped:
        out.print(dropped_note(dropped), markup=False, style="dim")
    if any(s.latest for s in summaries):
        out.print("* the latest run (runs/LATEST)", markup=False, style="dim")
    for study, mark in marks.items():
        out.print(f"{mark} a run of the study {study}", markup=False, style="dim", soft_wrap=True)


def study_marks(summaries) -> dict[str, str]:
    """A letter for each study the runs belong to (a, b, ...): a mark, not a column, keeps the table narrow."""
    names = sorted({s.study for s in summaries if s.study})
    return {name: chr(ord("a") + i) if i < 26 else str(i) for i, name in enumerate(names)}


# Left out first when the terminal is narrow; the mark, the run, its steps, state and best FID stay.
RUNS_DROP_ORDER = ("changed", "size", "at step", "loss", "dataset", "arch", "steps")


def _table(summaries, human_size, marks):
    from rich.text import Text

    from ganctl.commands.tables import Column, fitted_table

    state_style = {"finished": "green", "running": "bold cyan", "interrupted": "yellow", "unreadable": "red"}
    columns = [Column("", whole=True), Column("run", style="bold", whole=True), Column("arch"), Column("dataset"), Column("loss"),
               Column("steps", "right"), Column("state", whole=True), Column("best FID", "right", whole=True), Column("at step", "right"),
               Column("size", "right"), Column("changed", style="dim")]  # fmt: skip
    rows = []
    for s in summaries:
        planned = "?" if s.steps_planned is None else f"{'' if s.planned_exact else '≈'}{s.steps_planned:,}"
        # Text(...) cells: names come from the disk and are shown literally, never as markup
        rows.append([
            Text(("*" if s.latest else "") + marks.get(s.study or "", "")), Text(s.name), Text(s.arch or "?"), Text(s.dataset or "?"),
            Text(s.loss or "?"), Text(f"{s.steps_done:,}/{planned}"), Text(s.state, style=state_style.get(s.state, "")),
            Text("" if s.best_fid is None else f"{s.best_fid:.2f}"), Text("" if s.best_fid is None else f"{s.best_step:,}"),
            Text(human_size(s.size_bytes)), Text(time.strftime("%Y-%m-%d %H:%M", time.localtime(s.modified))),
        ])  # fmt: skip
    # a run's name is never cut (it is what the other commands take): columns go first, whole
    return fitted_table(out, columns, rows, RUNS_DROP_ORDER, box=None, expand=False, pad_edge=False, header_style="bold")
