"""The CPU fast path decided by measurement: a short timed calibration at the start of a run, cached.

CPU flags do not say what is faster: on an AMD Zen 5 (AVX512-BF16) bf16 autocast made the default GPT's step
1.35x faster, on an Intel Xeon with AMX-BF16 it made it 1.16x *slower* (small matrices gain little from AMX
and pay the casts). So, where ``trainer.precision`` (and, for a conv net, ``channels_last``) is ``auto`` on a
CPU, a run times forward + backward of its own network on a batch of its own shape under each candidate
(fp32 eager; bf16 autocast where the CPU has native bf16; each with and without channels-last for a conv net),
in alternating rounds for about :data:`BUDGET_S` seconds, and takes the fastest, unless it beats fp32 eager by
less than :data:`MARGIN` (then fp32 eager: never slower than fp32 by more than the noise, and exact). Where a
step on the run's batch is too slow for :data:`MIN_ROUNDS` rounds of every candidate in the budget, fewer rounds
are timed, and where not even one round fits (a 64 x 256-token text classifier took seconds a step: a 40 s
calibration) the first rows of the batch (:func:`fitted`): a calibration costs about the budget plus one step
on the run's batch. The whole batch is kept where a round fits: on a sub-batch the ratios move (ResNet-20, 42 of
128 rows: bf16 + channels-last 0.59x against 0.45-0.47x on all 128).

The result is cached per :data:`VERSION`, machine (CPU model, torch version, torch threads) and model shape
(builder, options, batch shape) in ``$RESBLOCKS_CACHE/fast_path.json`` (default ``~/.cache/resblocks``), so repeated runs and
sweeps do not pay it again. ``RESBLOCKS_CALIBRATE=0`` turns it off (the CPU-flags rule of
:func:`recipes.engine.fast_path.bf16_fast`; the test suite does this, so its runs are deterministic).

Imports torch only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BUDGET_S = 2.0  # timed rounds (after warm-up) stop once they have taken this long
MIN_ROUNDS, MAX_ROUNDS = 3, 25
MARGIN = 0.02  # a candidate must beat fp32 eager by more than this to be chosen (about the noise here)
CALIBRATE_ENV = "RESBLOCKS_CALIBRATE"
CACHE_FILE = "fast_path.json"
# Part of every cache key: bump it when a change in the library changes what is faster, so that cached decisions
# are measured again (2: CPU attention in fp32 under autocast made bf16 much faster for Transformers).
VERSION = 2


@dataclass(frozen=True)
class Candidate:
    """One way to run a step: bf16 autocast or not, channels-last or not."""

    bf16: bool = False
    channels_last: bool = False

    def label(self) -> str:
        on = [n for n in ("bf16", "channels_last") if getattr(self, n)]
        return "+".join(on) if on else "fp32"

    @classmethod
    def parse(cls, label: str) -> Candidate:
        parts = set(label.split("+")) - {"fp32"}
        return cls(bf16="bf16" in parts, channels_last="channels_last" in parts)


@dataclass
class Result:
    """The chosen candidate, each candidate's median time ratio to the reference, and where it came from."""

    chosen: Candidate
    ratios: dict[str, float]
    reference: str
    cached: bool = False
    seconds: float = 0.0
    rounds: int = 0
    rows: tuple[int, int] | None = None  # (rows timed, the batch's rows) where a slow step made it time fewer

    def why(self) -> str:
        """For the fast-path line, e.g. ``measured: bf16 1.16x fp32's time; cached``."""
        others = ", ".join(f"{k} {v:.2f}x" for k, v in self.ratios.items() if k != self.reference)
        where = "cached" if self.cached else f"{self.seconds:.1f} s, {self.rounds} rounds"
        if self.rows is not None:
            where += f", {self.rows[0]} of {self.rows[1]} rows"
        return f"measured vs {self.reference}: {others}; {where}"

    def to_json(self) -> dict[str, object]:
        return {"chosen": self.chosen.label(), "ratios": self.ratios, "reference": self.reference,
                "seconds": round(self.seconds, 3), "rounds": self.rounds,
                "rows": list(self.rows) if self.rows else None}  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Result:
        rows = d.get("rows")
        return cls(Candidate.parse(str(d["chosen"])), dict(d["ratios"]), str(d["reference"]), cached=True,  # type: ignore[arg-type]
                   seconds=float(d.get("seconds", 0.0)), rounds=int(d.get("rounds", 0)),  # type: ignore[arg-type]
                   rows=(int(rows[0]), int(rows[1])) if rows else None)  # type: ignore[index]  # fmt: skip


