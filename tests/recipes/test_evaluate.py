"""`python -m recipes.evaluate ckpt=PATH` rebuilds the run from the checkpoint's stored config."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F

import resblocks
from recipes.data import build_datamodule
from recipes.evaluate import evaluate, main
from recipes.tracking.quiet import LIGHTNING_LOG, NO_LIGHTNING_TIPS

# `trained` (conftest.py): last.ckpt of a tiny GPT (depth 1, dim 32, 2 heads, val_batches 2) trained 4 steps.


def test_evaluate_matches_a_hand_computed_test_loss(trained, tiny_data):
    metrics = evaluate(trained, ["trainer.precision=32-true"])  # as the fp32 hand computation (auto: bf16 on this CPU)
    # By hand, without the recipes glue: the same data, the same network, the checkpoint's weights.
    dm = build_datamodule("shakespeare", path=str(tiny_data["plays"]), block_size=64, batch_size=2, val_batches=2)
    dm.setup("test")
    net = resblocks.build_model(
        "gpt_nano", vocab_size=dm.vocab_size, block_size=64, depth=1, dim=32, heads=2, bias=False
    )
    state = torch.load(trained, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            total += F.cross_entropy(net(x).flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
    assert metrics["test/loss"] == pytest.approx(total / count, rel=1e-5)
    assert metrics["test/ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)
    assert metrics["test/bpc"] == pytest.approx(total / count / math.log(2), rel=1e-5)


def test_cli_writes_metrics_and_refuses_bad_arguments(trained, capsys):
    logging.getLogger(LIGHTNING_LOG).removeFilter(NO_LIGHTNING_TIPS)  # a training run in this process may have set it
    main([f"ckpt={trained}", "data.batch_size=4"])
    assert NO_LIGHTNING_TIPS in logging.getLogger(LIGHTNING_LOG).filters  # evaluate's Trainer prints no adverts either
    out = json.loads(trained.with_name(trained.name + ".test.json").read_text())
    assert out["overrides"] == ["data.batch_size=4"] and "test/loss" in out["metrics"]
    assert "test/loss" in capsys.readouterr().out
    for bad in (["ckpt=/nonexistent.ckpt"], [f"ckpt={trained}", "data.nope=1"], [f"ckpt={trained}", "oops"]):
        with pytest.raises(SystemExit) as info:
            main(bad)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
