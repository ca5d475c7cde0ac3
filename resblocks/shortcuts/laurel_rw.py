"""LAuReL-RW: the learned residual weights alpha (on F(x)) and beta (on the stream)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import Site, channel_view
from .weighted_sum import weighted_sum

# One leaf op in a torch.fx graph: the fused autograd function checks its arguments in Python.
torch.fx.wrap("weighted_sum")

RW_NORMS = ("none", "softmax", "sigmoid")


def _initial_weights(norm: str, init_alpha: float | None, init_beta: float | None) -> tuple[float, float]:
    """Fill in unset inits: 1 each without normalisation, else the complement of the other (0.5 each)."""
    if norm == "none":
        return (1.0 if init_alpha is None else init_alpha), (1.0 if init_beta is None else init_beta)
    if init_alpha is None and init_beta is None:
        return 0.5, 0.5
    a = 1.0 - init_beta if init_alpha is None else init_alpha  # type: ignore[operator]
    b = 1.0 - a if init_beta is None else init_beta
    if not (a > 0 and b > 0 and math.isclose(a + b, 1.0, abs_tol=1e-6)):
        raise ConfigError(
            f"shortcut.init_alpha: init_alpha={a!r}, init_beta={b!r} with norm={norm!r}; "
            "valid: both > 0 and summing to 1"
        )
    return a, b


class ResidualWeights(nn.Module):
    """``alpha * F(x) + beta * g`` with learned ``alpha, beta`` (LAuReL eq. 1 / Sec. 2.1, "RW").

    Menghani, Kumar, Kumar 2024, "LAuReL: Learned Augmented Residual Layer" (arXiv 2411.07501).
    ``norm``: ``"none"`` (alpha, beta free), ``"softmax"`` (two logits, alpha + beta = 1) or
    ``"sigmoid"`` (one logit w, alpha = sigmoid(w), beta = 1 - alpha); the paper says a
    normalisation "helps" keep them bounded. ``per_channel``: vector RW, alpha, beta in R^D.
    """

    def __init__(
        self,
        site: Site,
        *,
        norm: str = "none",
        init_alpha: float | None = None,
        init_beta: float | None = None,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        if norm not in RW_NORMS:
            raise ConfigError(f"shortcut.norm: {norm!r}; valid: {', '.join(RW_NORMS)}")
        self.site = site
        self.norm = norm
        a, b = _initial_weights(norm, init_alpha, init_beta)
        if norm == "none":
            self._init = {"alpha": a, "beta": b}
        elif norm == "softmax":  # softmax(log a, log b) = (a, b) exactly when a + b = 1
            self._init = {"alpha_logit": math.log(a), "beta_logit": math.log(b)}
        else:  # sigmoid(log(a / b)) = a when b = 1 - a
            self._init = {"alpha_logit": math.log(a / b)}
        self.per_channel = per_channel
        shape = (site.dim,) if per_channel else ()
        for name in self._init:
            setattr(self, name, nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for name, value in self._init.items():
            getattr(self, name).fill_(value)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current ``(alpha, beta)`` (scalars or ``[D]`` vectors), for logging too."""
        if self.norm == "none":
            return self.alpha, self.beta
        if self.norm == "softmax":
            alpha, beta = torch.softmax(torch.stack([self.alpha_logit, self.beta_logit]), dim=0).unbind(0)
            return alpha, beta
        alpha = torch.sigmoid(self.alpha_logit)
        return alpha, 1.0 - alpha

    @torch.no_grad()
    def state(self) -> dict[str, torch.Tensor]:
        """``{"alpha": alpha, "beta": beta}`` after the normalisation (softmax / sigmoid); the channel
        means for ``per_channel``."""
        alpha, beta = self.weights()
        return {"alpha": alpha.detach().float().mean(), "beta": beta.detach().float().mean()}

    def forward(self, fx: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.weights()
        if not self.per_channel:  # scalar RW: one fused pass (see weighted_sum)
            return weighted_sum(torch.stack([alpha, beta]), (fx, g))
        return channel_view(self.site, alpha, fx) * fx + channel_view(self.site, beta, g) * g

    def extra_repr(self) -> str:
        return f"norm={self.norm}"
