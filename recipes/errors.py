"""How the entry points report a bad configuration: one line naming the key, the value and the valid choices.

Hydra's own errors (an unknown group option, a key not in the schema, a value of the wrong type, an
override it cannot parse) are multi-line; :func:`config_error_line` turns each into the same
one-line form as :class:`~resblocks.errors.ConfigError`. Tracebacks are for ``debug=true`` (or
``RESBLOCKS_DEBUG=1``, or Hydra's ``HYDRA_FULL_ERROR=1``) only.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence

CONFIG_EXIT = 2  # bad configuration (or data not found): nothing was built
FAILURE_EXIT = 1  # the run started and failed (bad data, divergence, a checkpoint that cannot be written)
DEBUG_ENV = "RESBLOCKS_DEBUG"
_DEBUG_ARG = re.compile(r"\+{0,2}debug=(true|1|yes|on)", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "on"}


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the message is one line with the step and the place.

    Defined here, not in :mod:`recipes.engine.divergence` (which needs Lightning), so the entry point can name it
    without importing Lightning before the config is checked.
    """


def debug_requested(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    """``debug=true`` among the overrides, else ``RESBLOCKS_DEBUG`` if set, else Hydra's ``HYDRA_FULL_ERROR``."""
    env = os.environ if env is None else env
    if any(_DEBUG_ARG.fullmatch(a) for a in argv):
        return True
    value = env.get(DEBUG_ENV)
    if value is None:
        value = env.get("HYDRA_FULL_ERROR", "")
    return value.strip().lower() in _TRUE


def describe(error: BaseException, limit: int = 300) -> str:
    """``"TypeName: message"`` on one line, the message cut at ``limit`` characters (for one-line reports)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:limit]}"


def _first_line(text: object) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _collapse(text: object) -> str:
    lines = []
    for line in str(text).splitlines():
        if line.startswith(("Config search path", "Set the environment variable")):
            break
        if line.strip():
            lines.append(" ".join(line.split()))
    return "; ".join(lines)


def _schema_keys(object_type: object) -> list[str]:
    return [f.name for f in dataclasses.fields(object_type)] if dataclasses.is_dataclass(object_type) else []


def config_error_line(error: BaseException) -> str:
    """One line for an error met while composing or checking the configuration."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = error.__cause__
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, name = str(error.missing_cfg_file).rpartition("/")
        return f"{group or 'config'}: unknown option {name!r}; valid: {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"override: {_collapse(error).split('; See https')[0]}; valid: key=value, group=option, +new.key=value"
    if cause is not None and getattr(cause, "full_key", None):
        key = cause.full_key
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            keys = _schema_keys(getattr(cause, "object_type", None))
            valid = ", ".join(keys) if keys else f"+{key}=VALUE adds a key this mapping lacks"
            return f"{key}: unknown key; valid: {valid}"
        wanted = re.search(r"converted to (\w+)|not a subclass of (\w+)", str(cause))
        if wanted:
            valid = f"a value of type {next(g for g in wanted.groups() if g)}"
        elif "Union[bool, str]" in str(cause):  # the fast-path switches: compile, channels_last, optim.fused
            valid = "auto, true, false"
        else:
            valid = "a value of the key's type"
        return f"{key}: {_first_line(cause)}; valid: {valid}"
    return " ".join(_collapse(error).split()) or type(error).__name__
