"""What each task needs of the network and what it logs, known before anything is imported or built.

The task follows from the dataset (:func:`recipes.data.task_of`); the LightningModule that trains it is
chosen the same way in :func:`recipes.build.build_module`. Two checks of the config use this table
before the DataModule is constructed (so before Lightning is imported):

* :func:`check_model_fits_data`: an image network on text, a classifier on language-model data, ...
  fail in one line rather than at the first forward pass, after the run directory was made;
* :func:`check_monitor`: ``checkpoint.monitor`` must be a metric the run logs, else Lightning's
  ``ModelCheckpoint`` fails at its first save (or a best checkpoint is never written).

``tests/recipes/test_tasks.py`` checks the table against what the modules really log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from resblocks.errors import ConfigError


@dataclass(frozen=True)
class Task:
    """A task: what its network takes, the builder options such a network has / lacks, the metrics it logs."""

    title: str
    inputs: str
    needs: tuple[str, ...]
    lacks: tuple[str, ...]
    train: tuple[str, ...]  # logged as train/<name>
    val: tuple[str, ...]  # logged as val/<name> (and test/<name>)
    top5: str | None = None  # a metric logged (train and val) only with at least 100 classes


TASKS = {
    "image_classification": Task(
        "image classification", "images", needs=("in_chans", "num_classes"), lacks=("vocab_size",),
        train=("loss", "acc"), val=("loss", "acc"), top5="acc5",
    ),
    "language_model": Task(
        "language modelling", "token ids, predicting the next token", needs=("vocab_size",),
        lacks=("num_classes",), train=("loss",), val=("loss", "ppl", "bpc"),
    ),
    "text_classification": Task(
        "text classification", "token ids, predicting a class", needs=("vocab_size", "num_classes"),
        lacks=("in_chans",), train=("loss", "acc"), val=("loss", "acc"), top5="acc5",
    ),
    "masked_image_modelling": Task(
        "masked image modelling", "images, reconstructing masked patches", needs=("in_chans", "mask_ratio"),
        lacks=("vocab_size", "num_classes"), train=("loss",), val=("loss",),
    ),
}  # fmt: skip
# Tasks a dataset's batches serve besides its own: labelled images pre-train an MAE too (labels unused, except by
# the frozen-feature evaluation).
ALSO_SERVES = {"image_classification": ("masked_image_modelling",)}
TOP5_CLASSES = 100  # recipes.modules.classification logs top-5 accuracy from this many classes
# Logged by the callbacks whatever the task (recipes.tracking.callbacks.TrainingMonitor), and Lightning's own counters.
RUN_METRICS = ("lr", "perf/samples_per_sec", "perf/tokens_per_sec", "step", "epoch")


def task_for(data_name: str, model_options: Iterable[str] | None = None) -> Task:
    """The task a run of ``data_name`` trains: the dataset's own, or one it also serves that the network
    (its builder's ``model_options``) fits, e.g. an MAE on Fashion-MNIST."""
    from recipes.data import task_of

    try:
        own = task_of(data_name)
    except ValueError as e:  # unknown dataset: one line with the valid names
        raise ConfigError(str(e)) from e
    if model_options is not None:
        accepted = set(model_options)
        for name in (own, *ALSO_SERVES.get(own, ())):
            if _fits(TASKS[name], accepted):
                return TASKS[name]
    return TASKS[own]


def logged_metrics(task: Task, num_classes: int | None = None, grad_norms: bool = False) -> list[str]:
    """Metric names a run of ``task`` logs during training (``num_classes`` None: not known yet); test/ metrics
    come after training, so there is nothing to monitor in them."""
    top5 = [task.top5] if task.top5 and (num_classes is None or num_classes >= TOP5_CLASSES) else []
    out = [f"train/{m}" for m in (*task.train, *top5)] + [f"val/{m}" for m in (*task.val, *top5)]
    return out + list(RUN_METRICS) + (["grad_norm/total", "grad_norm/<layer>"] if grad_norms else [])


def check_monitor(
    monitor: str | None,
    data_name: str,
    num_classes: int | None = None,
    grad_norms: bool = False,
    model_options: Iterable[str] | None = None,
    extra: Iterable[str] = (),
) -> None:
    """``checkpoint.monitor`` is null or a metric this run logs (``extra``: metrics its callbacks add)."""
    if monitor is None:
        return
    task = task_for(data_name, model_options)
    valid = logged_metrics(task, num_classes, grad_norms) + list(extra)
    if monitor in valid or (grad_norms and monitor.startswith("grad_norm/")):
        return
    why = f"{task.title} (data {data_name!r}) does not log it"
    if task.top5 and monitor.endswith(f"/{task.top5}") and num_classes is not None:
        why = f"{task.top5} is logged with at least {TOP5_CLASSES} classes, data {data_name!r} has {num_classes}"
    raise ConfigError(f"checkpoint.monitor: {monitor!r}, but {why}; valid: {', '.join(valid)}, or null")


def check_model_fits_data(
    model_name: str, options: Iterable[str], data_name: str, fitting: Iterable[tuple[str, Iterable[str]]]
) -> None:
    """The network ``model_name`` (builder ``options``) can learn the task of ``data_name``.

    ``fitting``: all registered model names with their options, to list the ones that would fit.
    """
    accepted = set(options)
    task = task_for(data_name, accepted)
    if _fits(task, accepted):
        return
    takes = next((t for t in TASKS.values() if _fits(t, accepted)), None)
    what = f"takes {takes.inputs} ({takes.title})" if takes else "fits no task here"
    good = [name for name, opts in fitting if _fits(task, set(opts))]
    shown = ", ".join(good[:8]) + (", ..." if len(good) > 8 else "")
    raise ConfigError(
        f"model: {model_name!r} {what}, but data {data_name!r} is for {task.title} ({task.inputs}); "
        f"valid: model=NAME for {task.title}, e.g. {shown}"
    )


def _fits(task: Task, options: set[str]) -> bool:
    return all(o in options for o in task.needs) and not any(o in options for o in task.lacks)
