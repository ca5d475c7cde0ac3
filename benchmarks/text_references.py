"""Simple references for a text-classification recipe, on exactly the recipe's split: majority class and char n-grams.

    python -m benchmarks.text_references                                  # recipe shakespeare_genre
    python -m benchmarks.text_references --recipe shakespeare_genre --set data.block_size=128 --json out.json

The passages and labels come from the recipe's own DataModule (composed from ``conf/`` as ``recipes.train``
would, built by ``recipes.build.build_data``; its ``load_examples()`` splits by play and chunks), so the
references see the same train/val/test passages the Transformer does. Two references:

* **majority**: always the most frequent train label (and, for scale, the share of the test split's own
  largest class: the best any constant answer could do on it);
* **char n-grams**: TF-IDF of character n-grams (``--ngrams``, sublinear tf, fitted on train) and
  multinomial logistic regression (scikit-learn); ``C`` is chosen on val from ``--C``, then test is scored
  once with that ``C``. The fit is deterministic (lbfgs), so there is no seed to vary; the recipe's split
  does not depend on the run's ``seed`` either (``data.seed``, default 0).

Needs scikit-learn (the ``test`` extra). Prints one table and, with ``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def recipe_examples(recipe: str, overrides: Sequence[str] = ()) -> tuple[dict[str, tuple[list[str], list[int]]], list[str]]:
    """``({"train"|"val"|"test": (texts, labels)}, class_names)`` of ``recipe``'s DataModule with ``overrides``."""
    from recipes.build import build_data

    from .recipe import compose

    dm = build_data(compose(recipe, ["logger=none", *overrides]))
    if recipe not in text_recipes():
        print(f"error: --recipe: {recipe!r} is not a text-classification recipe; valid: {', '.join(text_recipes())}", file=sys.stderr)
        raise SystemExit(2)
    return dm.load_examples()


def text_recipes() -> list[str]:
    """The recipes whose data is a text-classification dataset (``recipes.data.task_of``)."""
    from recipes.data import task_of

    from .recipe import CONF, compose

    names = sorted(p.stem for p in (CONF / "recipe").glob("*.yaml"))
    return [r for r in names if task_of(compose(r, []).data.name) == "text_classification"]


def accuracy(pred: Sequence[int], labels: Sequence[int]) -> float:
    return sum(int(p == y) for p, y in zip(pred, labels)) / len(labels)


def majority(splits: dict[str, tuple[list[str], list[int]]]) -> dict[str, Any]:
    """Always the most frequent train label; ``test_largest``: the test split's own largest class share."""
    label = Counter(splits["train"][1]).most_common(1)[0][0]
    out: dict[str, Any] = {"label": label}
    for split in ("train", "val", "test"):
        out[split] = accuracy([label] * len(splits[split][1]), splits[split][1])
    out["test_largest"] = Counter(splits["test"][1]).most_common(1)[0][1] / len(splits["test"][1])
    return out


def char_ngrams(
    splits: dict[str, tuple[list[str], list[int]]], ngrams: tuple[int, int] = (1, 5), cs: Sequence[float] = (0.3, 1, 3, 10, 30, 100)
) -> dict[str, Any]:
    """TF-IDF char n-grams + logistic regression; ``C`` picked on val accuracy, test scored with that ``C``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=ngrams, sublinear_tf=True, min_df=2, lowercase=False)
    x = {"train": vec.fit_transform(splits["train"][0])}
    x.update({s: vec.transform(splits[s][0]) for s in ("val", "test")})
    fits = []
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x["train"], splits["train"][1])
        scores = {s: accuracy(clf.predict(x[s]).tolist(), splits[s][1]) for s in ("train", "val", "test")}
        fits.append({"C": c, **scores})
    best = max(fits, key=lambda f: f["val"])  # the first of equals: the smallest C
    return {
        "ngrams": list(ngrams), "features": len(vec.vocabulary_), "by_C": fits, "C": best["C"],
        "train": best["train"], "val": best["val"], "test": best["test"], "seconds": time.perf_counter() - start,
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.text_references", description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="shakespeare_genre", help="a text-classification recipe (default shakespeare_genre)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override, e.g. data.path=DIR; repeatable")
    p.add_argument("--ngrams", type=int, nargs=2, default=[1, 5], metavar=("MIN", "MAX"), help="char n-gram lengths (default 1 5)")
    p.add_argument("--C", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0, 30.0, 100.0], help="inverse regularisation strengths to try on val")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.ngrams[0] < 1 or args.ngrams[1] < args.ngrams[0]:
        p.error(f"--ngrams: {args.ngrams[0]} {args.ngrams[1]}; valid: 1 <= MIN <= MAX")
    if any(c <= 0 for c in args.C):
        p.error(f"--C: {args.C}; valid: values > 0")
    for item in args.set:
        if "=" not in item:
            p.error(f"--set: {item!r}; valid: KEY=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    splits, names = recipe_examples(args.recipe, args.set)
    sizes = {s: len(labels) for s, (_, labels) in splits.items()}
    maj = majority(splits)
    ngr = char_ngrams(splits, tuple(args.ngrams), args.C)
    print(f"{args.recipe} {' '.join(args.set)}: passages train {sizes['train']}, val {sizes['val']}, test {sizes['test']}; "
          f"{len(names)} classes ({', '.join(names)})")  # fmt: skip
    print(f"{'reference':<34} {'train':>7} {'val':>7} {'test':>7}")
    print(f"{'majority (' + names[maj['label']] + ')':<34} {maj['train']:7.2%} {maj['val']:7.2%} {maj['test']:7.2%}")
    print(f"{'test split largest class':<34} {'':>7} {'':>7} {maj['test_largest']:7.2%}")
    for f in ngr["by_C"]:
        mark = " <- C by val" if f["C"] == ngr["C"] else ""
        label = f"char {ngr['ngrams'][0]}-{ngr['ngrams'][1]}-grams TF-IDF + LR, C={f['C']:g}"
        print(f"{label:<34} {f['train']:7.2%} {f['val']:7.2%} {f['test']:7.2%}{mark}")
    print(f"n-gram features {ngr['features']:,}; fit + score {ngr['seconds']:.1f} s")
    if args.json is not None:
        report = {"recipe": args.recipe, "overrides": args.set, "sizes": sizes, "classes": names, "majority": maj, "char_ngrams": ngr}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
