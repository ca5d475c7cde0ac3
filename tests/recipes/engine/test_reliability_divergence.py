"""Reliability 3: a non-finite loss or gradient stops the run (or skips the update) with one line giving the step
and where it first appeared, and the last checkpoint is the last good one. The NaN/inf is injected."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from recipe_helpers import compose, csv_rows, tiny
from reliability_helpers import TINY_GPT, one_thread  # noqa: F401  (autouse: one torch thread)

from recipes.engine.divergence import DivergenceError

BLOCK = "stack.blocks.0.mlp.branch"  # the module that goes bad: the first MLP branch of resblocks' GPT


class InjectAt(Callback):
    """From training step ``step`` on (``once``: at that step only), the output of ``net.<module>`` becomes NaN,
    or (``grad=True``) the gradient of its first parameter becomes inf while the loss stays finite."""

    def __init__(self, step: int, module: str = BLOCK, once: bool = False, grad: bool = False) -> None:
        self.step, self.module, self.once, self.grad = step, module, once, grad
        self.handles: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for h in self.handles:
            h.remove()
        self.handles = []
        if trainer.global_step == self.step or (trainer.global_step > self.step and not self.once):
            target = pl_module.net.get_submodule(self.module)
            if self.grad:
                param = next(target.parameters())
                self.handles.append(param.register_hook(lambda g: g * math.inf))
            else:
                self.handles.append(target.register_forward_hook(lambda m, i, out: out * math.nan))


def run(tiny_data, run_dir, *extra, inject):
    from recipes.train import train

    steps = ["trainer.max_steps=8", "checkpoint.every_n_steps=2", "trainer.val_check_interval=8",
             "trainer.log_every_n_steps=1", "checkpoint.monitor=null"]  # fmt: skip
    return train(compose(tiny("shakespeare_gpt", tiny_data, run_dir, *TINY_GPT, *steps, *extra)), callbacks=[inject])


def test_nan_loss_stops_the_run_naming_the_step_and_the_layer(tiny_data, tmp_path):
    with pytest.raises(DivergenceError) as info:
        run(tiny_data, tmp_path, inject=InjectAt(5))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("divergence: non-finite loss (nan) at step 5; first non-finite output in ")
    assert f"first non-finite output in {BLOCK} (Mlp);" in message  # not its inputs' modules, not the later ones
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and f"last good checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'}" in message
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())  # the bad update never happened
    assert max(int(r["step"]) for r in csv_rows(tmp_path) if r.get("train/loss")) == 4  # nothing trained past it
    summary = json.loads((tmp_path / "summary.json").read_text())  # a result (a study keeps it), not a crash
    assert summary["diverged"] == message and summary["steps"] == 5


def test_nan_gradient_names_the_parameter(tiny_data, tmp_path):
    with pytest.raises(DivergenceError, match=rf"^divergence: non-finite gradient \(loss [0-9.]+\) at step 3; first in "
                       rf"{BLOCK}\.fc1\.weight \(1 of \d+ parameters\)"):  # fmt: skip
        run(tiny_data, tmp_path, inject=InjectAt(3, grad=True))


def test_quick_check_is_exact_for_huge_finite_gradients(tiny_data, tmp_path):
    """The per-step check reads L2 norms (fast on the CPU), which overflow for elements beyond ~1e19: such a
    gradient fails the quick check, and the exact one then finds it finite, so the run goes on."""
    from recipes.engine.divergence import finite_flag, quick_finite_flag

    huge, bad = [torch.ones(3), torch.full((4,), 1e20)], [torch.ones(3), torch.tensor([1.0, math.nan])]
    assert not bool(quick_finite_flag(huge)) and bool(finite_flag(huge))
    assert not bool(quick_finite_flag(bad)) and not bool(finite_flag(bad))
    assert bool(quick_finite_flag([torch.ones(3)])) and bool(quick_finite_flag([]))

    class Huge(InjectAt):  # the first MLP weight's gradient becomes 1e20 (finite) at step 3
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            for h in self.handles:
                h.remove()
            self.handles = []
            if trainer.global_step == self.step:
                param = next(pl_module.net.get_submodule(self.module).parameters())
                self.handles.append(param.register_hook(lambda g: torch.full_like(g, 1e20)))

    assert run(tiny_data, tmp_path, inject=Huge(3)).steps == 8  # no divergence reported


def test_skip_drops_the_bad_update_and_goes_on(tiny_data, tmp_path, capsys):
    summary = run(tiny_data, tmp_path, "divergence.action=skip", "divergence.grad_norms=true",
                  inject=InjectAt(3, once=True))  # fmt: skip
    assert summary.steps == 8
    skipped = [line for line in capsys.readouterr().out.splitlines() if line.startswith("divergence:")]
    assert len(skipped) == 1 and "at step 3" in skipped[0] and "update skipped (1/10)" in skipped[0]
    final = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in final.values())
    rows = csv_rows(tmp_path)
    norms = {k for r in rows for k, v in r.items() if k.startswith("grad_norm/") and v}
    assert {"grad_norm/total", f"grad_norm/{BLOCK}.fc1", "grad_norm/stack.blocks.0.attn.branch.qkv"} <= norms, norms


def test_skip_stops_after_max_skips_in_a_row(tiny_data, tmp_path):
    with pytest.raises(
        DivergenceError, match=r"at step 4 after 2 skipped steps; first non-finite output in .*; run stopped"
    ):
        run(tiny_data, tmp_path, "divergence.action=skip", "divergence.max_skips=2", inject=InjectAt(2))


# ----------------------------------------------------------------------------- non-finite weights, finite gradients


class CorruptWeightAt(Callback):
    """Once training step ``step`` is done (its update made, its checkpoint not yet saved), the token embedding
    becomes inf: what an update with finite gradients and a huge learning rate does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.net.get_parameter(EMBED).fill_(math.inf)


