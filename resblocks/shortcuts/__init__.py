"""Shortcut rules: how a residual sub-layer merges its branch output F(x) with the stream x.

Build one by registry name: ``shortcut_factory("laurel_lr", rank=16)(Site(dim=256))``.
``SHORTCUTS.describe()`` lists every rule with its options.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..compat import check_layout
from ..errors import ConfigError
from ..registry import Registry
from .base import NO_DECAY_SUFFIXES, Hiddens, Shortcut, Site, channel_linear, channel_view, previous_activations

SHORTCUTS: Registry[Callable[..., Shortcut]] = Registry("shortcut", reserved=("site",))

ShortcutSpec = str | Mapping[str, Any]
ShortcutFactory = Callable[[Site], Shortcut]


def parse_spec(spec: ShortcutSpec, key: str = "shortcut") -> tuple[str, dict[str, Any]]:
    """``"identity"`` or ``{"name": "laurel_lr", "rank": 16}`` -> ``(name, options)``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        opts = dict(spec)
        if "name" not in opts:
            raise ConfigError(f"{key}.name: missing; valid: {', '.join(SHORTCUTS.names())}")
        return str(opts.pop("name")), opts
    raise ConfigError(f"{key}: expected a name or a mapping with 'name', got {type(spec).__name__}")


def shortcut_factory(spec: ShortcutSpec, **options: Any) -> ShortcutFactory:
    """Check the name and option names now; return ``site -> Shortcut`` for the model builder."""
    name, opts = parse_spec(spec)
    opts.update(options)
    SHORTCUTS.check_options(name, opts)
    for key, value in opts.items():  # no rule option means anything at NaN or infinity (gate_bias=nan: NaN at step 0)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"shortcut.{key}: {value}; valid: a finite number")
    cls = SHORTCUTS.get(name)

    def make(site: Site) -> Shortcut:
        check_layout(repr(name), cls.layouts, site.layout)
        return cls(site, **opts)

    make.shortcut_name = name  # type: ignore[attr-defined]
    make.shortcut_cls = cls  # type: ignore[attr-defined]
    return make


def as_factory(shortcut: ShortcutSpec | ShortcutFactory) -> ShortcutFactory:
    """Accept a spec (name or mapping) or an already-made factory; blocks and models take either."""
    if callable(shortcut) and not isinstance(shortcut, (str, Mapping)):
        return shortcut  # type: ignore[return-value]
    return shortcut_factory(shortcut)  # type: ignore[arg-type]


def _register_all() -> None:
    # Every module in this package registers its rules on import; discovering them keeps one
    # rule per small file without a central list to edit.
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")


_register_all()

__all__ = [
    "SHORTCUTS",
    "Hiddens",
    "NO_DECAY_SUFFIXES",
    "Shortcut",
    "ShortcutFactory",
    "ShortcutSpec",
    "Site",
    "as_factory",
    "channel_linear",
    "channel_view",
    "parse_spec",
    "previous_activations",
    "shortcut_factory",
]
