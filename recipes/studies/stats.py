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


__all__ = ["EXPECTATIONS", "FAILS", "HOLDS", "Summary", "UNRESOLVED", "paired", "verdict"]
