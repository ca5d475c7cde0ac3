"""The measured CPU fast path (``recipes/engine/calibrate.py``): the decision logic, on made-up timings.

No test here times anything: the timer, the clock or the steps are stand-ins, so every assertion is about
what the logic does with given numbers (speed itself is measured in ``benchmarks/``).
"""

from __future__ import annotations

import json

import pytest
import torch
from recipe_helpers import compose, tiny
from torch import nn

from recipes.build import fast_path_for, measure_fast_path, validate
from recipes.engine import calibrate as cal
from recipes.engine import fast_path
from recipes.engine.calibrate import Calibration, Candidate, Result, calibrate, candidates, choose, fitted
from recipes.engine.fast_path import decide

FP32, BF16 = Candidate(), Candidate(bf16=True)
CL, BF16_CL = Candidate(channels_last=True), Candidate(bf16=True, channels_last=True)


def fake_timer(ratios: dict[str, float], calls: list[int]):
    def timer(steps, budget_s, min_rounds=cal.MIN_ROUNDS):
        calls.append(1)
        assert set(steps) == set(ratios)  # one step function per candidate
        return dict(ratios), 3

    return timer


def tiny_calibration(cands=(FP32, BF16)) -> Calibration:
    return Calibration(
        lambda: nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 8)),
        lambda net: torch.randint(0, 8, (2, 3)),
        list(cands),
        model={"name": "toy", "dim": 4},
        batch_shape=(2, 3),
    )


def test_candidates_follow_the_switches_left_on_auto():
    assert candidates(None, None, bf16_native=True, conv_net=False) == [FP32, BF16]
    assert candidates(None, None, bf16_native=True, conv_net=True) == [FP32, CL, BF16, BF16_CL]
    assert candidates(None, None, bf16_native=False, conv_net=True) == [FP32, CL]  # emulated bf16: not timed
    assert candidates(None, None, bf16_native=False, conv_net=False) == [FP32]  # nothing to measure
    assert candidates(True, None, bf16_native=True, conv_net=True) == [BF16, BF16_CL]  # explicit precision
    assert candidates(None, False, bf16_native=True, conv_net=True) == [FP32, BF16]  # explicit channels_last


def test_choose_takes_the_faster_and_fp32_within_the_margin():
    assert choose({"fp32": 1.0, "bf16": 0.74}, "fp32") == BF16
    assert choose({"fp32": 1.0, "bf16": 1.16}, "fp32") == FP32  # bf16 slower (the Xeon's GPT): fp32
    assert choose({"fp32": 1.0, "bf16": 0.99}, "fp32", margin=0.02) == FP32  # within the noise: the exact one
    ratios = {"fp32": 1.0, "channels_last": 0.86, "bf16": 0.64, "bf16+channels_last": 0.6}
    assert choose(ratios, "fp32") == BF16_CL
    assert Candidate.parse(BF16_CL.label()) == BF16_CL and Candidate.parse("fp32") == FP32


def test_time_rounds_takes_median_ratios_of_alternated_rounds():
    now = [0.0]
    order: list[str] = []

    def step(name: str, cost: float):
        def run() -> None:
            order.append(name)
            now[0] += cost

        return run

    ratios, rounds = cal.time_rounds(
        {"fp32": step("fp32", 1.0), "bf16": step("bf16", 1.25)}, budget_s=0.0, clock=lambda: now[0]
    )
    assert rounds == cal.MIN_ROUNDS and ratios == {"fp32": 1.0, "bf16": 1.25}
    timed = order[4:]  # after two warm-up calls each
    assert timed[:4] == ["fp32", "bf16", "bf16", "fp32"]  # alternating order
    one = cal.time_rounds({"fp32": step("fp32", 1.0), "bf16": step("bf16", 0.5)}, 0.0, lambda: now[0], min_rounds=1)
    assert one == ({"fp32": 1.0, "bf16": 0.5}, 1)  # a slow step's calibration: fewer rounds


