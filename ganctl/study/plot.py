"""The study's plot: each variant's seeds as dots, its mean with the 95% interval (matplotlib, no pyplot)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_bytes
from ganctl.study.results import StudyResult


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise GanctlError("ganctl study --plot needs matplotlib: pip install 'ganctl[report]'")


def plot_path(folder: Path, metric: str) -> Path:
    return Path(folder) / f"study-{metric}.png"


def write_plot(result: StudyResult) -> Path:
    """study-<metric>.png in the study folder (rewritten each time: it is the study's own file)."""
    path = plot_path(result.folder, result.study.metric)
    try:
        atomic_write_bytes(path, plot_png(result))
    except OSError as exc:
        raise GanctlError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def plot_png(result: StudyResult) -> bytes:
    """Each variant's seeds as dots and its mean with the 95% interval, as PNG bytes."""
    from matplotlib.figure import Figure

    variants = result.variants
    figure = Figure(figsize=(max(4.0, 1.6 * len(variants) + 1.5), 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for x, v in enumerate(variants):
        seeds = sorted(v.values)
        axes.scatter([x + 0.12] * len(seeds), [v.values[k] for k in seeds], s=14, color="0.55", zorder=2,
                     label="a seed" if x == 0 else None)  # fmt: skip
        if v.summary is not None:
            s = v.summary
            axes.errorbar([x - 0.05], [s.mean], yerr=[[s.mean - s.ci95[0]], [s.ci95[1] - s.mean]], fmt="o",
                          color="tab:red" if x == 0 else "tab:blue", capsize=5, zorder=3,
                          label="mean ± 95% (baseline)" if x == 0 else ("mean ± 95%" if x == 1 else None))  # fmt: skip
    axes.set_xticks(range(len(variants)), [v.name for v in variants], rotation=20 if len(variants) > 3 else 0, fontsize=8)
    axes.set_ylabel(result.study.metric)
    axes.set_title(f"{result.study.name}: {result.study.metric} over seeds", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
