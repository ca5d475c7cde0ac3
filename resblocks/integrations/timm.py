"""Every resblocks image model in timm's registry as ``resblocks_<name>``, with timm's model interface.

>>> import resblocks, timm  # importing timm (before or after resblocks) registers the models
>>> model = timm.create_model("resblocks_cifar_resnet20", shortcut="laurel_rw")  # num_classes=10 (CIFAR-10)
>>> backbone = timm.create_model("resblocks_resnet50", features_only=True, out_indices=(2, 3, 4))

``import resblocks`` does not import timm: :mod:`resblocks.integrations` imports this module when timm is
imported (at once if it already is). Models are built by timm's ``build_model_with_cfg`` with a
``pretrained_cfg`` per preset describing the data it is for (CIFAR presets 3x32x32 with CIFAR-10's
statistics, ``vit_fmnist`` 1x28x28 with Fashion-MNIST's, ImageNet nets 3x224x224), so ``num_classes``
defaults to that data's and ``timm.data.resolve_data_config(model=model)`` gives its input size, mean and
std; ``features_only=True`` wraps the model in timm's ``FeatureGetterNet`` (the model's own
``forward_intermediates``, so LAuReL-PA still sees its earlier activations). timm's argument names map to
the library's: ``drop_rate`` -> ``head_drop_rate``, ``img_size`` -> ``image_size`` (ViT), ``global_pool``
(ViT: ``token``/``avg`` -> ``pool``). Everything else goes to the resblocks builder, which rejects unknown
options with the list of valid ones. resblocks ships no pretrained weights: ``pretrained=True`` is refused.
Text models (GPT, the text classifier) are not image models and are not registered.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, get_pretrained_cfg, is_model, register_model
from torch import nn

from ..errors import ConfigError
from ..models import MODELS

PREFIX = "resblocks_"

# What each preset is for: input size and the train split's channel statistics (pixels / 255; the numbers
# recipes/data/augment.py normalises with). No resize or crop for the 28/32-pixel datasets (crop_pct 1).
DATA: dict[str, dict[str, Any]] = {
    "fashion_mnist": dict(input_size=(1, 28, 28), mean=(0.2860,), std=(0.3530,), num_classes=10, crop_pct=1.0),
    "cifar10": dict(
        input_size=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        num_classes=10,
        crop_pct=1.0,
    ),
    "imagenet": dict(
        input_size=(3, 224, 224), mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, num_classes=1000, crop_pct=0.875
    ),
}

# The generic builder behind each registered image model -> its data (None: the ViT's, from its defaults),
# the names of its first conv and classifier, and the final map's stride (None: tokens, no pool size).
FAMILIES: dict[str, tuple[str | None, str, str, int | None]] = {
    "cifar_resnet": ("cifar10", "stem.conv1", "fc", 4),
    "preact_resnet": ("cifar10", "stem.conv1", "fc", 4),
    "wide_resnet": ("cifar10", "stem.conv1", "fc", 4),
    "resnext": ("cifar10", "stem.conv1", "fc", 4),
    "resnet": ("imagenet", "stem.conv1", "fc", 32),
    "densenet_bc": ("cifar10", "features.conv0", "classifier", 4),
    "densenet": ("imagenet", "features.conv0", "classifier", 32),
    "ViT": (None, "patch_embed", "head", None),
}


def family(name: str) -> str | None:
    """The generic builder of a registered model (``cifar_resnet`` for ``cifar_resnet56``); None for text models."""
    fn = MODELS.get(name)
    base = getattr(getattr(fn, "builder", fn), "__name__", "")
    return base if base in FAMILIES else None


def image_models() -> list[str]:
    """The registered models timm gets: every image model (not GPT or the text classifier)."""
    return [n for n in MODELS.names() if family(n) is not None]


def default_cfg(name: str) -> dict[str, Any]:
    """The ``pretrained_cfg`` of model ``name``: no weights, the input and statistics of the data it is for."""
    data, first_conv, classifier, stride = FAMILIES[family(name)]  # type: ignore[index]
    opts = MODELS.options(name)
    extra: dict[str, Any] = {}
    if data is None:  # a ViT: a fixed input size, its defaults' (1x28x28: Fashion-MNIST, else CIFAR-10)
        size, chans = opts["image_size"], opts["in_chans"]
        data = "fashion_mnist" if (chans, size) == (1, 28) else "cifar10"
        extra = dict(input_size=(chans, size, size), fixed_input_size=True)
    cfg = dict(DATA[data], **extra)
    if stride is not None:
        cfg["pool_size"] = tuple(s // stride for s in cfg["input_size"][1:])
    doc = (MODELS.get(name).__doc__ or name).strip().splitlines()[0]
    return dict(
        url="", **cfg, interpolation="bilinear", first_conv=first_conv, classifier=classifier,
        license="mit", description=doc,
    )


def _build(name: str, *, device: Any = None, dtype: torch.dtype | None = None, **kwargs: Any) -> nn.Module:
    """``MODELS.build(name, ...)`` with timm's argument names translated (see the module docstring)."""
    if "drop_rate" in kwargs:
        kwargs["head_drop_rate"] = kwargs.pop("drop_rate")
    vit = family(name) == "ViT"
    pool = kwargs.pop("global_pool", None) if vit else None
    if vit and "img_size" in kwargs:
        size = kwargs.pop("img_size")
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if h != w:
            raise ConfigError(f"img_size: {tuple(size)}; valid: a square size (the ViT's image_size)")
        kwargs["image_size"] = int(h)
    if pool not in (None, ""):
        kwargs["pool"] = {"token": "cls", "avg": "mean"}.get(pool, pool)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = MODELS.build(name, **kwargs)
    if pool == "":
        model.reset_classifier(model.num_classes, "")
    return model if dtype is None else model.to(dtype)


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ConfigError(f"pretrained: resblocks ships no pretrained weights for {PREFIX}{name}; valid: False")
        # FeatureGetterNet: features through the model's forward_intermediates (all of them unless out_indices).
        feature_cfg = dict(feature_cls="getter", out_indices=None)
        builder = functools.partial(_build, name)
        return build_model_with_cfg(builder, PREFIX + name, pretrained=False, feature_cfg=feature_cfg, **kwargs)

    create.__name__ = create.__qualname__ = PREFIX + name
    create.__module__ = __name__
    create.__doc__ = f"resblocks model {name!r} (see resblocks.MODELS.options({name!r}))."
    return create


default_cfgs: dict[str, Any] = {}  # timm's register_model reads the entrypoint module's default_cfgs


def register_timm_models() -> list[str]:
    """Register every resblocks image model with timm (once each); returns the timm names."""
    names = []
    for name in image_models():
        fn = _entrypoint(name)
        if not (is_model(fn.__name__) and get_pretrained_cfg(fn.__name__) is not None and fn.__name__ in globals()):
            default_cfgs.update(generate_default_cfgs({fn.__name__: default_cfg(name)}))
            globals()[fn.__name__] = fn  # timm looks the entrypoint up in its module
            register_model(fn)
        names.append(fn.__name__)
    return names


TIMM_NAMES = register_timm_models()
