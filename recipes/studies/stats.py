"""Statistics of a seeded study: per-variant summaries, paired differences to a baseline, claim verdicts.

Seeds are the unit of replication. A variant's metric over n seeds gets its mean, sample standard
deviation and a 95 % Student-t confidence interval (``scipy.stats.t``). Two variants run with the same
seeds are compared *paired by seed* (same data order and initialisation stream): the per-seed differences
``a_s - b_s`` get the same t interval, which is narrower than comparing two independent means whenever
seeds move both variants together. A claim check reads that interval:

* ``less`` / ``greater``: holds if the whole interval is below / above 0, does not hold if it is wholly on
  the other side, and is *not resolved* if it contains 0 (more seeds needed, or no effect);
* ``not_greater`` / ``not_less`` (non-inferiority, e.g. "the deeper residual net is not worse"): holds if the
  interval lies below ``+margin`` / above ``-margin``, does not hold if it lies wholly beyond it, else not resolved.
With fewer than 2 seeds there is no interval: always not resolved.

A run that diverged has no final value; it counts as worse than any run that finished
(:func:`divergence_verdict`): if at every seed (at least 2) one side diverged and the other finished, that
decides the check. Otherwise the check reads the seeds at which both finished.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

EXPECTATIONS = ("less", "greater", "not_greater", "not_less")
HOLDS, FAILS, UNRESOLVED = "holds", "does not hold", "not resolved"


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and a ``level`` t confidence interval of ``n`` values (NaN bounds if n < 2)."""

    n: int
    mean: float
    std: float
    lo: float
    hi: float

    @classmethod
    def of(cls, values: Sequence[float], level: float = 0.95) -> Summary:
        x = np.asarray(values, dtype=float)
        n = int(x.size)
        if n == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        mean = float(x.mean())
        if n < 2:
            return cls(1, mean, math.nan, math.nan, math.nan)
        if np.ptp(x) == 0:  # all equal: no spread (and no rounding noise from the mean)
            return cls(n, float(x[0]), 0.0, float(x[0]), float(x[0]))
        std = float(x.std(ddof=1))
        lo, hi = stats.t.interval(level, n - 1, loc=mean, scale=std / math.sqrt(n))
        return cls(n, mean, std, float(lo), float(hi))


def paired(a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95) -> Summary:
    """Summary of ``a[s] - b[s]`` over the seeds both have (the others are left out)."""
    seeds = sorted(a.keys() & b.keys())
    return Summary.of([a[s] - b[s] for s in seeds], level)


def verdict(diff: Summary, expect: str, margin: float = 0.0) -> str:
    """Whether the paired difference ``a - b`` supports ``expect`` (see the module docstring)."""
    if expect not in EXPECTATIONS:
        raise ValueError(f"expect: {expect!r}; valid: {', '.join(EXPECTATIONS)}")
    if diff.n < 2 or math.isnan(diff.lo):
        return UNRESOLVED
    if expect == "less":
        return HOLDS if diff.hi < 0 else FAILS if diff.lo > 0 else UNRESOLVED
    if expect == "greater":
        return HOLDS if diff.lo > 0 else FAILS if diff.hi < 0 else UNRESOLVED
    if expect == "not_greater":
        return HOLDS if diff.hi <= margin else FAILS if diff.lo > margin else UNRESOLVED
    return HOLDS if diff.lo >= -margin else FAILS if diff.hi < -margin else UNRESOLVED


def divergence_verdict(
    expect: str, goal: str, a_finished: set[int], a_diverged: set[int], b_finished: set[int], b_diverged: set[int]
) -> str | None:
    """The verdict when divergence alone decides ``a`` vs ``b``, else None.

    ``goal``: ``lower`` or ``higher`` is better. Decisive when, at every seed where both have a result (at
    least 2), ``a`` diverged and ``b`` finished (``a`` is worse), or the reverse; a diverged run is then worse
    than any finished one, so ``a - b`` has a known sign and no interval is needed.
    """
    both = (a_finished | a_diverged) & (b_finished | b_diverged)
    if len(both) < 2 or goal not in ("lower", "higher"):  # no interval, or no known "worse" direction
        return None
    if both <= a_diverged - b_diverged:
        worse = "a"
    elif both <= b_diverged - a_diverged:
        worse = "b"
    else:
        return None
    # sign of a - b: a worse means a larger loss (goal lower) or a smaller score (goal higher)
    positive = (worse == "a") == (goal == "lower")
    wants_positive = expect in ("greater", "not_less")
    return HOLDS if positive == wants_positive else FAILS


__all__ = ["EXPECTATIONS", "FAILS", "HOLDS", "Summary", "UNRESOLVED", "divergence_verdict", "paired", "verdict"]
