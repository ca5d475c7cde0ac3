"""Data layer of the training recipes: sources, tokenizers, augmentation and LightningDataModules.

``build_datamodule("cifar10", batch_size=256)`` is the entry point for the Hydra glue;
``DATASETS`` maps registry names to DataModule classes.

Importing this package is cheap: the DataModule classes (which need Lightning, ~4 s to import)
and ``datasets``/``tokenizers`` are only imported when first used.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ..values import check_types, init_chain, option_hints
from .sources import DataError, DataNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import lightning.pytorch as pl

    from .image_data import CIFAR10Data, CIFAR100Data, FashionMNISTData, ImageClassificationData, ImageNetData
    from .lm_data import LanguageModelData, ShakespeareData, TextFilesData, TinyStoriesData, WikiText103Data
    from .text_cls_data import ShakespeareGenreData, TextClassificationData

# name -> "module:Class"; resolved on first access so `import recipes.data` stays light.
_REGISTRY = {
    "fmnist": "image_data:FashionMNISTData",
    "cifar10": "image_data:CIFAR10Data",
    "cifar100": "image_data:CIFAR100Data",
    "imagenet": "image_data:ImageNetData",
    "shakespeare": "lm_data:ShakespeareData",
    "text_files": "lm_data:TextFilesData",
    "tinystories": "lm_data:TinyStoriesData",
    "wikitext103": "lm_data:WikiText103Data",
    "shakespeare_genre": "text_cls_data:ShakespeareGenreData",
}
# The task each DataModule file's data is for (recipes.tasks: which networks fit it, which metrics it logs).
_TASKS = {"image_data": "image_classification", "lm_data": "language_model", "text_cls_data": "text_classification"}
_CLASSES = {
    "ImageClassificationData": "image_data",
    "FashionMNISTData": "image_data",
    "CIFAR10Data": "image_data",
    "CIFAR100Data": "image_data",
    "ImageNetData": "image_data",
    "LanguageModelData": "lm_data",
    "ShakespeareData": "lm_data",
    "TextFilesData": "lm_data",
    "TinyStoriesData": "lm_data",
    "WikiText103Data": "lm_data",
    "TextClassificationData": "text_cls_data",
    "ShakespeareGenreData": "text_cls_data",
}

__all__ = [
    "DATASETS",
    "CIFAR10Data",
    "CIFAR100Data",
    "DataError",
    "DataNotFoundError",
    "FashionMNISTData",
    "ImageClassificationData",
    "ImageNetData",
    "LanguageModelData",
    "ShakespeareData",
    "ShakespeareGenreData",
    "TextClassificationData",
    "TextFilesData",
    "TinyStoriesData",
    "WikiText103Data",
    "build_datamodule",
    "dataset_names",
    "options",
    "task_of",
]


def _load(spec: str) -> type:
    module, cls = spec.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def dataset_names() -> list[str]:
    """Registry names, without importing any DataModule."""
    return list(_REGISTRY)


def task_of(name: str) -> str:
    """The task of dataset ``name`` (``image_classification``, ``language_model``, ``text_classification``),
    without importing its DataModule."""
    if name not in _REGISTRY:
        raise ValueError(f"data.name: unknown dataset '{name}'; valid: {', '.join(_REGISTRY)}")
    return _TASKS[_REGISTRY[name].split(":")[0]]


def options(cls: type) -> list[str]:
    """Keyword options a DataModule accepts, following ``**kwargs`` up its base classes."""
    names: list[str] = []
    for init in init_chain(cls):
        names += [
            p.name
            for p in inspect.signature(init).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.name not in names
        ]
    return sorted(names)


def build_datamodule(name: str, **kwargs: Any) -> pl.LightningDataModule:
    """The DataModule registered as ``name`` built with ``kwargs``; unknown names/options and values of the
    wrong type (by the constructors' annotations) raise a one-line ``ValueError`` naming the key."""
    if name not in _REGISTRY:
        raise ValueError(f"data.name: unknown dataset '{name}'; valid: {', '.join(_REGISTRY)}")
    cls = _load(_REGISTRY[name])
    valid = options(cls)
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"data: unknown option '{key}' for '{name}'; valid options: {', '.join(valid)}")
    check_types(option_hints(init_chain(cls)), kwargs, "data")
    return cls(**kwargs)


def __getattr__(attr: str) -> Any:
    # PEP 562: DATASETS and the classes import Lightning only when someone asks for them.
    if attr == "DATASETS":
        datasets = {name: _load(spec) for name, spec in _REGISTRY.items()}
        globals()["DATASETS"] = datasets
        return datasets
    if attr in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[attr]}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


if TYPE_CHECKING:  # pragma: no cover
    DATASETS: dict[str, type[pl.LightningDataModule]]
