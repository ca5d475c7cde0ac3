"""Lesion studies: delete residual sub-layers at test time and measure what the network still does.

Veit et al. 2016 ("Residual Networks Behave Like Ensembles of Relatively Shallow Networks", arXiv
1605.06431, Sec. 4) deleted single blocks of a trained ResNet at test time: the error rises only a little,
while deleting a layer of a plain net of the same kind (VGG) takes it to chance. Deleting a residual
sub-layer ``out = post(rule(F, s))`` (:class:`~resblocks.blocks.residual.Residual`, ``s = downsample(x)``)
removes its branch and keeps its shortcut: the rule receives ``F = 0``, so

* ``identity`` (and ``rezero``, ``layerscale``, ``decayed``, ``deepnorm``, ``projection``, LAuReL):
  ``out = post(rule(0, s))``, e.g. ``post(s)`` for the identity; where the block changes shape, ``s`` is
  the downsampled stream (option A's zero padding, option B's projection), as in Veit et al.;
* ``highway``: ``out = post((1 - T(x)) s)``, the carry path alone;
* ``none`` (the plain net, ``rule(F, s) = F``: there is no shortcut to keep): the sub-layer's output becomes
  its input ``x``, which exists only where the sub-layer keeps the shape; a plain sub-layer that changes the
  shape cannot be deleted (:class:`LesionError` at its forward).

Everything else runs as before: norms, activations, the branch itself (computed, then replaced by zeros, so
the lesion needs no knowledge of the branch's output shape), the ``hiddens`` record of LAuReL-PA. The
deletion is a forward hook, removed when the context ends.

>>> with lesion(model, [3]):            # sub-layer 3 (Site.index) deleted
...     accuracy = evaluate(model)
>>> results = lesion_study(model, evaluate)   # every block in turn, plus the intact baseline
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..blocks.residual import Residual
from ..errors import ConfigError
from ..shortcuts import SHORTCUTS


class LesionError(RuntimeError):
    """A sub-layer that cannot be deleted (a plain sub-layer that changes the shape of the stream)."""


def residual_sublayers(model: nn.Module) -> list[Residual]:
    """The ``Residual`` sub-layers of ``model`` in network (``Site.index``) order."""
    found = [m for m in model.modules() if isinstance(m, Residual)]
    return sorted(found, key=lambda r: r.site.index)


def keeps_no_stream(sublayer: Residual) -> bool:
    """Whether the sub-layer's rule drops the stream (``shortcut="none"``, the plain net)."""
    return isinstance(sublayer.shortcut, SHORTCUTS.get("none"))


def _zero_branch(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(output)


def _pass_input(sublayer: Residual) -> Callable[..., torch.Tensor]:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: torch.Tensor) -> torch.Tensor:
        x = args[0] if args else kwargs["x"]
        if x.shape != output.shape:
            raise LesionError(
                f"lesion: sub-layer {sublayer.site.index} has no shortcut (shortcut=none) and changes the shape "
                f"{list(x.shape)} -> {list(output.shape)}, so its output cannot become its input"
            )
        return x

    return hook


@contextlib.contextmanager
def delete_branch(sublayer: Residual) -> Iterator[Residual]:
    """Within the context, ``sublayer`` runs with its branch deleted (see the module docs); then as before."""
    if keeps_no_stream(sublayer):
        handle = sublayer.register_forward_hook(_pass_input(sublayer), with_kwargs=True)
    else:
        handle = sublayer.branch_out.register_forward_hook(_zero_branch)
    try:
        yield sublayer
    finally:
        handle.remove()


@contextlib.contextmanager
def lesion(model: nn.Module, indices: Iterable[int]) -> Iterator[list[Residual]]:
    """Delete the residual sub-layers of ``model`` whose ``Site.index`` is in ``indices``, within the context."""
    wanted = sorted(set(indices))
    by_index = {r.site.index: r for r in residual_sublayers(model)}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        valid = f"0..{max(by_index)}" if by_index else "none (no resblocks Residual sub-layers)"
        raise ConfigError(f"lesion: sub-layer(s) {missing} not in {type(model).__name__}; valid: {valid}")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(delete_branch(by_index[i])) for i in wanted]


@dataclass(frozen=True)
class LesionResult:
    """The metrics with one unit (a block, or a sub-layer) deleted; ``metrics`` empty and ``skipped`` saying
    why where it cannot be deleted."""

    unit: int  # the block index (or the sub-layer index with by="sublayer")
    indices: tuple[int, ...]  # the residual sub-layers deleted (Site.index)
    names: tuple[str, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    skipped: str = ""

    def get(self, key: str) -> float:
        return float(self.metrics.get(key, math.nan))


def lesion_units(model: nn.Module, by: str = "block") -> list[tuple[int, tuple[int, ...]]]:
    """``[(unit, sub-layer indices)]``: one unit per block (a Transformer block's two sub-layers together) or,
    with ``by="sublayer"``, one per residual sub-layer."""
    if by not in ("block", "sublayer"):
        raise ConfigError(f"lesion.by: {by!r}; valid: block, sublayer")
    units: dict[int, list[int]] = {}
    for r in residual_sublayers(model):
        units.setdefault(r.site.block if by == "block" else r.site.index, []).append(r.site.index)
    return [(u, tuple(ix)) for u, ix in sorted(units.items())]


def lesion_study(
    model: nn.Module,
    evaluate: Callable[[], Mapping[str, float]],
    *,
    by: str = "block",
    units: Sequence[tuple[int, Sequence[int]]] | None = None,
) -> tuple[dict[str, float], list[LesionResult]]:
    """``(intact metrics, [one LesionResult per unit])``: ``evaluate()`` on the intact model, then with each
    unit deleted in turn (Veit et al. 2016, Fig. 3). ``evaluate`` runs the model on fixed data and returns
    ``{metric: value}``; the model is the same object throughout (put it in eval mode first)."""
    names = {m.site.index: n for n, m in model.named_modules() if isinstance(m, Residual)}
    if not names:
        raise ConfigError(
            f"lesion: {type(model).__name__} has no resblocks Residual sub-layers; "
            "valid: a model built from resblocks blocks"
        )
    baseline = dict(evaluate())
    results = []
    for unit, indices in units if units is not None else lesion_units(model, by):
        label = tuple(names[i] for i in indices)
        try:
            with lesion(model, indices):
                metrics = dict(evaluate())
        except LesionError as e:
            results.append(LesionResult(unit, tuple(indices), label, skipped=str(e)))
            continue
        results.append(LesionResult(unit, tuple(indices), label, metrics))
    return baseline, results


__all__ = [
    "LesionError",
    "LesionResult",
    "delete_branch",
    "keeps_no_stream",
    "lesion",
    "lesion_study",
    "lesion_units",
    "residual_sublayers",
]
