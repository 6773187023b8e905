"""A study's page: ``ganctl report STUDY_FOLDER``.

One self-contained HTML page (as a run's report): the table of each variant's mean, 95%
interval and difference from the baseline; each variant's seeds with its mean and interval;
and the metric's curve along the runs, each variant's mean over its seeds with a band from the
lowest to the highest seed. Only finished runs count, as in ``ganctl study``'s own table.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.runfolder.layout import RunFolder
from ganctl.runfolder.records import read_metrics
from ganctl.runfolder.report import COLOURS, CSS, Report
from ganctl.runfolder.report_plots import Panel, Series, draw
from ganctl.study.spec import BUILT_IN_METRICS, STUDY_FILE, read_study


def is_study_folder(path: Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


def build_study_report(folder: Path) -> Report:
    from ganctl.study.plot import plot_png
    from ganctl.study.results import collect
    from ganctl.study.runner import KEEP, plan

    folder = Path(folder)
    study = read_study(folder)
    if study is None:
        raise GanctlError(f"{folder} is not a study folder (no {STUDY_FILE})")
    tasks = plan(study, folder, study.variants, study.seeds)
    finished = [t for t in tasks if t.action == KEEP]
    if not finished:
        raise GanctlError(f"{folder}: no run of the study has finished yet; nothing to report")
    result = collect(study, folder, tasks, study.variants)
    e = html.escape
    rows = []
    for v in result.variants:
        s, d = v.summary, v.difference
        mean = f"{s.mean:.4g}" if s else ""
        interval = f"[{s.ci95[0]:.4g}, {s.ci95[1]:.4g}]" if s else ""
        if v is result.variants[0]:
            diff = "baseline"
        else:
            diff = f"{d.diff:+.3g} ± {d.half_width:.3g} (p {d.p_value:.2g}, {'resolved' if d.resolved else 'not resolved'})" if d else ""
        rows.append(f"<tr><td>{e(v.name)}</td><td class='num'>{len(v.values)}</td><td class='num'>{mean}</td>"
                    f"<td class='num'>{interval}</td><td>{e(diff)}</td></tr>")  # fmt: skip
    curves = _curves_png(study, tasks, finished)
    notes = [f"not counted (not finished): {', '.join(result.unfinished)}"] if result.unfinished else []
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ganctl study {e(study.name)}</title><style>{CSS}</style></head><body>
<h1>Study {e(study.name)}</h1>
<p class="meta">{e(study.arch)}, {len(study.variants)} variant(s) × {study.seeds} seed(s), metric <code>{e(study.metric)}</code>
(its final value in each run); written by ganctl {e(__version__)}</p>
<h2>Means and intervals</h2>
<p class="quiet">Mean over the finished seeds with its 95% t interval; the difference from the first variant (the
baseline) with Welch's interval and p-value; "resolved" when that interval excludes 0.</p>
<table><tr><th>variant</th><th>n</th><th>mean</th><th>95% interval</th><th>difference from the baseline</th></tr>{''.join(rows)}</table>
{''.join(f'<p class="note">{e(n)}</p>' for n in notes)}
<figure class="plot"><img alt="each variant's seeds, mean and interval" src="{_uri(plot_png(result))}"></figure>
<h2>Along the runs</h2>
<p class="quiet">Each variant's mean over its finished seeds; the band spans the lowest and the highest seed.</p>
<figure class="plot"><img alt="the metric along the runs" src="{_uri(curves)}"></figure>
</body></html>
"""
    return Report(page, notes)


def _curves_png(study, tasks, finished) -> bytes:
    kind, key = BUILT_IN_METRICS.get(study.metric, ("train", study.metric))
    series, bands = [], []
    for index, overrides in enumerate(study.variants):
        runs = [read_metrics(RunFolder(t.path).metrics).series(key, kind) for t in finished if t.variant == index]
        runs = [dict(zip(steps, values)) for steps, values in runs if steps]
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(r) for r in runs)))  # the steps every seed logged
        values = [[r[s] for r in runs] for s in steps]
        colour = COLOURS[index % len(COLOURS)]
        from ganctl.study.spec import variant_name

        series.append(Series(variant_name(overrides), colour, steps, [sum(v) / len(v) for v in values]))
        bands.append((steps, [min(v) for v in values], [max(v) for v in values], colour))
    return draw([Panel(f"{study.metric} along the runs", study.metric, series, bands=bands)], [], smooth=False)


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
