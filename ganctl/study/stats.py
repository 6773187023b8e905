"""Statistics over seeds: mean, standard deviation, the t interval of the mean, Welch's test.

Seeds are few (3 to 10), so the intervals use Student's t, never the normal approximation,
and two variants are compared with Welch's t-test, which does not assume equal variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    ci95: tuple[float, float]  # the t interval of the mean


@dataclass(frozen=True)
class Difference:
    diff: float  # variant mean - baseline mean
    ci95: tuple[float, float]  # Welch's interval of the difference
    p_value: float  # Welch's two-sided t-test
    resolved: bool  # the interval excludes 0: this many seeds tell the two apart

    @property
    def half_width(self) -> float:
        """The smallest difference this many seeds resolve (about)."""
        return (self.ci95[1] - self.ci95[0]) / 2


def summarize(values: list[float]) -> Summary:
    """Mean, std and the 95% t interval of the mean; needs at least two values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        raise ValueError("an interval needs at least two values")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, (mean - half, mean + half))


def compare(variant: list[float], baseline: list[float]) -> Difference:
    """The variant's difference from the baseline: Welch's interval and two-sided t-test."""
    from scipy import stats

    a, b = summarize(variant), summarize(baseline)
    diff = a.mean - b.mean
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:  # both sets of seeds gave one value each: any difference is exact
        return Difference(diff, (diff, diff), 0.0 if diff != 0 else 1.0, diff != 0)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    p_value = float(stats.ttest_ind(variant, baseline, equal_var=False).pvalue)
    return Difference(diff, (diff - half, diff + half), p_value, bool(abs(diff) > half))
