"""``ganctl report``: one self-contained HTML page with a run's recipe, curves and sample grids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganctl.commands.common import OUTPUT_PANEL, ForceOption, QuietOption, err, handles_errors, out
from ganctl.errors import GanctlError

DEFAULT_NAME = "report.html"


@handles_errors
def report_command(
    run: Annotated[Optional[list[Path]], typer.Argument(help="Run folders (or run names under the runs root); several are compared. Default: the latest run.", metavar="RUN", show_default=False)] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="The HTML file (default: RUN/report.html; needed with several runs).", metavar="FILE", rich_help_panel=OUTPUT_PANEL)] = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write one HTML page about a run: recipe, loss and accuracy curves, FID/KID, health events, sample grids, generator files.

    The page is self-contained (images inlined, no script, no network): open it in any browser, mail it, archive it. A run still training or interrupted is shown as far as it got. With several runs the curves are overlaid, one colour per run, to compare recipes.

    Examples (one run; two compared):

    ganctl report runs/mnist-dcgan-20250101-120000

    ganctl report runs/a runs/b --out compare.html

    A study folder (`ganctl study --out DIR`) gets the study's page: its table of means and intervals, each variant's seeds, and the metric along the runs with a band over the seeds.
    """
    from ganctl.runfolder import report
    from ganctl.runfolder import info as runinfo

    report.require_matplotlib()
    from ganctl.outputs import check_output_file
    from ganctl.study.report import build_study_report, is_study_folder

    if run and len(run) == 1 and is_study_folder(run[0]):  # a study folder: its own page
        out_file = out_file or run[0] / DEFAULT_NAME
        check_output_file(out_file, force)
        _write(build_study_report(run[0]), out_file, quiet, f"the study {run[0]}")
        return
    folders = [runinfo.resolve_run(None)] if not run else [runinfo.resolve_run(p) for p in run]
    if out_file is None:
        if len(folders) > 1:
            raise GanctlError("with several runs, name the report file with --out FILE")
        out_file = folders[0] / DEFAULT_NAME
    check_output_file(out_file, force)  # before the plots are drawn: exists, a folder, unwritable
    what = f"{len(folders)} runs" if len(folders) > 1 else str(folders[0])
    _write(report.build_report(folders), out_file, quiet, what)


def _write(page, out_file: Path, quiet: bool, what: str) -> None:
    """The page, atomically; its notes on stderr."""
    from ganctl.runfolder import info as runinfo

    for note in page.notes:
        err.print(f"warning: {note}", markup=False, soft_wrap=True)
    from ganctl.fileio import atomic_write_bytes

    data = page.html.encode()
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_file, data)
    except OSError as exc:
        raise GanctlError(f"cannot write {out_file}: {exc.strerror or exc}") from None
    if not quiet:
        out.print(f"Wrote {out_file} ({runinfo.human_size(len(data))}) about {what}.", markup=False, soft_wrap=True)
