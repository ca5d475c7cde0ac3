"""torch.hub entry points: one per registered resblocks model, and ``model(name, **options)`` for any.

>>> import torch
>>> net = torch.hub.load("path/to/resblocks", "cifar_resnet56", source="local", shortcut="laurel_rw", num_classes=10)
>>> vit = torch.hub.load("path/to/resblocks", "model", "vit_fmnist", source="local", num_classes=10)

Options are the builder's (``torch.hub.help(repo, "cifar_resnet56")`` lists them), checked by the registry: a
wrong name or option, or a missing required one, is a one-line ``resblocks.ConfigError``. No pretrained
weights exist yet, so ``pretrained=True`` is refused.
"""

from __future__ import annotations

import inspect as _inspect

import resblocks as _resblocks

dependencies = ["torch"]  # torchvision too for drop_path_rate > 0 (stochastic depth)


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        raise _resblocks.ConfigError(f"pretrained: resblocks ships no pretrained weights for {name!r}; valid: False")


def model(name: str, *, pretrained: bool = False, **options):  # noqa: ANN201, ANN003
    """Any registered resblocks model by name: ``model("cifar_resnet56", num_classes=10, shortcut="laurel_rw")``."""
    _no_weights(name, pretrained)
    return _resblocks.build_model(name, **options)


def _entry(name: str):  # noqa: ANN202
    def entry(*, pretrained: bool = False, **options):  # noqa: ANN202, ANN003
        _no_weights(name, pretrained)
        return _resblocks.build_model(name, **options)

    doc = (_resblocks.MODELS.get(name).__doc__ or name).strip().splitlines()[0]
    options = _resblocks.MODELS.options(name).items()
    listed = ", ".join(k if v is _inspect.Parameter.empty else f"{k}={v!r}" for k, v in options)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"{doc}\n\nOptions (required ones without a default): {listed}."
    return entry


for _name in _resblocks.list_models():
    globals()[_name] = _entry(_name)
del _name
