"""``python -m benchmarks.nanogpt_shakespeare``: nanoGPT's CPU run and the recipe, scored the same way.

The full comparison takes minutes per seed (its numbers are in docs/training.md); here a few steps on a
small text check the pieces: nanoGPT's schedule and split, and that both sides start from the same network
and score the same validation windows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import recipes.config  # noqa: F401  (registers the typed schema the conf/ tree extends)
from benchmarks import nanogpt_shakespeare as nano
from recipes.modules.optim import lr_at

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


def test_nanogpt_schedule() -> None:
    assert nano.nanogpt_lr(0, 2000) == pytest.approx(1e-3 / 101)
    assert nano.nanogpt_lr(99, 2000) == pytest.approx(1e-3 * 100 / 101)
    assert nano.nanogpt_lr(100, 2000) == pytest.approx(1e-3)
    assert nano.nanogpt_lr(1050, 2000) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert nano.nanogpt_lr(2000, 2000) == pytest.approx(1e-4)


def test_char_split_is_nanogpts(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    train, val, vocab = nano.char_split(path)
    chars = sorted(set(TEXT))
    assert vocab == len(chars) and len(train) == int(len(TEXT) * 0.9) and len(train) + len(val) == len(TEXT)
    assert "".join(chars[i] for i in val[:20]) == TEXT[len(train) : len(train) + 20]


def test_a_few_steps_of_both_score_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    threads = torch.get_num_threads()
    try:
        fp32 = ["--recipe-args", "trainer.precision=32-true", "optim.fused=false"]
        assert nano.main(["--data", str(path), "--seeds", "0", "--steps", "3", "--threads", "1", *fp32]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out.splitlines()
    seed, ref, same, ours, *_ = out[1].split()
    assert seed == "0" and out[2].split()[0] == "mean" and "recipe - nanoGPT:" in out[3]
    # 3 warm-up steps barely move any of the nets: the same initial network (same seed), scored on the same
    # windows, gives nearly the same loss (measured: 0.001 apart; another recipe seed: 0.009), near ln(vocab).
    assert abs(float(ref) - float(same)) < 0.004 and abs(float(ref) - float(ours)) < 0.004
    assert float(ref) == pytest.approx(math.log(len(set(TEXT))), abs=0.1)


def test_recipe_as_nanogpt_is_nanogpts_setting() -> None:
    """The recipe plus ``NANOGPT_OPTIM`` is nanoGPT's CPU run in every setting its loop here uses."""
    with initialize_config_dir(config_dir=str(nano.ROOT / "conf"), version_base="1.3"):
        shipped = compose("train", overrides=["recipe=shakespeare_gpt"])
        cfg = compose("train", overrides=["recipe=shakespeare_gpt", *nano.NANOGPT_OPTIM])
    assert (cfg.data.block_size, cfg.data.batch_size, cfg.trainer.max_steps) == (nano.CONTEXT, nano.BATCH, 2000)
    assert (cfg.model.name, cfg.model.bias, cfg.model.dropout, cfg.norm.placement) == ("gpt_nano", False, 0.0, "pre_ln")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 1e-3, nano.WEIGHT_DECAY)
    assert tuple(cfg.optim.betas) == nano.BETAS and cfg.trainer.gradient_clip_val == nano.CLIP
    sched = OmegaConf.to_object(cfg.sched)
    got = [lr_at(step, cfg.optim.lr, sched, cfg.trainer.max_steps) for step in range(cfg.trainer.max_steps + 1)]
    assert got == pytest.approx([nano.nanogpt_lr(it, 2000) for it in range(2001)])
    assert shipped.optim.weight_decay != cfg.optim.weight_decay  # the overrides change what the recipe ships


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert nano.main(["--data", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --data: ") and "valid: " in err[0]


def test_nanogpt_as_its_user_runs_it_evaluates_checkpoints_and_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--as-user``'s reference: train.py's evaluation every eval_interval (step 0 and the last included), a
    checkpoint when the val loss improves (never at step 0), a printed loss every iteration."""
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    train, val, vocab = nano.char_split(path)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model = nano.train_nanogpt_as_user(train, val, vocab, 0, 4, tmp_path, eval_interval=2, eval_iters=2)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in out if ln.startswith("step ")] == ["step 0", "step 2", "step 4"]
    assert len([ln for ln in out if ln.startswith("iter ")]) == 4
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["iter_num"] in (2, 4) and set(ckpt) >= {"model", "optimizer", "best_val_loss"}
    assert model.training and math.isfinite(nano.full_val_loss(model, val))
