"""What the Transformer models share: the block stack, token embeddings, explicit init and presets."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..blocks.residual import Residual, needs_final_norm
from ..blocks.transformer import TransformerBlock, token_norm
from ..branches._output import zero_output_
from ..errors import check
from ..norms import NormFactory, is_norm
from ..shortcuts import Hiddens, ShortcutFactory, ShortcutSpec, as_factory

INIT_STD = 0.02  # GPT-2 / nanoGPT / ViT


class TransformerStack(nn.Module):
    """``depth`` blocks, then a final norm iff the placement needs one.

    Args:
        depth: number of blocks (2 residual sub-layers each).
        dim, heads, mlp_ratio, norm, norm_layer, shortcut, causal, dropout, attn_dropout, bias, zero_init_last,
            drop_path_rate, layer_scale_init: as :class:`~resblocks.blocks.transformer.TransformerBlock`.
    """

    def __init__(
        self,
        *,
        depth: int,
        dim: int,
        heads: int,
        mlp_ratio: float,
        norm: str,
        norm_layer: str | NormFactory,
        shortcut: ShortcutSpec | ShortcutFactory,
        causal: bool,
        dropout: float,
        attn_dropout: float | None = None,
        bias: bool,
        zero_init_last: bool,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        check(depth >= 1, "depth", f"{depth}; valid: >= 1")
        make_shortcut, make_norm = as_factory(shortcut), token_norm(norm_layer, bias)  # names checked once
        self.depth = depth
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                heads,
                mlp_ratio=mlp_ratio,
                norm=norm,
                norm_layer=make_norm,
                shortcut=make_shortcut,
                causal=causal,
                dropout=dropout,
                attn_dropout=attn_dropout,
                bias=bias,
                index=i,
                total=depth,
                zero_init_last=zero_init_last,
                drop_path_rate=drop_path_rate,
                layer_scale_init=layer_scale_init,
            )
            for i in range(depth)
        )
        # Pre-/Peri-/res-post-LN streams are un-normalised (Xiong et al. 2020): normalise before the head.
        self.norm = make_norm(dim) if needs_final_norm(norm) else nn.Identity()
        self.reads_previous = any(m.shortcut.num_previous for m in self.modules() if isinstance(m, Residual))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        # A new record per forward for rules that read earlier activations (LAuReL-PA); None otherwise.
        hiddens: Hiddens | None = {} if self.reads_previous else None
        for block in self.blocks:
            x = block(x, pad_mask=pad_mask, hiddens=hiddens)
        return self.norm(x)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **fixed: Any) -> TransformerStack:
        """The stack of a model from the model's constructor arguments (its ``locals()``), plus ``fixed``
        ones (``causal``): the one place the shared keyword list is written out."""
        names = inspect.signature(cls.__init__).parameters.keys() - {"self"} - fixed.keys()
        return cls(**{k: options[k] for k in names if k in options}, **fixed)


class TokenEmbedding(nn.Module):
    """``dropout(wte(ids) + wpe(positions))`` with learned positions (GPT-2, BERT)."""

    def __init__(self, vocab_size: int, max_len: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        check(vocab_size >= 1, "vocab_size", f"{vocab_size}; valid: >= 1")
        check(max_len >= 1, "max_len", f"{max_len}; valid: >= 1")
        self.max_len = max_len
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        check(T <= self.max_len, "input", f"sequence length {T} exceeds the context; valid: <= {self.max_len}")
        pos = torch.arange(T, device=ids.device)
        return self.drop(self.wte(ids) + self.wpe(pos))


@torch.no_grad()
def init_transformer_(model: nn.Module, depth: int, *, rules: bool = True) -> None:
    """nanoGPT's explicit init, then each residual's own init (:meth:`Residual.init_weights`).

    * ``Linear`` / ``Embedding`` weights ~ N(0, 0.02), biases 0 (GPT-2, nanoGPT ``_init_weights``);
    * residual output projections (attention ``proj``, MLP ``fc2``) ~ N(0, 0.02 / sqrt(2 * depth))
      (GPT-2 paper §2.3, "scale the weights of residual layers by 1/sqrt(N)"), or zero with ``zero_init_last``;
    * norms at weight 1, bias 0;
    * shortcut modules keep the init their rule prescribes (LAuReL's zero up-projection, highway gate bias).

    Other parameters (cls token, ViT positions, patch embedding) are the model's business.

    ``rules=False`` (the constructors) leaves the rules' and modifiers' parameters as their own
    constructors just drew them and re-applies only the rules' branch init: drawing them again would
    change the seeded initial weights that golden losses and published results pin.
    """
    in_shortcut = {id(m) for r in model.modules() if isinstance(r, Residual) for m in r.own_modules()}
    own = [m for m in model.modules() if id(m) not in in_shortcut]
    for m in own:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=INIT_STD)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if is_norm(m):
            m.reset_parameters()  # (1, 0): a no-op at construction, needed when re-initialising
    for m in own:  # a second pass: modules() visits a branch before its layers
        if hasattr(m, "output_layer") and m.zero_init_last:
            zero_output_(m)
        elif hasattr(m, "output_layer"):
            nn.init.normal_(m.output_layer().weight, mean=0.0, std=INIT_STD / math.sqrt(2 * depth))
    if rules:
        for m in model.modules():
            if isinstance(m, Residual):
                m.init_weights()
    else:
        reapply_shortcut_init_(model)


def reapply_shortcut_init_(model: nn.Module) -> None:
    """Call ``shortcut.init_branch(branch)`` for every residual, after the model re-initialised the branches.

    ``Residual`` already calls it at construction; a model that re-initialises weights afterwards
    would otherwise erase a rule's branch init (DeepNorm's beta scaling).
    """
    for m in model.modules():
        if isinstance(m, Residual):
            m.shortcut.init_branch(m.branch)


