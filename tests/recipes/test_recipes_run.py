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
