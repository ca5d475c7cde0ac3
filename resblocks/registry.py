"""Name -> constructor registries (timm-style decorator), with one-line errors.

Configs choose blocks, shortcuts, norms and models by registry name, never by import path.
``Registry.build`` checks option names against the constructor's signature before calling it,
so a typo fails at once with the list of valid options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A named collection of constructors of one kind (``"shortcut"``, ``"model"``, ...)."""

    def __init__(self, kind: str, reserved: tuple[str, ...] = ()) -> None:
        self.kind = kind
        # Arguments the framework passes itself (e.g. the Site); users may not set them.
        self.reserved = frozenset(reserved)
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@SHORTCUTS.register("identity")``."""

        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._entries:
                raise ConfigError(f"{self.kind}: name {key!r} registered twice")
            self._entries[key] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"{self.kind}: unknown name {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def options(self, name: str) -> dict[str, Any]:
        """User-settable keyword options of ``name`` and their defaults (``inspect.Parameter.empty`` if required)."""
        fn = self.get(name)
        target = fn.__init__ if inspect.isclass(fn) else fn
        params = inspect.signature(target).parameters.values()
        options = {
            p.name: p.default
            for p in params
            if p.name not in ("self", *self.reserved) and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }
        # A constructor that passes ``**kwargs`` on to a part (a conv block to its branch) says which
        # options those are with a ``branch_options()`` classmethod, so they are listed and checked too.
        if any(p.kind is p.VAR_KEYWORD for p in params) and hasattr(fn, "branch_options"):
            options.update(fn.branch_options())
        return options

    def check_options(self, name: str, options: Mapping[str, Any]) -> None:
        valid = self.options(name)
        for key in options:
            if key not in valid:
                choices = ", ".join(sorted(valid)) or "(none)"
                raise ConfigError(f"{self.kind}.{key}: unknown option for {self.kind} {name!r}; valid options: {choices}")

    def check_required(self, name: str, args: tuple[Any, ...], options: Mapping[str, Any]) -> None:
        """A required option that neither ``args`` nor ``options`` gives is a one-line error naming it
        (not the constructor's bare ``TypeError``); reserved arguments are the framework's to pass."""
        sig = inspect.signature(self.get(name))
        try:
            given = sig.bind_partial(*args, **options).arguments
        except TypeError:  # too many positional arguments: the call itself says so
            return
        for p in sig.parameters.values():
            required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and p.name not in given and p.name not in self.reserved:
                ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "value")
                why = f"missing (required by {self.kind} {name!r})"
                raise ConfigError(f"{self.kind}.{p.name}: {why}; valid: {p.name}=<{ann}>")

    def build(self, name: str, *args: Any, **options: Any) -> Any:
        self.check_options(name, options)
        self.check_required(name, args, options)
        return self.get(name)(*args, **options)

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{name: {option: default}}`` for listings and ``--help``."""
        return {n: self.options(n) for n in self.names()}
