"""A study's result: each run's metric read through the run folder's owner, summarised per variant.

The metric of a run is the final value of a statistic ``metrics.jsonl`` logs (``g_loss``,
``d_loss_real``...), or of its evaluations (``fid``; ``kid`` is ``kid_mean``). Only finished
runs count: an interrupted run's last value is not the budget's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.study import stats
from ganctl.study.runner import KEEP, Task, action_of
from ganctl.study.spec import BUILT_IN_METRICS, Study, variant_name


def metric_value(run_dir: Path, metric: str) -> float:
    """The final value of ``metric`` in a run's ``metrics.jsonl``."""
    from ganctl.runfolder.layout import RunFolder
    from ganctl.runfolder.records import read_metrics

    records = read_metrics(RunFolder(run_dir).metrics)
    kind, key = BUILT_IN_METRICS.get(metric, ("train", metric))
    _, values = records.series(key, kind)
    if not values:
        logged = ", ".join(records.curve_keys()) or "nothing"
        hint = "; evaluations need --eval-every" if kind == "evals" else f"; it logs {logged}"
        raise GanctlError(f"{run_dir.name} logged no '{metric}'{hint}")
    return values[-1]


@dataclass
class VariantResult:
    name: str
    overrides: dict[str, Any]
    values: dict[int, float]  # seed -> the metric's final value (finished runs only)
    summary: stats.Summary | None  # None with fewer than two finished seeds
    difference: stats.Difference | None  # from the baseline; None for the baseline itself

    def to_json(self) -> dict[str, Any]:
        s, d = self.summary, self.difference
        return {
            "name": self.name, "overrides": self.overrides, "n": len(self.values),
            "mean": s.mean if s else None, "std": s.std if s else None, "ci95": list(s.ci95) if s else None,
            "seeds": sorted(self.values), "values": [self.values[k] for k in sorted(self.values)],
            "baseline": d is None,
            "difference": None if d is None else {"diff": d.diff, "ci95": list(d.ci95), "p_value": d.p_value, "resolved": d.resolved},
        }  # fmt: skip


@dataclass
class StudyResult:
    study: Study
    folder: Path
    variants: list[VariantResult]
    unfinished: list[str]  # run folders that did not count

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study.name, "folder": str(self.folder), "arch": self.study.arch, "metric": self.study.metric,
                "level": stats.LEVEL, "variants": [v.to_json() for v in self.variants], "unfinished": self.unfinished}  # fmt: skip


def collect(study: Study, folder: Path, tasks: list[Task], variants: list[dict[str, Any]]) -> StudyResult:
    """Each variant's values over its finished seeds, their summary and the difference from the first variant's."""
    values: dict[int, dict[int, float]] = {study.variants.index(v): {} for v in variants}
    unfinished = []
    for task in tasks:
        if action_of(task.path) == KEEP:
            values[task.variant][task.seed] = metric_value(task.path, study.metric)
        else:
            unfinished.append(task.path.name)
    results = []
    baseline: list[float] | None = None
    for index, overrides in enumerate(variants):
        seed_values = values[study.variants.index(overrides)]
        ordered = [seed_values[k] for k in sorted(seed_values)]
        summary = stats.summarize(ordered) if len(ordered) >= 2 else None
        difference = None
        if index == 0:
            baseline = ordered
        elif summary is not None and baseline is not None and len(baseline) >= 2:
            difference = stats.compare(ordered, baseline)
        results.append(VariantResult(variant_name(overrides), overrides, seed_values, summary, difference))
    return StudyResult(study, Path(folder), results, unfinished)


def _number(x: float) -> str:
    return f"{x:.4g}"


def table(result: StudyResult) -> Any:
    """The rich table: per variant n, mean, std, the 95% interval's half-width; the difference
    from the baseline with its own half-width, Welch's p and whether this many seeds resolve it."""
    from rich.table import Table
    from rich.text import Text

    title = Text(f"{result.study.metric}: mean over seeds ± 95% t interval; Δ from the first variant (Welch)")
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    table.add_column("variant", overflow="fold")
    for name in ("n", "mean", "std", "± 95%", "Δ ± 95%", "p", "resolved"):
        table.add_column(name, justify="left" if name == "resolved" else "right", no_wrap=True)
    for v in result.variants:
        s, d = v.summary, v.difference
        cells = [str(len(v.values)), "", "", "", "", "", ""]
        if s is not None:
            cells[1:4] = [_number(s.mean), f"{s.std:.3g}", f"± {(s.ci95[1] - s.ci95[0]) / 2:.3g}"]
        if v is result.variants[0]:
            cells[4] = "baseline"
        elif d is not None:
            cells[4:] = [f"{d.diff:+.3g} ± {d.half_width:.3g}", f"{d.p_value:.2g}", "yes" if d.resolved else "no"]
        table.add_row(Text(v.name, style="bold"), *(Text(c) for c in cells))
    return table
