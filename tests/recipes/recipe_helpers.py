"""Compose the real ``conf/`` in tests, and shrink any recipe to tiny local data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

import recipes.config  # noqa: F401  (registers the schema)

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
RECIPES = sorted(p.stem for p in (CONF / "recipe").glob("*.yaml"))

# Per recipe: where its tiny data is, and what must shrink for a CPU smoke run.
TINY_DATA = {
    "shakespeare_gpt": ("plays", []),
    "shakespeare_genre": ("plays", ["data.block_size=64"]),
    "shakespeare_speakers": ("plays", ["data.block_size=64"]),
    "shakespeare_bpe_gpt": ("plays", ["data.vocab_size=300"]),
    "fmnist_resnet20": ("fmnist", []),
    "fmnist_vit": ("fmnist", []),
    "fmnist_mae": ("fmnist", ["frozen.max_memory=16"]),
    "cifar10_resnet56": ("cifar10", []),
    "cifar10_preact_resnet164": ("cifar10", []),
    "imagenet_resnet50": ("imagenet", ["data.image_size=32", "data.num_workers=0"]),
    "tinystories_gpt": ("tinystories", ["data.block_size=32", "data.vocab_size=300", "data.num_workers=0"]),
}
CPU = [
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.strategy=auto",
    "trainer.sync_batchnorm=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def tiny(recipe: str, tiny_data: dict[str, Path], run_dir: Path, *extra: str) -> list[str]:
    """Overrides that run ``recipe`` on the tiny fixtures, on the CPU, logging to CSV in ``run_dir``."""
    source, more = TINY_DATA[recipe]
    return [
        f"recipe={recipe}",
        f"data.path={tiny_data[source]}",
        "data.batch_size=2",
        f"run_dir={run_dir}",
        "logger=csv",
        *CPU,
        *more,
        *extra,
    ]


def run(overrides: Sequence[str], callbacks: Sequence[object] = ()):
    """``recipes.train.train`` in this process (one Lightning import for the whole test session)."""
    from recipes.train import train

    return train(compose(overrides), callbacks=callbacks)


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    """Rows of every CSV-logger version under ``run_dir``, in order."""
    import csv

    rows: list[dict[str, str]] = []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows
