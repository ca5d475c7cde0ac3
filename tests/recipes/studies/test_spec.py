"""Study YAMLs: the shipped ones load, and a bad study config fails in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.studies.spec import list_studies, load_study, override_value
from resblocks.errors import ConfigError

GOOD = """
recipe: shakespeare_gpt
claim: b is better than a
seeds: 2
baseline: a
variants:
  a: {}
  b: {shortcut: laurel_rw, optim.lr: 0.002}
metrics: [{key: val/loss, goal: lower}]
checks: [{a: b, b: a, metric: val/loss, expect: less}]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def test_every_shipped_study_loads() -> None:
    for name in list_studies():
        spec = load_study(name)
        assert spec.baseline in spec.variants and spec.checks and len(spec.seeds) >= 3, name


def test_a_study_from_a_path(tmp_path: Path) -> None:
    spec = load_study(write(tmp_path, GOOD))
    assert spec.name == "mine" and spec.seeds == [0, 1]
    assert spec.variants["b"] == ["shortcut=laurel_rw", "optim.lr=0.002"]
    assert spec.runs() == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert spec.run_overrides("b", 1) == ["recipe=shakespeare_gpt", "shortcut=laurel_rw", "optim.lr=0.002", "seed=1"]
    assert spec.checks[0].describe() == "val/loss: b < a"


@pytest.mark.parametrize(
    "edit, message",
    [
        (("baseline: a", "baseline: c"), r"^study\.baseline: 'c'; valid: a, b$"),
        (("seeds: 2", "seeds: [1, 1]"), r"^study\.seeds: \[1, 1\]; valid: a count or a list of distinct integers$"),
        (("expect: less", "expect: lower"), r"^study\.checks\.expect: 'lower'; valid: less, greater"),
        (("{a: b, b: a,", "{a: b, b: z,"), r"^study\.checks\.b: 'z'; valid: a, b$"),
        (("metric: val/loss, expect", "metric: val/acc, expect"), r"^study\.checks\.metric: 'val/acc'; valid: val/loss$"),
        (("goal: lower", "goal: down"), r"^study\.metrics: .*valid: \{key: val/loss, goal: lower\|higher\}$"),
        (("claim: b", "clam: b"), r"^study\.clam: unknown key in mine\.yaml; valid: baseline, checks, claim"),
        (("recipe: shakespeare_gpt\n", ""), r"^study\.recipe: missing in mine\.yaml$"),
        (("a: {}", "a: [shortcut]"), r"^study\.variants\.a: 'shortcut' is not an override"),
    ],
)
def test_bad_study_configs_fail_in_one_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_study(write(tmp_path, GOOD.replace(*edit)))


def test_unknown_study_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"^study: unknown study 'nope'; valid: "):
        load_study("nope")


def test_override_values() -> None:
    assert [override_value(v) for v in (None, True, 0.5, [1, 2], "a b")] == ["null", "true", "0.5", "[1,2]", "'a b'"]
