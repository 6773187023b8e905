"""The report's plots: panels of curves drawn to one PNG with matplotlib (no pyplot, no GUI).

TensorBoard-style smoothing for long training curves; evaluations as dots with the best one
starred; health events as dashed vertical lines.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

# Values are drawn within ±PLOT_LIMIT: matplotlib cannot lay out an axis that spans ±1.7e308 (the
# span overflows), and a diverged run's losses reach that far. Beyond it a value is drawn at the limit.
PLOT_LIMIT = 1e100
LABEL_CHARS = 60  # a label longer than this (a statistic's name, an event's kind) is cut, with "…"


def plain_text(text: object) -> str:
    """Text for matplotlib as it is: ``$`` would start mathtext (and fail on ``$\\frac$``); cut long."""
    text = str(text)
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1] + "…"
    return text.replace("$", r"\$")


def clipped(values: list[float]) -> list[float]:
    return [min(max(v, -PLOT_LIMIT), PLOT_LIMIT) for v in values]


@dataclass
class Series:
    label: str
    colour: str
    steps: list[int]
    values: list[float]


@dataclass
class Panel:
    title: str
    ylabel: str
    series: list[Series]
    markers: bool = False  # few points (evaluations): dots on the line
    best: list[tuple[int, float, str, str]] = field(default_factory=list)  # step, value, label, colour
    bands: list[tuple[list[int], list[float], list[float], str]] = field(default_factory=list)


def smoothing_weight(n: int) -> float:
    """EMA weight for a curve of n records: none below 30 (every point matters), then up to 0.9.

    The smoothed curve lags the raw one by about weight / (1 - weight) records: 3 of 100, 9 of 1,000.
    """
    return 0.0 if n < 30 else round(min(0.9, 1 - 25 / n), 2)


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0."""
    smoothed, last = [], 0.0
    for i, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**i) if weight else value)
    return smoothed


def draw(panels: list[Panel], events: list[tuple[int, str, str]], smooth: bool) -> bytes:
    """A PNG of the panels, two to a row; events as dashed vertical lines with their names."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.ticker import FuncFormatter

    columns = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(10.5 if columns == 2 else 9, 3.4 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        labelled: set[str] = set()
        for steps, low, high, colour in panel.bands:
            ax.fill_between(steps, clipped(low), clipped(high), color=colour, alpha=0.15, linewidth=0)
        for s in panel.series:
            if not s.steps:
                continue
            weight = smoothing_weight(len(s.values)) if smooth else 0.0
            values, label = clipped(s.values), plain_text(s.label)
            if weight:
                ax.plot(s.steps, values, color=s.colour, alpha=0.25, linewidth=0.8)
                ax.plot(s.steps, ema(values, weight), color=s.colour, linewidth=1.6, label=label)
            else:
                ax.plot(s.steps, values, color=s.colour, linewidth=1.4, label=label,
                        marker="o" if panel.markers or len(s.steps) < 10 else None, markersize=3.5)  # fmt: skip
        for i, (step, value, label, colour) in enumerate(panel.best):
            (value,) = clipped([value])
            ax.plot([step], [value], marker="*", markersize=15, color=colour, markeredgecolor="black", zorder=5)
            ax.annotate(plain_text(label), (step, value), textcoords="offset points", xytext=(-10, 10 + 24 * i), ha="right",
                        fontsize=8, color=colour)  # fmt: skip
        for n, (step, kind, colour) in enumerate(sorted(events)):
            ax.axvline(step, color=colour, linestyle="--", linewidth=0.9, alpha=0.8)
            if n < 12 or kind not in labelled:  # past a dozen, each kind named once
                ax.text(step, 0.98, f" {plain_text(kind)}", transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="left",
                        fontsize=7, color=colour)  # fmt: skip
                labelled.add(kind)
        ax.set_title(plain_text(panel.title), fontsize=10)
        ax.set_ylabel(plain_text(panel.ylabel), fontsize=9)
        ax.set_xlabel("step", fontsize=9)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.tick_params(labelsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)  # a flat curve reads 0.6, not 1e-12 + 6e-1
        ax.grid(alpha=0.3)
        if any(s.steps for s in panel.series):
            ax.legend(fontsize=8, loc="best", frameon=False)
        else:
            ax.text(0.5, 0.5, "no records", transform=ax.transAxes, ha="center", color="#888")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
