"""Every registered rule is listed where users look for it: README, docs/shortcuts.md, the shortcut benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from resblocks import SHORTCUTS

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("doc", ["README.md", "docs/shortcuts.md"])
def test_every_rule_is_documented(doc: str) -> None:
    text = (ROOT / doc).read_text()
    missing = [name for name in SHORTCUTS.names() if f"`{name}`" not in text]
    assert not missing, f"{doc} does not list {missing}"


def test_every_rule_has_a_row_in_the_shortcut_table() -> None:
    rows = [line for line in (ROOT / "docs/shortcuts.md").read_text().splitlines() if line.startswith("| `")]
    named = {line.split("`")[1] for line in rows}
    assert set(SHORTCUTS.names()) <= named


def test_the_shortcut_benchmark_measures_every_rule() -> None:
    from benchmarks.shortcuts import GOAL_VARIANTS, OTHER_VARIANTS

    measured = {v.spec["name"] for v in (*GOAL_VARIANTS, *OTHER_VARIANTS)} | {"identity"}  # identity: the reference
    assert measured == set(SHORTCUTS.names())
