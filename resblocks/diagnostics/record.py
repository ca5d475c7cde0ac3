"""What the probe reports for one residual sub-layer, and its flattening into named scalars for loggers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

NAN = math.nan

@dataclass(frozen=True)
class SubLayerStats:
    """One residual sub-layer ``out = post(rule(F, s))``, ``F = branch_out(branch_norm(branch(pre_norm(x))))``,
    ``s = downsample(x)`` (``downsample(pre_norm(x))`` for pre-activation blocks that share the pre-norm;
    ``s = x`` wherever the sub-layer keeps the shape). Norms and RMS run over the whole batch tensor.

    Attributes:
        name: the module's path in the model (checkpoint wrappers left out).
        index, total: the sub-layer's position among the network's residual sub-layers (``Site``).
        block, blocks, per_block: its block and the number of blocks (a Transformer block has 2 sub-layers).
        x_rms: RMS of the stream entering the sub-layer, ``x``.
        branch_rms: RMS of the branch output after the branch norm, before the modifiers:
            ``branch_norm(branch(pre_norm(x)))``.
        f_rms: RMS of ``F``, the branch output as the rule receives it: after the branch norm *and* the
            branch-output modifiers (LayerScale, stochastic depth). Equal to ``branch_rms`` without them.
        out_rms: RMS of what leaves the sub-layer (after the merge, ``post_norm`` and ``post_act``).
        update_ratio: ``||out - s|| / ||s||`` (``s`` as above, so it is defined where a downsample changes the
            shape; NaN where ``out`` and ``s`` still differ in shape: the plain net's ``none`` at a stage change).
        cos_f_x: cosine between ``F`` and the rule's stream input ``s``, ``<F, s> / (||F|| ||s||)``: the
            cosine with the shortcut term for every rule whose stream term is a positive multiple of ``s``
            (identity, decayed, rezero, layerscale, deepnorm, scalar LAuReL-RW); for projection, highway,
            LAuReL-LR/PA it is the cosine with the stream before the rule maps it. NaN where shapes differ.
        grad_rms: RMS of ``dL/dx`` at the sub-layer input (NaN without a backward pass).
        branch_grad_norm: ``sqrt(sum_p ||dL/dp||^2)`` over the branch's parameters (``Residual.branch``;
            norms and rule excluded), read from ``.grad`` by ``collect()``; NaN without a backward pass.
        effective_rank: Roy & Vetterli effective rank of the output features, on a bounded sample (NaN
            unless asked for): :mod:`resblocks.diagnostics.effective_rank`.
        state: the rule's :meth:`~resblocks.shortcuts.Shortcut.state` as ``shortcut.<key>`` and the
            modifiers' (LayerScale) as ``branch_out.<key>``, at the probed forward.
    """

    name: str
    index: int
    total: int
    block: int
    blocks: int
    per_block: int
    x_rms: float = NAN
    branch_rms: float = NAN
    f_rms: float = NAN
    out_rms: float = NAN
    update_ratio: float = NAN
    cos_f_x: float = NAN
    grad_rms: float = NAN
    branch_grad_norm: float = NAN
    effective_rank: float = NAN
    state: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# The per-sub-layer quantities (the float fields), in the order they are logged.
QUANTITIES: tuple[str, ...] = tuple(f.name for f in fields(SubLayerStats) if f.type == "float")


def to_scalars(records: Sequence[SubLayerStats], prefix: str = "residual") -> dict[str, float]:
    """``{"<prefix>/<quantity>/<index>": value}`` for every quantity and state entry of every sub-layer.

    The quantity comes before the depth so a logger groups all depths of one quantity together; the index
    is zero-padded to the width of the largest one so names sort in network order. NaN entries are left out.
    """
    width = len(str(max((r.total - 1 for r in records), default=0)))
    out: dict[str, float] = {}
    for r in records:
        depth = f"{r.index:0{width}d}"
        values = {q: getattr(r, q) for q in QUANTITIES} | r.state
        for key, value in values.items():
            if not math.isnan(value):
                out[f"{prefix}/{key}/{depth}"] = value
    return out


__all__ = ["QUANTITIES", "SubLayerStats", "to_scalars"]
