"""The residual protocol shared by every block: ``out = shortcut(F(x), x)``.

A *shortcut rule* merges the branch output ``fx = F(x)`` with the stream ``x``. It is built once per
residual sub-layer from a :class:`Site`, which tells it the channel width, the tensor layout
(tokens ``[..., D]`` or images ``[B, C, H, W]``), its position in the network (schedules such as the
decayed identity need it) and, for rules that read earlier activations (LAuReL-PA), the network's
shared :class:`ActivationHistory`.

Any shortcut works with any branch: Transformer attention/MLP sub-layers and conv blocks alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from ..errors import ConfigError

Layout = Literal["token", "image"]


class ActivationHistory:
    """The inputs ``x_i`` of earlier residual sub-layers in the current forward pass (LAuReL-PA, eq. 4).

    A model owns one, resets it at the start of each forward and hands it to every shortcut that
    needs it. Shortcuts push their input and read back the most recent same-shape entries, which
    restricts previous activations to one resolution stage. Only ``maxlen`` entries are kept.
    """

    def __init__(self, maxlen: int = 8) -> None:
        self.maxlen = maxlen
        self._acts: list[torch.Tensor] = []

    def reset(self) -> None:
        self._acts = []

    def push(self, x: torch.Tensor) -> None:
        self._acts.append(x)
        if len(self._acts) > self.maxlen:
            del self._acts[0]

    def recent(self, k: int, like: torch.Tensor) -> list[torch.Tensor]:
        """Up to ``k`` most recent entries with ``like``'s shape, newest first (``x_i, x_{i-1}, ...``)."""
        out: list[torch.Tensor] = []
        for a in reversed(self._acts):
            if a.shape != like.shape:
                break  # an earlier stage: PA only mixes activations of the same shape
            out.append(a)
            if len(out) == k:
                break
        return out

    def __len__(self) -> int:
        return len(self._acts)


@dataclass
class Site:
    """Where a shortcut sits: width, layout, position among the network's residual sub-layers."""

    dim: int
    layout: Layout = "token"
    index: int = 0  # 0-based index of this residual sub-layer in the whole network
    total: int = 1  # number of residual sub-layers in the network (2 per Transformer block)
    history: ActivationHistory | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.total:
            raise ValueError(f"site.index: {self.index} outside [0, {self.total})")

    def channel_shape(self, ndim: int) -> tuple[int, ...]:
        """Shape that broadcasts a per-channel vector against an ``ndim`` tensor of this layout."""
        if self.layout == "token":
            return (self.dim,)
        return (self.dim,) + (1,) * (ndim - 2)


# Learned residual scalars/vectors end their attribute name with one of these (see Shortcut.no_weight_decay).
NO_DECAY_SUFFIXES: tuple[str, ...] = ("alpha", "beta", "gamma", "scale", "_logit")


class Shortcut(nn.Module):
    """Base class: ``forward(fx, x)`` returns the merged stream.

    Class attributes declare how a rule interacts with the rest of the block:

    * ``gates_branch_at_zero``: the rule multiplies F(x) by a gate that starts at exactly zero
      (ReZero). The block then refuses a branch whose last layer is also zero-initialised:
      with both at zero neither receives a gradient and the branch never trains.
    * ``requires_norm``: the norm placement the rule was defined for (DeepNorm: ``post_ln``).
    * ``layouts``: tensor layouts it supports.

    Weight decay: learned residual scalars/vectors are named with one of :data:`NO_DECAY_SUFFIXES`
    (``alpha``, ``beta``, ``gamma``, ``scale``, ``*_logit``) and :meth:`no_weight_decay` lists the local
    parameter names a trainer should exclude (by default every parameter with ``ndim <= 1``: those
    scalars, biases and norm affines). Fixed constants (decay or DeepNorm alpha) are buffers, not parameters.
    """

    gates_branch_at_zero: ClassVar[bool] = False
    requires_norm: ClassVar[str | None] = None
    layouts: ClassVar[tuple[str, ...]] = ("token", "image")

    def __init__(self, site: Site) -> None:
        super().__init__()
        if site.layout not in self.layouts:
            name, valid = type(self).__name__, ", ".join(self.layouts)
            raise ConfigError(f"shortcut: {name} does not support {site.layout} layout; valid: {valid}")
        self.site = site

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_branch(self, branch: nn.Module) -> None:
        """Hook for rules that prescribe the branch's initialisation (DeepNorm's beta). Default: none."""

    def no_weight_decay(self) -> set[str]:
        """Names (relative to this module) of parameters to keep out of weight decay: all with ``ndim <= 1``.

        Shrinking a residual gate towards 0 changes the function class (it fades the branch or the
        stream out), so gates, scales and mixing weights are not regularised, like norm affines.
        """
        return {name for name, p in self.named_parameters() if p.ndim <= 1}

    def extra_repr(self) -> str:
        return f"dim={self.site.dim}, layout={self.site.layout}, index={self.site.index}/{self.site.total}"


def channel_linear(site: Site, in_dim: int, out_dim: int, bias: bool = False) -> nn.Module:
    """A linear map over channels: ``nn.Linear`` for tokens, a 1x1 conv for images."""
    if site.layout == "token":
        return nn.Linear(in_dim, out_dim, bias=bias)
    return nn.Conv2d(in_dim, out_dim, kernel_size=1, bias=bias)


def channel_weight(layer: nn.Module) -> torch.Tensor:
    """The ``[out, in]``-shaped view of a ``channel_linear`` weight (for initialisation)."""
    w = layer.weight
    return w.view(w.shape[0], w.shape[1])


def channel_view(site: Site, p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A learned scalar or per-channel ``[D]`` vector, shaped to broadcast against ``like`` and in its dtype.

    The cast keeps a bf16 stream in bf16: an fp32 ``[D]`` vector times a bf16 tensor would promote
    the whole activation to fp32 (0-dim scalars do not promote, vectors do).
    """
    p = p.to(like.dtype)
    return p if p.ndim == 0 else p.view(site.channel_shape(like.ndim))
