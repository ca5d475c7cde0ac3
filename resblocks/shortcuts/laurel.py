"""LAuReL: ``x_{i+1} = alpha F(x_i) + g(x_i, x_{i-1}, ...)``, one module composed from three parts.

Menghani, Kumar, Kumar 2024, "LAuReL: Learned Augmented Residual Layer" (arXiv 2411.07501, ICML 2025).
The parts live in ``laurel_rw.py`` (residual weights), ``laurel_lr.py`` (low-rank map) and
``laurel_pa.py`` (previous activations); :class:`Laurel` composes them and each registered variant
names its parts once (:func:`laurel_variant`), its options being the union of the parts' keyword
options. With default options every variant is exactly the plain residual ``F(x) + x`` at step 0.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import SHORTCUTS
from .base import Shortcut, Site
from .laurel_lr import LowRank
from .laurel_pa import PreviousActivations
from .laurel_rw import ResidualWeights


class Laurel(Shortcut):
    """``weights(F(x), x + low_rank(x) + previous(x))``; absent parts drop out (no weights: a plain sum).

    The paper's eq. 2 with a linear ``g``; Sec. 2 folds any pre-norm into F, so with ``pre_ln`` the
    stream terms act on the un-normalised stream. Parts:

    * ``weights``  (:class:`ResidualWeights`): ``alpha F(x) + beta (.)`` (RW, Sec. 2.1),
    * ``low_rank`` (:class:`LowRank`): ``+ up(down(x_i))`` (LR, eq. 3),
    * ``previous`` (:class:`PreviousActivations`): ``+ sum_j gamma_j h_j(x_{i-j})`` (PA, eq. 4).
    """

    def __init__(
        self,
        site: Site,
        *,
        weights: ResidualWeights | None = None,
        low_rank: LowRank | None = None,
        previous: PreviousActivations | None = None,
    ) -> None:
        super().__init__(site)
        self.weights = weights
        self.low_rank = low_rank
        self.previous = previous
        self.num_previous = 0 if previous is None else previous.k - 1

    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The parts' own states: RW's ``alpha``, ``beta`` (normalised), PA's ``gamma_j``; LR has none."""
        out: dict[str, torch.Tensor] = {}
        for part in (self.weights, self.previous):
            if part is not None:
                out.update(part.state())
        return out

    def forward(self, fx: torch.Tensor, x: torch.Tensor, prev: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        # Each part adds onto the running sum inside its own fused op (fewer passes over the
        # activations); without RW weights, F(x) is in that sum from the start.
        total = fx if self.weights is None else None
        if self.previous is not None:
            g = self.previous(x, prev, add=total)
        else:
            g = x if total is None else total + x
        if self.low_rank is not None:
            g = self.low_rank(x.unsqueeze(0), add=g.unsqueeze(0)).squeeze(0)
        return g if self.weights is None else self.weights(fx, g)


def _keyword_options(part: type[nn.Module]) -> list[inspect.Parameter]:
    params = inspect.signature(part.__init__).parameters.values()
    return [p for p in params if p.kind is p.KEYWORD_ONLY]


def laurel_variant(
    name: str, cls_name: str, doc: str, defaults: dict[str, Any] | None = None, **parts: type[nn.Module]
) -> type[Laurel]:
    """Register a :class:`Laurel` subclass built from ``parts`` (slot -> part class) under ``name``.

    Its keyword options are the union of the parts' keyword-only constructor options (``defaults``
    overrides their defaults), so the registry lists and checks them like a hand-written signature.
    """
    slots = {slot: [p.name for p in _keyword_options(part)] for slot, part in parts.items()}
    params = {p.name: p for part in parts.values() for p in _keyword_options(part)}
    params = {k: p.replace(default=(defaults or {}).get(k, p.default)) for k, p in params.items()}

    def __init__(self: Laurel, site: Site, **options: Any) -> None:
        SHORTCUTS.check_options(name, options)
        options = {k: p.default for k, p in params.items()} | options
        built = {slot: parts[slot](site, **{k: options[k] for k in keys}) for slot, keys in slots.items()}
        Laurel.__init__(self, site, **built)

    self_site = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("self", "site")]
    __init__.__signature__ = inspect.Signature([*self_site, *params.values()])  # type: ignore[attr-defined]
    cls = type(cls_name, (Laurel,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})
    return SHORTCUTS.register(name)(cls)


