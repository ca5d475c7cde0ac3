"""Depth schedules: per-sub-layer constants computed once from a layer's position in the network.

Shortcut rules index these by ``site.index`` (0-based) over ``site.total`` residual sub-layers.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


def decayed_alphas(total: int, alpha_min: float, *, key: str = "alpha_min") -> torch.Tensor:
    """Decayed identity weights ``alpha_l = 1 - l / (total - 1) * (1 - alpha_min)``, ``l = 0 .. total-1``.

    Zhang et al. 2024, "Residual Connections Harm Generative Representation Learning" (arXiv 2404.10947),
    ``x_{l+1} = alpha_l x_l + f(x_l)``. This is the official code's schedule
    (``1 - np.linspace(0, 1, 2*depth).reshape(-1, 2) * (1 - min_decay)``) flattened over all
    sub-layers: the first has alpha = 1 exactly, the last alpha = ``alpha_min``. ``alpha_min = 1`` is
    the plain residual.
    """
    if total < 1:
        raise ConfigError(f"total: {total} sub-layers; valid: an integer >= 1")
    if not 0.0 < alpha_min <= 1.0:
        raise ConfigError(f"{key}: {alpha_min!r} outside (0, 1]; valid: 0 < alpha_min <= 1 (paper: 0.6-0.8)")
    return 1.0 - torch.linspace(0.0, 1.0, total, dtype=torch.float64).float() * (1.0 - alpha_min)


def layerscale_init(depth: int) -> float:
    """CaiT's LayerScale init by depth in blocks (Touvron et al. 2021, arXiv 2103.17239, Sec. 2.1).

    "epsilon = 0.1 for depth up to 18, 1e-5 for depth 24 and 1e-6 for deeper networks"; the paper
    leaves 19..23 open, we give them the 24-block value.
    """
    if depth <= 18:
        return 0.1
    if depth <= 24:
        return 1e-5
    return 1e-6


__all__ = ["decayed_alphas", "layerscale_init"]
