"""What the Transformer models share: the block stack, token embeddings, explicit init and presets."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..blocks.residual import Residual, needs_final_norm
from ..blocks.transformer import TransformerBlock, token_norm
from ..branches._output import zero_output_
from ..errors import check
from ..norms import NormFactory
from ..shortcuts import ActivationHistory, Shortcut, ShortcutFactory, ShortcutSpec, as_factory

INIT_STD = 0.02  # GPT-2 / nanoGPT / ViT


class TransformerStack(nn.Module):
    """``depth`` blocks sharing one :class:`ActivationHistory`, then a final norm iff the placement needs one."""

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
        bias: bool,
        zero_init_last: bool,
    ) -> None:
        super().__init__()
        check(depth >= 1, "depth", f"{depth}; valid: >= 1")
        make_shortcut, make_norm = as_factory(shortcut), token_norm(norm_layer, bias)  # names checked once
        self.history = ActivationHistory()
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
                bias=bias,
                index=i,
                total=depth,
                history=self.history,
                zero_init_last=zero_init_last,
            )
            for i in range(depth)
        )
        # Pre-/Peri-/res-post-LN streams are un-normalised (Xiong et al. 2020): normalise before the head.
        self.norm = make_norm(dim) if needs_final_norm(norm) else nn.Identity()

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.history.reset()
        try:
            for block in self.blocks:
                x = block(x, pad_mask=pad_mask)
        finally:
            # Drop the references so activations are freed and the model stays deep-copyable (EMA, checkpoints).
            self.history.reset()
        return self.norm(x)


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
def init_transformer_(model: nn.Module, depth: int) -> None:
    """nanoGPT's explicit init, then each residual's shortcut re-applies its own branch init.

    * ``Linear`` / ``Embedding`` weights ~ N(0, 0.02), biases 0 (GPT-2, nanoGPT ``_init_weights``);
    * residual output projections (attention ``proj``, MLP ``fc2``) ~ N(0, 0.02 / sqrt(2 * depth))
      (GPT-2 paper §2.3, "scale the weights of residual layers by 1/sqrt(N)"), or zero with ``zero_init_last``;
    * shortcut modules keep the init their rule prescribes (LAuReL's zero up-projection, highway gate bias).

    Other parameters (cls token, ViT positions, patch embedding) are the model's business.
    """
    in_shortcut = {id(m) for s in model.modules() if isinstance(s, Shortcut) for m in s.modules()}
    own = [m for m in model.modules() if id(m) not in in_shortcut]
    for m in own:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=INIT_STD)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    for m in own:  # a second pass: modules() visits a branch before its layers
        if hasattr(m, "output_layer") and m.zero_init_last:
            zero_output_(m)
        elif hasattr(m, "output_layer"):
            nn.init.normal_(m.output_layer().weight, mean=0.0, std=INIT_STD / math.sqrt(2 * depth))
    reapply_shortcut_init_(model)


def reapply_shortcut_init_(model: nn.Module) -> None:
    """Call ``shortcut.init_branch(branch)`` for every residual, after the model re-initialised the branches.

    ``Residual`` already calls it at construction; a model that re-initialises weights afterwards
    would otherwise erase a rule's branch init (DeepNorm's beta scaling).
    """
    for m in model.modules():
        if isinstance(m, Residual):
            m.shortcut.init_branch(m.branch)


