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
    """p-value of the paired t-test on the seeds both rows share; None with fewer than 2 pairs."""
    seeds = sorted(set(row) & set(baseline), key=str)
    if len(seeds) < 2:
        return None
    a, b = [row[s] for s in seeds], [baseline[s] for s in seeds]
    if all(x == y for x, y in zip(a, b, strict=True)):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)
