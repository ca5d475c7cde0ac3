"""Every compatibility check between the parts of a residual sub-layer, in one place and one message style.

A rule, a branch, a norm placement and the branch-output modifiers are chosen independently; most
combinations are valid. The few that are not are refused here with a one-line :class:`ConfigError`
``key: problem; valid: choices``, at build time, before anything trains:

* a rule that does not support the tensor layout (DeepNorm on images) -> :func:`check_layout`;
* a rule defined for one norm placement (DeepNorm: ``post_ln``) placed in another -> :func:`check_residual`;
* two "starts at zero" mechanisms on one branch (ReZero's gate, a zero LayerScale, a zero-initialised
  last layer): with two zero factors neither gets a gradient and the branch never trains;
* branch-output modifier values out of range (stochastic-depth rate, LayerScale init).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def check_layout(name: str, layouts: tuple[str, ...], layout: str) -> None:
    """The rule ``name`` (as shown to the user) supports ``layouts``; refuse a site of another ``layout``."""
    if layout not in layouts:
        raise ConfigError(f"shortcut: {name} does not support {layout} layout; valid: {', '.join(layouts)}")


def check_modifiers(drop_path_rate: float, layer_scale_init: float | None) -> None:
    """``drop_path_rate`` in [0, 1), ``layer_scale_init`` None or a finite float >= 0."""
    if not (isinstance(drop_path_rate, (int, float)) and 0.0 <= drop_path_rate < 1.0):
        raise ConfigError(f"residual.drop_path_rate: {drop_path_rate!r}; valid: a float in [0, 1)")
    if layer_scale_init is not None and not (
        isinstance(layer_scale_init, (int, float)) and math.isfinite(layer_scale_init) and layer_scale_init >= 0
    ):
        raise ConfigError(f"residual.layer_scale_init: {layer_scale_init!r}; valid: null or a finite float >= 0")


def check_residual(rule: Any, branch: Any, *, placement: str | None, branch_out: Any = None) -> None:
    """The checks between a built rule, its branch, the sub-layer's norm placement and its modifiers.

    ``placement`` names what the sub-layer's norm slots express (``pre_ln``, ..., or ``pre_act`` /
    ``post_act`` for conv blocks, whose norms are fixed); ``None`` when a user wires the slots by hand.
    ``branch_out`` is the modifiers' module; a part of it that starts at zero says so with
    ``starts_at_zero`` (a LayerScale initialised to 0).
    """
    name = type(rule).__name__
    required = getattr(rule, "requires_norm", None)
    if required is not None and placement is not None and placement != required:
        raise ConfigError(f"norm: {placement!r} does not suit shortcut {name}; valid: {required}")
    modifiers = branch_out.modules() if branch_out is not None else ()
    zeros = [
        what
        for what, at_zero in (
            (f"shortcut {name} starts its gate at zero", getattr(rule, "gates_branch_at_zero", False)),
            ("the LayerScale starts at zero", any(getattr(m, "starts_at_zero", False) for m in modifiers)),
            ("the branch's last layer is zero-initialised", getattr(branch, "zero_init_last", False)),
        )
        if at_zero
    ]
    if zeros and not getattr(rule, "carries_stream", True):
        raise ConfigError(
            f"shortcut: {name} passes only F(x) on, and {zeros[0]}: the sub-layer outputs zeros and nothing "
            "before it would ever get a gradient. valid: a branch that does not start at zero (e.g. zero_init_last=false)"
        )
    if len(zeros) > 1:
        raise ConfigError(
            f"shortcut: {' and '.join(zeros)}; neither would ever get a gradient. "
            "valid: one starting-at-zero mechanism per branch (e.g. zero_init_last=false)"
        )


__all__ = ["check_layout", "check_modifiers", "check_residual"]