def enabled() -> bool:
    """Calibration is on unless ``RESBLOCKS_CALIBRATE`` is ``0``/``false``/``off``."""
    return os.environ.get(CALIBRATE_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def candidates(
    bf16: bool | None, channels_last: bool | None, *, bf16_native: bool, conv_net: bool
) -> list[Candidate]:
    """The candidates to time. ``bf16``/``channels_last``: a fixed value (an explicit key), or ``None`` (auto).

    bf16 is tried only where the CPU has native bf16 (emulated bf16 is many times slower: no need to time it);
    channels-last only for a conv net. The first candidate is the reference (fp32 eager where it is allowed).
    """
    precisions = [bf16] if bf16 is not None else ([False, True] if bf16_native else [False])
    layouts = [channels_last] if channels_last is not None else ([False, True] if conv_net else [False])
    return [Candidate(p, c) for p in precisions for c in layouts]


def choose(ratios: Mapping[str, float], reference: str, margin: float = MARGIN) -> Candidate:
    """The fastest candidate by its time ratio to ``reference``; the reference unless one beats it by > ``margin``."""
    best = min(ratios, key=lambda k: (ratios[k], k != reference))
    return Candidate.parse(best if ratios[best] < 1.0 - margin else reference)


def machine() -> dict[str, object]:
    """What a timing depends on besides the model: CPU model, torch version, torch threads."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads()}


def cache_key(model: Mapping[str, object], batch_shape: Sequence[int], cands: Sequence[Candidate]) -> str:
    """A stable key for (machine, model shape, batch shape, candidates)."""
    spec = {"version": VERSION, "machine": machine(), "model": model, "batch": list(batch_shape),
            "candidates": [c.label() for c in cands]}  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path() -> Path:
    root = os.environ.get("RESBLOCKS_CACHE") or Path.home() / ".cache" / "resblocks"
    return Path(root) / CACHE_FILE


def load_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def store(path: Path, key: str, result: Result, about: Mapping[str, object]) -> None:
    """Adds ``key`` to the cache file (read, merge, atomic replace; a failed write only loses the cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = load_cache(path)
        data[key] = {**result.to_json(), **about, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fast_path.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


StepFn = Callable[[], None]


def time_rounds(
    steps: Mapping[str, StepFn],
    budget_s: float = BUDGET_S,
    clock: Callable[[], float] = time.process_time,
    min_rounds: int = MIN_ROUNDS,
) -> tuple[dict[str, float], int]:
    """Median over rounds of each step's time ratio to the first one's; rounds alternate the order.

    Two warm-up calls each (one if a call takes over 0.25 s; oneDNN builds its primitives on the first), then rounds until ``budget_s``
    seconds of wall time have passed (at least ``min_rounds``, at most :data:`MAX_ROUNDS`). Samples are
    timed by ``clock``, the process's CPU time by default: on a shared machine it leaves out the time other
    processes hold the cores, which made the ratios much steadier than wall time (``docs/benchmarks.md``).
    """
    names = list(steps)
    for name in names:
        t0 = time.perf_counter()
        steps[name]()
        if time.perf_counter() - t0 < 0.25:  # a second warm-up only where it is cheap
            steps[name]()
    per_round: dict[str, list[float]] = {n: [] for n in names}
    start, rounds = time.perf_counter(), 0
    while rounds < MAX_ROUNDS and (rounds < min_rounds or time.perf_counter() - start < budget_s):
        order = names if rounds % 2 == 0 else names[::-1]
        took = {}
        for name in order:
            t0 = clock()
            steps[name]()
            took[name] = clock() - t0
        for name in names:
            per_round[name].append(took[name] / took[names[0]])
        rounds += 1
    return {n: statistics.median(v) for n, v in per_round.items()}, rounds


def fitted(
    step_on: Callable[[int], StepFn],
    rows: int,
    candidates: int,
    budget_s: float,
    clock: Callable[[], float] = time.process_time,
) -> tuple[int, int]:
    """``(rows, rounds)``: the batch rows to time and the least rounds, for ``candidates`` within ``budget_s``.

    ``step_on(n)`` is the reference candidate's step on the batch's first ``n`` rows; one step on all ``rows`` is
    timed (also a warm-up). Where :data:`MIN_ROUNDS` rounds of every candidate (each taken as slow as the
    reference) fit in the budget: all rows, :data:`MIN_ROUNDS`; where at least one round fits: all rows, as many
    rounds as fit; else one round on fewer rows, in proportion (at least 2, which BatchNorm needs in training).
    """
    t0 = clock()
    step_on(rows)()
    fit = max(budget_s, 1e-3) / (candidates * max(clock() - t0, 1e-9))  # rounds the budget holds
    if fit >= MIN_ROUNDS or rows <= 2:
        return rows, MIN_ROUNDS
    if fit >= 1:
        return rows, int(fit)
    return max(2, int(rows * fit)), 1


def train_step(net: nn.Module, batch: torch.Tensor, cand: Candidate) -> StepFn:
    """Forward + backward of a copy of ``net`` on ``batch`` under ``cand`` (cross-entropy on the last dimension)."""
    net = copy.deepcopy(net).train()
    x = batch
    if cand.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = batch.contiguous(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cand.bf16):
            out = net(x)
        out = out.flatten(0, -2).float() if out.dim() > 1 else out.float()
        target = torch.zeros(out.shape[0], dtype=torch.long)
        F.cross_entropy(out, target).backward()
        for p in params:
            p.grad = None

    return step


@dataclass
class Calibration:
    """Inputs of one calibration: the network (fp32, CPU), a batch of the run's shape, the candidates."""

    net_factory: Callable[[], nn.Module]
    batch_factory: Callable[[nn.Module], torch.Tensor]
    cands: list[Candidate]
    model: dict[str, object] = field(default_factory=dict)  # builder name and options, for the cache key
    batch_shape: tuple[int, ...] = ()


def calibrate(
    cal: Calibration,
    *,
    budget_s: float = BUDGET_S,
    path: Path | None = None,
    timer: Callable[..., tuple[dict[str, float], int]] | None = None,
    fit: Callable[[Callable[[int], StepFn], int, int, float], tuple[int, int]] | None = None,
) -> Result:
    """The chosen candidate for ``cal``: from the cache if there, else timed (and cached).

    ``timer`` and ``fit`` stand in for :func:`time_rounds` and :func:`fitted` (tests)."""
    reference = cal.cands[0].label()
    if len(cal.cands) == 1:
        return Result(cal.cands[0], {reference: 1.0}, reference)
    path = path or cache_path()
    key = cache_key(cal.model, cal.batch_shape, cal.cands)
    hit = load_cache(path).get(key)
    if hit is not None:
        try:
            return Result.from_json(hit)
        except (KeyError, TypeError, ValueError):
            pass  # a damaged entry: measure again
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # the run's random state is left as it was
        net = cal.net_factory()
        batch = cal.batch_factory(net)
        rows = batch.shape[0]
        step_on = lambda n: train_step(net, batch[:n], cal.cands[0])  # noqa: E731
        timed, least = (fit or fitted)(step_on, rows, len(cal.cands), budget_s)
        steps = {c.label(): train_step(net, batch[:timed], c) for c in cal.cands}
        ratios, rounds = (timer or time_rounds)(steps, budget_s, min_rounds=least)
    result = Result(choose(ratios, reference), ratios, reference, seconds=time.perf_counter() - start, rounds=rounds,
                    rows=(timed, rows) if timed < rows else None)  # fmt: skip
    store(path, key, result, {"machine": machine(), "model": cal.model, "batch": list(cal.batch_shape)})
    return result


__all__ = [
    "BUDGET_S", "CALIBRATE_ENV", "Calibration", "Candidate", "MARGIN", "Result", "VERSION", "cache_key", "cache_path",
    "calibrate", "candidates", "choose", "enabled", "fitted", "load_cache", "machine", "store", "time_rounds",
    "train_step",
]  # fmt: skip
