"""``python -m benchmarks.text_references``: the majority-class and char n-gram references on a recipe's own split.

The real numbers are in docs/training.md; here the tiny plays (whose every line names its play's genre) check
that the references read exactly the recipe's passages and labels, that the n-gram model learns what is there to
learn, and the one-line errors.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import text_references as refs


def test_references_on_the_recipes_split(tiny_data: dict[str, Path], tmp_path: Path) -> None:
    from recipes.data import build_datamodule

    out = tmp_path / "refs.json"
    assert refs.main(["--set", f"data.path={tiny_data['plays']}", "--C", "1", "10", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    # The recipe's DataModule, built here by hand with the recipe's settings (256-char passages, data seed 0).
    splits, names = build_datamodule("shakespeare_genre", path=str(tiny_data["plays"]), block_size=256).load_examples()
    assert got["classes"] == names == ["comedies", "tragedies"]
    assert got["sizes"] == {s: len(labels) for s, (_, labels) in splits.items()}
    label = Counter(splits["train"][1]).most_common(1)[0][0]
    for split, (_, labels) in splits.items():
        assert got["majority"][split] == pytest.approx(labels.count(label) / len(labels))
    # Every line names its genre ("..., in the comedies."): n-grams of it separate the unseen test plays.
    ngr = got["char_ngrams"]
    assert ngr["test"] == 1.0 and ngr["C"] in (1.0, 10.0) and [f["C"] for f in ngr["by_C"]] == [1.0, 10.0]
    assert ngr["val"] == max(f["val"] for f in ngr["by_C"])


def test_speaker_label_reaches_the_references(tiny_data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "refs.json"
    argv = ["--set", f"data.path={tiny_data['plays']}", "--set", "data.label=speakers", "--set", "data.block_size=64"]
    assert refs.main([*argv, "--C", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["classes"] == ["0 speakers", "1 speaker", "2 speakers", "3+ speakers"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ngrams", "3", "2"], "--ngrams: 3 2; valid: 1 <= MIN <= MAX"),
        (["--C", "0"], "--C: [0.0]; valid: values > 0"),
        (["--set", "data.path"], "--set: 'data.path'; valid: KEY=VALUE"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        refs.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_recipe_that_is_not_text_classification_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        refs.main(["--recipe", "shakespeare_gpt"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: --recipe: 'shakespeare_gpt' is not a text-classification")
    assert err.endswith("valid: shakespeare_genre, shakespeare_speakers") and len(err.splitlines()) == 1
