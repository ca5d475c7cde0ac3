"""What a configuration value may be: the range of a numeric option, finiteness, the type of an open option.

The schema dataclasses (``recipes.config``, ``recipes.modules.optim``) declare each numeric field's
valid values next to its default with :func:`ranged`; :func:`check_ranges` walks a config (or one
dataclass instance) against them. :func:`check_finite` refuses NaN and infinity anywhere in a config,
open mappings included (``model.*``, ``data.*``, ``shortcut.*``): no option of a model, a dataset or a
shortcut rule means anything at NaN (a ``shortcut.gate_bias=nan`` diverges at step 0).
:func:`check_types` checks the options of an open mapping against the annotations of the constructor
that takes them, so ``data.batch_size=abc`` names its key instead of failing somewhere inside.

Each problem is one :class:`~resblocks.errors.ConfigError` line, ``key: value; valid: ...``. Imports
nothing heavy: the checks run before Lightning, W&B or ``datasets`` are imported.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resblocks.errors import ConfigError

RANGE = "range"  # the dataclass field metadata key


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric option: inclusive (``ge``, ``le``) or exclusive (``gt``, ``lt``) bounds,
    special values outside them (``also``: value -> meaning), and whether null is allowed (``null``: its
    meaning, ``""`` for plain "or null"). Numbers are always finite; ``each`` checks every item of a list."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    also: tuple[tuple[Any, str], ...] = ()
    null: str | None = None
    each: bool = False

    def text(self) -> str:
        low = (">=", self.ge) if self.ge is not None else (">", self.gt) if self.gt is not None else None
        high = ("<=", self.le) if self.le is not None else ("<", self.lt) if self.lt is not None else None
        if low and high:
            bounds = f"{low[1]} {low[0].replace('>', '<')} x {high[0]} {high[1]}"
        elif low or high:
            bounds = "{} {}".format(*(low or high))
        else:
            bounds = "a finite number"
        extra = [f"or {value} {meaning}".rstrip() for value, meaning in self.also]
        if self.null is not None:
            extra.append(f"or null {self.null}".rstrip())
        return ", ".join([("each " if self.each else "") + bounds, *extra])

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.null is not None
        if any(value == special and type(value) is type(special) for special, _ in self.also):
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def check(self, key: str, value: Any) -> None:
        """One-line ``ConfigError`` unless ``value`` (every item, with ``each``) is valid."""
        items = value if self.each and isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not self.allows(item):
                text = self.text()
                if isinstance(item, float) and not math.isfinite(item) and text != "a finite number":
                    text = f"a finite number {text}"
                raise ConfigError(f"{key}: {_show(value)}; valid: {text}")


def check_range(key: str, value: Any, **bounds: Any) -> None:
    """:meth:`Range.check` of one value, for options outside the schema (a DataModule's own arguments)."""
    Range(**bounds).check(key, value)


def ranged(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, **bounds: Any) -> Any:
    """A dataclass field with its valid range: ``lr: float = ranged(1e-3, gt=0)``; ``factory`` for lists."""
    if factory is not None:
        return field(default_factory=factory, metadata={RANGE: Range(**bounds)})
    return field(default=default, metadata={RANGE: Range(**bounds)})


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (``Config`` or ``Config | None``), else None."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)


def check_ranges(values: Any, schema: type, prefix: str = "") -> None:
    """Check every :func:`ranged` field of ``schema`` (and of the dataclasses nested in it) in ``values``:
    a mapping (a plain config) or an instance of ``schema``."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(values, Mapping):
            if f.name not in values:
                continue
            value = values[f.name]
        else:
            value = getattr(values, f.name)
        nested = _dataclass_in(hints.get(f.name))
        if nested is not None and value is not None:
            check_ranges(value, nested, key)
        elif RANGE in f.metadata:
            f.metadata[RANGE].check(key, value)


def check_finite(tree: Any, prefix: str = "") -> None:
    """Refuse NaN and infinity anywhere in a plain config (dicts and lists, any depth)."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            check_finite(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            check_finite(v, f"{prefix}[{i}]")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"{prefix}: {tree}; valid: a finite number")


# ----------------------------------------------------------------------------- types of open options

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; None where the hint is not one this check understands (no opinion)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(a, value) for a in typing.get_args(hint)]
        return None if None in verdicts and not any(verdicts) else any(v for v in verdicts if v)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    return None


def _describe_hint(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe_hint(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) in (list, tuple, Sequence) or hint in (list, tuple):
        return "a list"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def option_hints(constructors: Sequence[Callable[..., Any]]) -> dict[str, Any]:
    """``{option: annotation}`` over ``constructors`` (a class's ``__init__`` chain; the first one wins), read
    from their signatures (a registered variant's own ``__signature__`` too). An annotation that does not
    resolve (a name imported only for type checkers) is left out: no check rather than a wrong one."""
    import sys

    hints: dict[str, Any] = {}
    for fn in constructors:
        namespace = dict(getattr(inspect.unwrap(fn), "__globals__", {}))
        if fn.__module__ in sys.modules:  # a wrapper's (a registered variant's) annotations are its builder's
            namespace.update(vars(sys.modules[fn.__module__]))
        for p in inspect.signature(fn).parameters.values():
            hint = p.annotation
            if isinstance(hint, str):
                try:
                    hint = eval(hint, namespace)  # the library's own annotations, not config text
                except (NameError, AttributeError, SyntaxError, TypeError):
                    continue
            hints.setdefault(p.name, hint)
    return hints


def check_types(hints: Mapping[str, Any], options: Mapping[str, Any], prefix: str) -> None:
    """One-line ``ConfigError`` for the first option whose value does not fit its annotation."""
    for key, value in options.items():
        if key in hints and _accepts(hints[key], value) is False:
            raise ConfigError(f"{prefix}.{key}: {_show(value)}; valid: {_describe_hint(hints[key])}")


def init_chain(cls: type) -> list[Callable[..., Any]]:
    """The ``__init__`` methods a class's keyword options reach, following ``**kwargs`` up its bases."""
    chain = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        chain.append(init)
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return chain
