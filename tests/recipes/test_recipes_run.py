"""Every recipe runs end to end (a few steps) on tiny data in its real source's format."""

from __future__ import annotations

import json

import pytest
from recipe_helpers import RECIPES, run, tiny


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_a_few_steps(recipe, tiny_data, tmp_path):
    steps = ["trainer.fast_dev_run=1", "sample.tokens=8"]
    summary = run(tiny(recipe, tiny_data, tmp_path / recipe, *steps))
    assert summary.steps == 1
    assert any(k.startswith("train/") for k in summary.metrics), summary.metrics
    assert any(k.startswith("val/") for k in summary.metrics), summary.metrics
    if recipe.endswith("_gpt"):
        assert summary.sample is not None and len(summary.sample) >= 8
    written = json.loads((tmp_path / recipe / "summary.json").read_text())
    assert written["name"] == recipe and written["steps"] == 1


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_trains_with_branch_output_modifiers(recipe, tiny_data, tmp_path):
    """``residual.*`` reaches every recipe's model: stochastic depth and LayerScale on every sub-layer."""
    import torch
    from torchvision.ops import StochasticDepth

    from resblocks import LayerScale

    from lightning.pytorch import Callback

    seen = {}

    class LookCallback(Callback):  # what the trained network is made of
        def on_fit_start(self, trainer, pl_module):
            seen["drop"] = [m.p for m in pl_module.modules() if isinstance(m, StochasticDepth)]
            seen["ls"] = [m for m in pl_module.modules() if isinstance(m, LayerScale)]

    # A small learning rate: two full-size steps on the tiny data already give NaN for ResNet-50 with or without them.
    overrides = ["trainer.max_steps=2", "optim.lr=1e-4", "sample.tokens=0", "residual.drop_path_rate=0.2",
                 "residual.layer_scale_init=0.01"]
    summary = run(tiny(recipe, tiny_data, tmp_path / recipe, *overrides), callbacks=[LookCallback()])
    losses = [v for k, v in summary.metrics.items() if k.endswith("/loss")]
    assert summary.steps == 2 and losses and torch.isfinite(torch.tensor(losses)).all(), summary.metrics
    assert seen["ls"] and max(seen["drop"]) == pytest.approx(0.2), seen["drop"]  # the last block's rate