def test_calibration_is_cached_and_a_hit_skips_it(tmp_path):
    path, calls = tmp_path / "fast_path.json", []
    first = calibrate(tiny_calibration(), path=path, timer=fake_timer({"fp32": 1.0, "bf16": 1.16}, calls))
    assert first.chosen == FP32 and not first.cached and calls == [1]
    stored = json.loads(path.read_text())
    (entry,) = stored.values()
    assert entry["chosen"] == "fp32" and entry["model"] == {"name": "toy", "dim": 4} and entry["machine"]["cpu"]
    again = calibrate(tiny_calibration(), path=path, timer=fake_timer({"fp32": 1.0, "bf16": 0.5}, calls))
    assert again.cached and again.chosen == FP32 and calls == [1]  # not timed again
    assert "cached" in again.why()
    other = tiny_calibration()
    other.model = {"name": "toy", "dim": 8}  # another model shape: its own entry
    assert calibrate(other, path=path, timer=fake_timer({"fp32": 1.0, "bf16": 0.5}, calls)).chosen == BF16
    assert calls == [1, 1] and len(json.loads(path.read_text())) == 2


def test_a_new_calibration_version_measures_again(tmp_path, monkeypatch):
    """A library change that changes what is faster bumps VERSION: the old entries are not read."""
    path, calls = tmp_path / "fast_path.json", []
    calibrate(tiny_calibration(), path=path, timer=fake_timer({"fp32": 1.0, "bf16": 1.16}, calls))
    monkeypatch.setattr(cal, "VERSION", cal.VERSION + 1)
    again = calibrate(tiny_calibration(), path=path, timer=fake_timer({"fp32": 1.0, "bf16": 0.6}, calls))
    assert not again.cached and again.chosen == BF16 and calls == [1, 1]


def test_fitted_keeps_the_batch_and_cuts_rounds_then_rows_for_a_slow_step():
    now = [0.0]

    def step_on(n):  # 10 ms a row on a made-up clock
        def run():
            now[0] += 0.01 * n

        return run

    clock = lambda: now[0]  # noqa: E731
    assert fitted(step_on, 16, 2, 2.0, clock=clock) == (16, 3)  # 0.16 s a step: 3 rounds of 2 fit in 2 s
    assert fitted(step_on, 64, 2, 2.0, clock=clock) == (64, 1)  # 0.64 s: one round fits, the whole batch
    assert fitted(step_on, 64, 2, 0.32, clock=clock) == (16, 1)  # not even one: a quarter of the rows
    assert fitted(step_on, 64, 4, 0.001, clock=clock) == (2, 1)  # never under 2 rows (BatchNorm in training)


def test_a_slow_step_is_timed_on_fewer_rows_and_the_line_says_so(tmp_path):
    seen: list[int] = []
    net = nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 8))
    net.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    slow = Calibration(lambda: net, lambda net: torch.randint(0, 8, (16, 3)), [FP32, BF16], model={"name": "toy"},
                       batch_shape=(16, 3))  # fmt: skip

    def timer(steps, budget_s, min_rounds):
        least.append(min_rounds)
        for step in steps.values():
            step()
        return {"fp32": 1.0, "bf16": 0.7}, 1

    path, least = tmp_path / "c.json", []
    result = calibrate(slow, path=path, timer=timer, fit=lambda step_on, rows, n, budget: (4, 1))
    assert seen == [4, 4] and least == [1] and result.rows == (4, 16) and "4 of 16 rows" in result.why()
    assert calibrate(slow, path=path, timer=timer).rows == (4, 16)  # the cache keeps it
    assert calibrate(tiny_calibration(), path=path, timer=timer).rows is None  # a fast step: the whole batch


def test_one_candidate_needs_no_timing(tmp_path):
    calls: list[int] = []
    result = calibrate(tiny_calibration([FP32]), path=tmp_path / "c.json", timer=fake_timer({}, calls))
    assert result.chosen == FP32 and calls == [] and not (tmp_path / "c.json").exists()


