"""Study statistics against scipy on fixed numbers, and the claim verdicts on constructed results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recipes.studies.stats import FAILS, HOLDS, UNRESOLVED, Summary, divergence_verdict, paired, verdict

VALUES = [0.91, 0.935, 0.902, 0.928, 0.917]


def test_summary_matches_scipy() -> None:
    s = Summary.of(VALUES)
    x = np.array(VALUES)
    assert s.n == 5 and s.mean == pytest.approx(x.mean()) and s.std == pytest.approx(x.std(ddof=1))
    res = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)  # scipy's own CI of the mean
    assert (s.lo, s.hi) == (pytest.approx(res.low), pytest.approx(res.high))
    # written out: mean +- t_{0.975, n-1} * s / sqrt(n)
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) / math.sqrt(5)
    assert s.hi - s.mean == pytest.approx(half)


def test_paired_difference_matches_a_paired_t_test() -> None:
    a = {0: 1.0, 1: 1.4, 2: 0.9, 3: 1.2}
    b = {0: 0.8, 1: 1.1, 2: 0.85, 3: 1.0, 7: 5.0}  # seed 7 has no partner: left out
    d = paired(a, b)
    ref = stats.ttest_rel([a[s] for s in range(4)], [b[s] for s in range(4)]).confidence_interval(0.95)
    assert d.n == 4 and (d.lo, d.hi) == (pytest.approx(ref.low), pytest.approx(ref.high))


def test_degenerate_inputs() -> None:
    assert Summary.of([]).n == 0 and math.isnan(Summary.of([]).mean)
    one = Summary.of([0.5])
    assert one.mean == 0.5 and math.isnan(one.lo) and verdict(one, "less") == UNRESOLVED
    same = Summary.of([0.2, 0.2, 0.2])
    assert (same.lo, same.hi) == (0.2, 0.2) and verdict(same, "greater") == HOLDS


@pytest.mark.parametrize(
    "diffs, expect, margin, want",
    [
        ([-0.3, -0.2, -0.25], "less", 0.0, HOLDS),
        ([0.3, 0.2, 0.25], "less", 0.0, FAILS),
        ([-0.3, 0.2, 0.05], "less", 0.0, UNRESOLVED),
        ([0.3, 0.2, 0.25], "greater", 0.0, HOLDS),
        ([-0.3, -0.2, -0.25], "greater", 0.0, FAILS),
        ([0.001, -0.002, 0.0005], "not_greater", 0.01, HOLDS),
        ([0.05, 0.06, 0.055], "not_greater", 0.01, FAILS),
        ([-0.05, 0.06, 0.0], "not_greater", 0.01, UNRESOLVED),
        ([-0.001, 0.002, 0.0], "not_less", 0.01, HOLDS),
        ([-0.05, -0.06, -0.055], "not_less", 0.01, FAILS),
    ],
)
def test_verdicts_on_constructed_differences(diffs, expect, margin, want) -> None:
    assert verdict(Summary.of(diffs), expect, margin) == want


def test_unknown_expectation() -> None:
    with pytest.raises(ValueError, match="expect: 'lower'; valid: less, greater"):
        verdict(Summary.of([1.0, 2.0]), "lower")


@pytest.mark.parametrize(
    "expect, goal, a_fin, a_div, b_fin, b_div, want",
    [
        # a diverged at every seed, b finished: a is worse (a larger loss / a smaller accuracy)
        ("greater", "lower", set(), {0, 1, 2}, {0, 1, 2}, set(), HOLDS),
        ("not_greater", "lower", set(), {0, 1, 2}, {0, 1, 2}, set(), FAILS),
        ("less", "higher", set(), {0, 1}, {0, 1}, set(), HOLDS),
        ("not_less", "higher", set(), {0, 1}, {0, 1}, set(), FAILS),
        # b diverged at every seed: a is better
        ("less", "lower", {0, 1}, set(), set(), {0, 1}, HOLDS),
        ("greater", "higher", {0, 1}, set(), set(), {0, 1}, HOLDS),
        ("not_less", "lower", {0, 1}, set(), set(), {0, 1}, FAILS),
        # not decisive: the seeds read the finished pairs (None)
        ("greater", "lower", {0}, {1, 2}, {0, 1, 2}, set(), None),  # a finished at seed 0
        ("greater", "lower", set(), {0, 1}, set(), {0, 1}, None),  # both diverged
        ("greater", "lower", set(), {0}, {0}, set(), None),  # one seed: no verdict
        ("greater", "", set(), {0, 1}, {0, 1}, set(), None),  # a metric the study does not rank: no direction
    ],
)
def test_divergence_decides_a_check_only_when_it_separates_every_seed(expect, goal, a_fin, a_div, b_fin, b_div, want):
    assert divergence_verdict(expect, goal, a_fin, a_div, b_fin, b_div) == want
