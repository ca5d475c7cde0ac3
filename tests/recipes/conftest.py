"""Fixtures shared by the recipe tests."""

from __future__ import annotations

import pytest
from recipe_helpers import run, tiny

EVAL_GPT = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=2", "sample.tokens=0"]


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    """``last.ckpt`` of a tiny GPT trained 4 steps by ``recipes.train`` (``EVAL_GPT`` on the tiny plays); read it only."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *EVAL_GPT, "trainer.max_steps=4", "trainer.val_check_interval=4"))
    return run_dir / "checkpoints" / "last.ckpt"
