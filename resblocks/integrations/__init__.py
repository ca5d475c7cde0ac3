"""Optional bridges to other libraries, imported only when the library they bridge to is.

``import resblocks`` imports none of them, nor timm: it calls :func:`register_with_timm`, which registers
the models with timm at once if timm is already imported, and otherwise, if timm is installed, installs a
post-import hook that imports :mod:`resblocks.integrations.timm` right after timm's own import finishes.
So ``timm.create_model("resblocks_...")`` works in either import order, and a process that never imports
timm never pays for it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any


def _register_timm() -> None:
    try:
        importlib.import_module(f"{__name__}.timm")
    except Exception as e:  # never break the user's ``import timm``
        warnings.warn(
            f"resblocks: models not registered with timm ({type(e).__name__}: {e}); "
            "import resblocks.integrations.timm for the traceback",
            stacklevel=2,
        )


class _Loader(importlib.abc.Loader):
    """The module's own loader, plus a callback once its module has executed."""

    def __init__(self, loader: Any, callback: Callable[[], None]) -> None:
        self.loader, self.callback = loader, callback

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its real loader
        self.callback()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_source, ... of the real loader
        return getattr(self.loader, name)


class AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback`` once, right after the top-level module ``name`` has been imported."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the real finders below find the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self.callback)
        return spec


def register_with_timm() -> None:
    """Register the models with timm now if it is imported, else when it is (nothing if it is not installed)."""
    if "timm" in sys.modules:
        _register_timm()
    elif not any(isinstance(f, AfterImport) and f.name == "timm" for f in sys.meta_path):
        if importlib.util.find_spec("timm") is not None:
            sys.meta_path.insert(0, AfterImport("timm", _register_timm))


__all__ = ["AfterImport", "register_with_timm"]