EMBED = "embed.wte.weight"


def checkpoint_files(run_dir):
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.glob("*.ckpt")) if folder.exists() else []


def test_non_finite_weights_are_never_checkpointed_and_resume_auto_continues_from_the_last_finite_one(
    tiny_data, tmp_path
):
    with pytest.raises(DivergenceError) as info:
        run(tiny_data, tmp_path, inject=CorruptWeightAt(4))
    message = str(info.value)
    assert "\n" not in message
    assert re.match(  # the embedding and the tied output layer
        rf"divergence: non-finite weights or optimiser state at step 4 \(2 of \d+ tensors, first net\.{EMBED}\); "
        "that checkpoint is not written; run stopped, ",
        message,
    ), message
    assert f"last good checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'}" in message
    assert checkpoint_files(tmp_path) == ["last.ckpt", "step00000002.ckpt"]  # nothing of step 4
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    summary = run(tiny_data, tmp_path, "resume=auto", inject=Callback())
    assert summary.resumed_from == str(tmp_path / "checkpoints" / "last.ckpt") and summary.steps == 8
    final = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in final.values())


def test_an_update_to_infinite_weights_is_refused_at_the_first_checkpoint(tiny_data, tmp_path):
    """The issue's reproduction: lr 1e39, finite gradients, weights inf after step 0's update; the checkpoint due
    at step 1 is refused, so resume=auto never meets non-finite weights (here it starts afresh: none is good)."""
    with pytest.raises(DivergenceError, match=r"^divergence: non-finite weights or optimiser state at step 1 \(") as e:
        run(tiny_data, tmp_path, "optim.lr=1e39", "sched.warmup_steps=0", "checkpoint.every_n_steps=1",
            inject=Callback())  # fmt: skip
    assert "no checkpoint was written yet (resume=auto starts afresh)" in str(e.value)
    assert checkpoint_files(tmp_path) == []


class HugeGradientAt(Callback):
    """At step ``step``, after the divergence check, one gradient becomes 3e38: finite, yet an SGD update with
    lr 2 takes the weight past the float32 range (inf)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.step:
            pl_module.net.get_parameter(f"{BLOCK}.fc1.weight").grad.fill_(3e38)


def test_skip_undoes_an_update_that_makes_the_weights_non_finite(tiny_data, tmp_path, capsys):
    sgd = ["optim.name=sgd", "optim.lr=2", "optim.momentum=0", "sched.name=constant", "sched.warmup_steps=0"]
    summary = run(tiny_data, tmp_path, "divergence.action=skip", *sgd, inject=HugeGradientAt(3))
    assert summary.steps == 8
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("divergence:")]
    assert lines == [
        f"divergence: the update made weights non-finite (first {BLOCK}.fc1.weight) at step 3; update undone (1/10)"
    ]
    final = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in final.values())