LaurelRW = laurel_variant(
    "laurel_rw",
    "LaurelRW",
    """LAuReL-RW, ``x_{i+1} = alpha F(x_i) + beta x_i`` (Sec. 2.1). 2 params (1 with sigmoid), 2D per channel.

    Default ``norm="none"``, alpha = beta = 1: exactly the plain residual at step 0. Pitfall: with
    softmax/sigmoid the equal init gives alpha = beta = 0.5, and in a Pre-LN stack beta = 0.5 per
    sub-layer turns the stream into an EMA (the embedding is weighted 0.5^L): a strong decay, not
    a plain residual.
    """,
    weights=ResidualWeights,
)

LaurelLR = laurel_variant(
    "laurel_lr",
    "LaurelLR",
    """LAuReL-LR, ``x_{i+1} = F(x_i) + x_i + up(down(x_i))`` (eq. 3). 2rD params, ``rank`` r <= D.""",
    low_rank=LowRank,
)

LaurelPA = laurel_variant(
    "laurel_pa",
    "LaurelPA",
    """LAuReL-PA, ``x_{i+1} = F(x_i) + x_i + sum_{j<k} gamma_j h(x_{i-j})`` (eq. 4).

    k params with ``h`` the identity (``rank=None``, gamma init 0), 2rkD + k with a low-rank ``h``
    per lag (``rank=r``, gamma init 1). Earlier layers' inputs come as the forward's ``prev`` (from the model).
    """,
    previous=PreviousActivations,
)

LaurelRWLR = laurel_variant(
    "laurel_rw_lr",
    "LaurelRWLR",
    """LAuReL-RW+LR, ``x_{i+1} = alpha F(x_i) + beta (x_i + up(down(x_i)))`` (eq. 5). 2rD + 2 params.

    The paper's recommended trade-off (ResNet-50: r = 16; LLMs: r = 32-64).
    """,
    weights=ResidualWeights,
    low_rank=LowRank,
)

LaurelRWPA = laurel_variant(
    "laurel_rw_pa",
    "LaurelRWPA",
    """LAuReL-RW+PA, ``x_{i+1} = alpha F(x_i) + beta (x_i + sum_{j<k} gamma_j h(x_{i-j}))`` (Sec. 2.4). k + 2 params.

    The extracted paper text lost whether ``x_i`` sits inside beta(.); we keep it, as in eqs. 4-5,
    so the default is exactly the plain residual at step 0.
    """,
    weights=ResidualWeights,
    previous=PreviousActivations,
)

LaurelRWLRPA = laurel_variant(
    "laurel_rw_lr_pa",
    "LaurelRWLRPA",
    """LAuReL-RW+LR+PA, ``x_{i+1} = alpha F(x_i) + beta (x_i + sum_{j<k} gamma_j up_j(down_j(x_{i-j})))`` (eq. 6).

    One low-rank pair per lag (2rkD + k + 2 params), gamma init 1, up-projections zero. The
    identity term ``x_i`` is kept (the extracted eq. 6 is ambiguous; by analogy with eqs. 4-5).
    It is ``laurel_rw_pa`` with ``rank`` defaulting to 16: ``rank=None`` makes ``h`` the identity.
    """,
    defaults={"rank": 16},
    weights=ResidualWeights,
    previous=PreviousActivations,
)

__all__ = ["Laurel", "LaurelLR", "LaurelPA", "LaurelRW", "LaurelRWLR", "LaurelRWLRPA", "LaurelRWPA", "laurel_variant"]
