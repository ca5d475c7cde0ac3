"""The BPE language-model recipe reports bits per character, comparable with the char model's loss / ln 2."""

from __future__ import annotations

import math

import pytest
from recipe_helpers import run, tiny


def test_bpe_recipe_logs_bits_per_character(tiny_data, tmp_path):
    from recipes.data import ShakespeareData

    steps = ["trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_batches=2", "sample.tokens=4"]
    summary = run(tiny("shakespeare_bpe_gpt", tiny_data, tmp_path / "bpe", *steps))
    # The same DataModule by hand (the tokenizer comes from the same cache): characters per val token.
    dm = ShakespeareData(path=str(tiny_data["plays"]), tokenizer="bpe", vocab_size=300, block_size=64)
    dm.setup("fit")
    assert dm.chars_per_token > 1.5  # BPE merges on these plays: well over one character per token
    m = summary.metrics
    assert m["val/bpc"] == pytest.approx(m["val/loss"] / math.log(2) / dm.chars_per_token, rel=1e-5)


def test_char_recipe_bits_per_character_is_loss_over_ln2(tiny_data, tmp_path):
    steps = ["trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_batches=2", "sample.tokens=0"]
    m = run(tiny("shakespeare_gpt", tiny_data, tmp_path / "char", *steps)).metrics
    assert m["val/bpc"] == pytest.approx(m["val/loss"] / math.log(2), rel=1e-6)
