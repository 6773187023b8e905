"""Tables that fit the terminal: columns are left out whole, in a stated order, never cut.

Each command names the columns it may drop, least useful first; the run's name, its state
and the command's main figure are never in that list. When a column is left out, one dim line
under the table names it and points to ``--json``, which always holds everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    title: str
    justify: str = "left"
    no_wrap: bool = True
    style: str | None = None
    whole: bool = False  # never shortened, however narrow the terminal (the run's name, its state)


def _build(columns: Sequence[Column], rows: Sequence[Sequence[Any]], keep: Sequence[int], **table_options: Any):
    from rich.table import Table

    table = Table(**table_options)
    for i in keep:
        c = columns[i]
        least = _natural_width(c.title, [row[i] for row in rows]) if c.whole else None
        table.add_column(c.title, justify=c.justify, no_wrap=c.no_wrap, style=c.style, min_width=least)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def fitted_table(
    console: Any,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    drop_order: Sequence[str],
    **table_options: Any,
) -> tuple[Any, list[str]]:
    """(a rich Table as wide as its content allows within ``console.width``, the titles left out).

    Columns named in ``drop_order`` are left out one at a time, first to last, until the
    table's natural width fits; a column that may wrap (``no_wrap=False``) wraps instead.
    """
    from rich.measure import Measurement

    titles = [c.title for c in columns]
    keep = list(range(len(columns)))
    dropped: list[str] = []
    pending = [t for t in drop_order if t in titles]
    while True:
        table = _build(columns, rows, keep, **table_options)
        natural = [_natural_width(columns[i].title, [row[i] for row in rows]) for i in keep]
        unbounded = console.options.update(max_width=1_000_000)
        borders = Measurement.get(console, unbounded, table).maximum - sum(natural)
        # a column that may wrap needs only a readable width; the others need their whole width
        needed = borders + sum(w if columns[i].no_wrap else min(w, WRAPPED_WIDTH) for i, w in zip(keep, natural))
        if needed <= console.width or not pending:
            return table, dropped
        title = pending.pop(0)
        keep.remove(titles.index(title))
        dropped.append(title)


WRAPPED_WIDTH = 40  # a wrapping column (a description) keeps this many columns before others are left out


def _natural_width(title: str, cells: Sequence[Any]) -> int:
    from rich.cells import cell_len

    texts = [title, *(getattr(cell, "plain", str(cell)) for cell in cells)]
    return max(cell_len(line) for text in texts for line in (text.splitlines() or [""]))


def dropped_note(dropped: Sequence[str]) -> str | None:
    """The dim line under a table that left columns out."""
    if not dropped:
        return None
    return f"(not shown, for width: {', '.join(dropped)}; --json has all)"
