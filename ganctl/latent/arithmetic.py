"""Latent arithmetic (Radford et al. 2015, section 6.3: "smiling woman − neutral woman + neutral man").

Parsing ``--concept`` and ``--expr`` needs no torch, so mistakes are reported at once; the
means and their combination import it when they run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ganctl.errors import GanctlError

if TYPE_CHECKING:
    import torch

MAX_FACTOR = 1000.0  # |K| in K*name: latents are N(0, I); a larger factor leaves the space (or overflows to inf)
_CONCEPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*")


def parse_concept(spec: str) -> tuple[str, list[int]]:
    """``"smiling_woman=3,17,42"`` → ``("smiling_woman", [3, 17, 42])``: a name and row indices of a latent file."""
    name, sep, indices = spec.partition("=")
    name = name.strip()
    if not sep or not _CONCEPT_NAME.fullmatch(name):
        raise GanctlError(f"--concept {spec!r}: write NAME=I,J,K (a name of letters, digits and _, then latent indices)")
    try:
        rows = [int(i) for i in indices.split(",") if i.strip()]
    except ValueError:
        raise GanctlError(f"--concept {spec!r}: the indices must be whole numbers separated by commas") from None
    if not rows:
        raise GanctlError(f"--concept {spec!r}: give at least one latent index after '='")
    return name, rows


def parse_expression(expression: str, names: Iterable[str]) -> list[tuple[float, str]]:
    """``"a - b + 0.5*c"`` → ``[(1.0, "a"), (-1.0, "b"), (0.5, "c")]``; every name must be a concept."""
    known, terms, position = set(names), [], 0
    while position < len(expression):
        match = _TERM.match(expression, position)
        if match is None or match.end() == position or (terms and match.group(1) is None):
            raise GanctlError(f"--expr {expression!r}: write concepts joined by + and -, each optionally as K*name")
        sign, factor, name = match.groups()
        if name not in known:
            raise GanctlError(f"--expr names '{name}', which no --concept defines (defined: {', '.join(sorted(known))})")
        value = float(factor) if factor else 1.0
        if not value <= MAX_FACTOR:
            raise GanctlError(f"--expr {expression!r}: the factor {factor[:20]} of {name} is above {MAX_FACTOR:g}")
        terms.append(((-1.0 if sign == "-" else 1.0) * value, name))
        position = match.end()
    if not terms:
        raise GanctlError("--expr is empty; write e.g. 'smiling_woman - neutral_woman + neutral_man'")
    return terms


def concept_means(latents: torch.Tensor, concepts: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The mean latent of each concept's rows (the paper averages three per concept: single
    points are unstable, their average is not)."""
    import torch

    n = latents.shape[0]
    for name, rows in concepts.items():
        outside = [i for i in rows if not 0 <= i < n]
        if outside:
            raise GanctlError(f"--concept {name}: index {outside[0]} is outside the latent file's {n} rows (0 to {n - 1})")
    return {name: latents[rows].to(torch.float64).mean(dim=0).to(latents.dtype) for name, rows in concepts.items()}


def combine(means: dict[str, torch.Tensor], terms: Sequence[tuple[float, str]]) -> torch.Tensor:
    """The latent of ``Σ factor × mean[name]`` over the expression's terms."""
    import torch

    total = sum(factor * means[name].to(torch.float64) for factor, name in terms)
    return total.to(next(iter(means.values())).dtype)
