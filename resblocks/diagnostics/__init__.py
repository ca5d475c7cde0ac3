"""Residual diagnostics: what every residual sub-layer of a model does, per depth, cheaply and exactly.

>>> from resblocks.diagnostics import ResidualProbe, to_scalars
>>> with ResidualProbe(model) as probe:
...     loss_fn(model(x), y).backward()
...     logger.log(to_scalars(probe.collect()))

:class:`ResidualProbe` (hooks on every :class:`~resblocks.blocks.residual.Residual`, off unless attached),
:class:`SubLayerStats` (what is reported, with the formulas), :func:`to_scalars` (named scalars for
loggers), the statistics themselves (:mod:`.stats`), the effective rank (:mod:`.effective_rank`) and
lesion studies, deleting residual sub-layers at test time (:mod:`.lesion`, Veit et al. 2016), and the quality of
an encoder's frozen features, kNN and linear-probe accuracy (:mod:`.frozen_features`).
Rules report their own weights through :meth:`resblocks.shortcuts.Shortcut.state`. Pure PyTorch.
"""

from __future__ import annotations

from .effective_rank import effective_rank, feature_rows
from .frozen_features import extract_features, knn_accuracy, linear_probe_accuracy
from .lesion import LesionError, LesionResult, delete_branch, lesion, lesion_study, lesion_units, residual_sublayers
from .probe import ResidualProbe
from .record import QUANTITIES, SubLayerStats, to_scalars
from .reduce import mean_over_ranks

__all__ = [
    "QUANTITIES",
    "LesionError",
    "LesionResult",
    "ResidualProbe",
    "SubLayerStats",
    "delete_branch",
    "effective_rank",
    "extract_features",
    "knn_accuracy",
    "linear_probe_accuracy",
    "feature_rows",
    "lesion",
    "lesion_study",
    "lesion_units",
    "mean_over_ranks",
    "residual_sublayers",
    "to_scalars",
]
