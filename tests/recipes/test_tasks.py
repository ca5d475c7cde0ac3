"""The task table (recipes/tasks.py) that config validation uses is what the modules really do: the metrics each
task logs, and the networks that fit it."""

from __future__ import annotations

import pytest
from recipe_helpers import csv_rows, run, tiny

import resblocks
from recipes.data import dataset_names, task_of
from recipes.tasks import ALSO_SERVES, TASKS, check_model_fits_data, logged_metrics


@pytest.mark.parametrize(
    ("recipe", "task"),
    [("shakespeare_gpt", "language_model"), ("fmnist_resnet20", "image_classification"),
     ("shakespeare_genre", "text_classification"), ("fmnist_mae", "masked_image_modelling")],
)  # fmt: skip
def test_the_table_names_the_metrics_each_task_logs(recipe, task, tiny_data, tmp_path):
    steps = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null",
             "trainer.log_every_n_steps=1", "trainer.limit_val_batches=1", "checkpoint.monitor=null", "sample.tokens=0",
             "+model.depth=1" if recipe.endswith("_gpt") else "trainer.limit_train_batches=2"]  # fmt: skip
    if recipe in ("fmnist_resnet20", "fmnist_mae"):
        steps = [s for s in steps if not s.startswith("trainer.val_check_interval")]
    run(tiny(recipe, tiny_data, tmp_path, *steps))
    logged = {k for row in csv_rows(tmp_path) for k, v in row.items() if v and k.startswith(("train/", "val/"))}
    expected = {m for m in logged_metrics(TASKS[task], num_classes=10) if m.startswith(("train/", "val/"))}
    assert logged == expected
    assert any(row.get("lr") for row in csv_rows(tmp_path))


def test_every_dataset_has_a_task_and_every_model_fits_one():
    own = {task_of(name) for name in dataset_names()}
    assert own | {t for o in own for t in ALSO_SERVES.get(o, ())} == set(TASKS)
    fitting = [(n, resblocks.MODELS.options(n)) for n in resblocks.MODELS.names()]
    for name, options in fitting:
        fits = []
        for data_name in ("shakespeare", "fmnist", "shakespeare_genre"):
            try:
                check_model_fits_data(name, options, data_name, fitting)
                fits.append(data_name)
            except ValueError:
                pass
        assert len(fits) == 1, (name, fits)  # exactly one task per network
