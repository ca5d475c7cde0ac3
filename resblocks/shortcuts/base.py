"""The residual protocol shared by every block: ``out = shortcut(F(x), x)``.

A *shortcut rule* merges the branch output ``fx = F(x)`` with the stream ``x``. It is built once per
residual sub-layer from a :class:`Site`, which tells it the channel width, the tensor layout
(tokens ``[..., D]`` or images ``[B, C, H, W]``) and its position in the network (schedules such as
the decayed identity need it). Rules that read earlier activations (LAuReL-PA) get them as an
argument of the forward, never through state kept between sub-layers (:data:`Hiddens`), so a
recomputed sub-layer (activation checkpointing) sees exactly what it saw the first time.

Any shortcut works with any branch: Transformer attention/MLP sub-layers and conv blocks alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ..compat import check_layout

Layout = Literal["token", "image"]

# The shortcut inputs of the residual sub-layers already run in this forward pass, by ``Site.index``
# (x-transformers' ``layer_hiddens``). A model makes a new one per forward and passes it down; each
# sub-layer writes its own entry once (a recomputation writes the same value again), so the earlier
# entries a sub-layer reads are the same in the first pass and in any recomputation.
Hiddens = dict[int, torch.Tensor]


def previous_activations(
    hiddens: Hiddens | None, index: int, like: torch.Tensor, n: int, first: int = 0
) -> list[torch.Tensor]:
    """Up to ``n`` inputs of the sub-layers before ``index``, newest first, with ``like``'s shape.

    Stops at ``first`` (the first sub-layer of this one's resolution stage, where the model knows it), at
    the first missing entry, or at a different shape (an earlier stage): LAuReL-PA only mixes activations
    of one stage. The shape test runs on real tensors only: under torch.fx tracing shapes are symbolic,
    and the static ``first`` (set by the models' stage builder) alone decides.
    """
    out: list[torch.Tensor] = []
    if hiddens is None:
        return out
    for j in range(index - 1, max(index - 1 - n, first - 1), -1):
        a = hiddens.get(j)
        if a is None or (not isinstance(a, torch.fx.Proxy) and a.shape != like.shape):
            break
        out.append(a)
    return out


@dataclass
class Site:
    """Where a shortcut sits: width, layout, position among the network's residual sub-layers.

    ``index``/``total`` count residual sub-layers (2 per Transformer block, 1 per conv block);
    ``per_block`` says how many sub-layers make one block, so :attr:`block`/:attr:`blocks` give the
    position in blocks (CaiT's LayerScale init, DeepNorm's N and stochastic depth count blocks).
    """

    dim: int
    layout: Layout = "token"
    index: int = 0  # 0-based index of this residual sub-layer in the whole network
    total: int = 1  # number of residual sub-layers in the network
    per_block: int = 1  # residual sub-layers per block (Transformer: 2, attention and MLP)

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.total:
            raise ValueError(f"site.index: {self.index} outside [0, {self.total})")
        if self.per_block < 1 or self.total % self.per_block:
            raise ValueError(f"site.per_block: {self.per_block} does not divide total {self.total}")

    @property
    def block(self) -> int:
        """0-based index of the block this sub-layer belongs to."""
        return self.index // self.per_block

    @property
    def blocks(self) -> int:
        """Number of blocks in the network."""
        return self.total // self.per_block

    def channel_shape(self, ndim: int) -> tuple[int, ...]:
        """Shape that broadcasts a per-channel vector against an ``ndim`` tensor of this layout."""
        if self.layout == "token":
            return (self.dim,)
        return (self.dim,) + (1,) * (ndim - 2)


# Learned residual scalars/vectors end their attribute name with one of these (see Shortcut.no_weight_decay).
NO_DECAY_SUFFIXES: tuple[str, ...] = ("alpha", "beta", "gamma", "scale", "_logit")


class Shortcut(nn.Module):
    """Base class: ``forward(fx, x)`` returns the merged stream.

    Class attributes declare how a rule interacts with the rest of the block (the checks themselves
    live in one place, :mod:`resblocks.blocks.compat`):

    * ``gates_branch_at_zero``: the rule multiplies F(x) by a gate that starts at exactly zero
      (ReZero). The block then refuses a branch whose last layer is also zero-initialised:
      with both at zero neither receives a gradient and the branch never trains.
    * ``requires_norm``: the norm placement the rule was defined for (DeepNorm: ``post_ln``).
    * ``carries_stream``: the output contains ``x`` (False for the plain ``none``, ``F(x)`` alone: then a
      branch that starts at zero outputs zeros, and nothing before it would ever get a gradient).
    * ``layouts``: tensor layouts it supports.
    * ``num_previous``: how many earlier same-shape sub-layer inputs the rule reads (LAuReL-PA:
      ``k - 1``). A rule with ``num_previous > 0`` is called ``forward(fx, x, prev)`` with ``prev``
      the list of them, newest first (fewer near the start of a stage).

    Initialisation: the constructor builds the parameters and calls :meth:`reset_parameters`, which
    gives them the rule's prescribed init; models call it again from ``init_weights()``.

    Weight decay: learned residual scalars/vectors are named with one of :data:`NO_DECAY_SUFFIXES`
    (``alpha``, ``beta``, ``gamma``, ``scale``, ``*_logit``) and :meth:`no_weight_decay` lists the local
    parameter names a trainer should exclude (by default every parameter with ``ndim <= 1``: those
    scalars, biases and norm affines). Fixed constants (decay or DeepNorm alpha) are buffers, not parameters.
    """

    gates_branch_at_zero: ClassVar[bool] = False
    requires_norm: ClassVar[str | None] = None
    carries_stream: ClassVar[bool] = True
    layouts: ClassVar[tuple[str, ...]] = ("token", "image")
    num_previous: int = 0

    def __init__(self, site: Site) -> None:
        super().__init__()
        check_layout(type(self).__name__, self.layouts, site.layout)  # also for rules built without the registry
        self.site = site

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The rule's own init. Default: each child layer's ``reset_parameters()`` (torch's init)."""
        for m in self.children():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def init_branch(self, branch: nn.Module) -> None:
        """Hook for rules that prescribe the branch's initialisation (DeepNorm's beta). Default: none."""

    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The rule's current learned or fixed weights, by name, as 0-dim tensors on the rule's device.

        For diagnostics (:class:`resblocks.diagnostics.ResidualProbe`) and logging: each rule reports
        its own numbers in the form its equation uses them (after any softmax/sigmoid). ``x`` is the
        stream input of the forward being probed, for rules whose weights depend on it (highway's gate
        ``T(x)``); rules that do not need it ignore it. No host sync: the caller reads the values later.
        Default: no state (``identity``, ``none``, ``projection``, ``laurel_lr``).
        """
        return {}

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
    """A learned per-channel ``[D]`` vector, shaped to broadcast against ``like`` and in its dtype.

    The cast keeps a bf16 stream in bf16: an fp32 ``[D]`` vector times a bf16 tensor would promote
    the whole activation to fp32 (0-dim scalars do not promote, vectors do, so scalars need no view).
    The shape comes from the site's layout alone (tokens ``[..., D]``, images ``[B, D, H, W]``), never from
    the tensors, so the rules stay traceable by torch.fx.
    """
    p = p.to(like.dtype)
    return p if site.layout == "token" else p.view(site.channel_shape(4))