def test_a_real_calibration_runs_the_steps(tmp_path):
    """The real timer on a toy model: it returns a ratio per candidate (values not checked: no timing claims)."""
    result = calibrate(tiny_calibration(), path=tmp_path / "c.json", budget_s=0.0)
    assert set(result.ratios) == {"fp32", "bf16"} and result.ratios["fp32"] == 1.0 and result.rounds >= 3


def test_measured_decides_auto_and_explicit_keys_win():
    slow_bf16 = Result(FP32, {"fp32": 1.0, "bf16": 1.16}, "fp32")
    d = decide("cpu", conv_net=False, measured=slow_bf16)
    assert d.precision == "32-true" and not d.path.bf16 and d.path.fused
    assert d.line() == "fast path: 32-true (measured vs fp32: bf16 1.16x; 0.0 s, 0 rounds), fused AdamW, no compile (CPU)"
    fast = Result(BF16_CL, {"fp32": 1.0, "bf16+channels_last": 0.6}, "fp32", cached=True)
    d = decide("cpu", conv_net=True, optimizer="sgd", measured=fast)
    assert d.precision == "bf16-mixed" and d.path.channels_last and "channels-last (measured)" in d.line()
    d = decide("cpu", conv_net=True, precision="32-true", channels_last=False, measured=fast)
    assert d.precision == "32-true" and not d.path.channels_last  # explicit keys win over the measurement
    assert "32-true (trainer.precision)" in d.line()


@pytest.fixture
def calibrating(monkeypatch, tmp_path):
    """Calibration on (the suite turns it off), a private cache, and the timer replaced: ``calls`` counts it."""
    monkeypatch.setenv(cal.CALIBRATE_ENV, "1")
    monkeypatch.setenv("RESBLOCKS_CACHE", str(tmp_path / "cache"))
    calls: list[dict[str, object]] = []

    def timer(steps, budget_s=cal.BUDGET_S, clock=None, min_rounds=cal.MIN_ROUNDS):
        calls.append(dict(steps))
        return {name: (1.0 if i == 0 else 0.8) for i, name in enumerate(steps)}, 3

    monkeypatch.setattr(cal, "time_rounds", timer)
    monkeypatch.setattr(fast_path, "bf16_fast", lambda device: (True, "CPU has AMX"))  # the same on any CPU
    return calls


def test_recipe_measures_on_cpu_and_explicit_keys_skip_it(tiny_data, calibrating):
    cfg = compose(tiny("shakespeare_gpt", tiny_data, "unused", "+model.depth=1", "+model.dim=32", "+model.heads=2"))
    dm = validate(cfg)
    d = fast_path_for(cfg, dm, measure=True)
    assert len(calibrating) == 1 and "measured vs fp32" in d.line()
    assert fast_path_for(cfg, dm, measure=True).why["precision"].endswith("cached") and len(calibrating) == 1
    assert "measured" not in fast_path_for(cfg, dm).line()  # validate's decision: no measurement
    cfg = compose(tiny("shakespeare_gpt", tiny_data, "unused", "trainer.precision=32-true"))
    assert measure_fast_path(cfg, validate(cfg), conv_net=False) is None and len(calibrating) == 1
    cfg = compose(tiny("fmnist_resnet20", tiny_data, "unused", "trainer.precision=32-true"))
    d = fast_path_for(cfg, validate(cfg), measure=True)  # channels_last still auto: measured under fp32
    assert d.precision == "32-true" and set(calibrating[-1]) == {"fp32", "channels_last"}


def test_calibration_off_by_environment(tiny_data, calibrating, monkeypatch):
    monkeypatch.setenv(cal.CALIBRATE_ENV, "0")
    cfg = compose(tiny("shakespeare_gpt", tiny_data, "unused"))
    assert measure_fast_path(cfg, validate(cfg), conv_net=False) is None and calibrating == []
