"""Summary statistics over seeds and the paired significance test against a baseline row."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

SIGNIFICANCE_LEVEL = 0.05
TEST_NAME = "two-sided paired t-test over seeds"


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single run
    n: int


def summarize(values: list[float]) -> Summary | None:
    """Mean, sample std and count; None when there are no values."""
    if not values:
        return None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return Summary(mean, 0.0, 1)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return Summary(mean, math.sqrt(var), len(values))


def paired_p_value(row: dict, baseline: dict) -> float | None:
    """p-value of the paired t-test on the seeds both rows share; None with fewer than 2 pairs or
    a difference that is the same on every seed (the t statistic is then undefined or infinite)."""
    seeds = sorted(set(row) & set(baseline), key=str)
    if len(seeds) < 2:
        return None
    a, b = [row[s] for s in seeds], [baseline[s] for s in seeds]
    if len({x - y for x, y in zip(a, b, strict=True)}) == 1:
        return None  # the difference does not vary with the seed (parameter counts): nothing to test
    return float(stats.ttest_rel(a, b).pvalue)


CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean with the half-width of its t-interval over seeds (None below two values)."""

    mean: float
    half_width: float | None
    n: int
    std: float


def t_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval | None:
    """Mean ± t_{(1+c)/2, n-1} · s/√n over seeds; the half-width is None for a single value."""
    s = summarize(values)
    if s is None:
        return None
    if s.n < 2:
        return Interval(s.mean, None, 1, 0.0)
    t = float(stats.t.ppf((1 + confidence) / 2, s.n - 1))
    return Interval(s.mean, t * s.std / math.sqrt(s.n), s.n, s.std)


def holm(p_values: dict[str, float | None]) -> dict[str, float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None stays None.

    Sorted ascending p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j≤i} min(1, (m - j + 1) · p_(j)).
    Rejecting where the adjusted p < α controls the family-wise error rate at α.
    """
    tested = sorted((p, key) for key, p in p_values.items() if p is not None)
    m = len(tested)
    adjusted: dict[str, float | None] = {key: None for key, p in p_values.items() if p is None}
    running = 0.0
    for i, (p, key) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[key] = running
    return adjusted


def seed_invariant(values: dict) -> bool:
    """True when every seed gave the same value (parameter counts): no test, no interval."""
    return len(set(values.values())) <= 1
