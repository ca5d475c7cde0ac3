"""Vision Transformer (Dosovitskiy et al. 2021, arXiv 2010.11929, eq. 1-4) with pluggable residuals."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import check
from ..norms import NormFactory
from ..shortcuts import Hiddens, ShortcutFactory, ShortcutSpec
from . import MODELS
from ._interface import ClassifierMixin, Indices, residual_no_weight_decay, take_indices
from ._transformer import INIT_STD, TransformerStack, init_transformer_
from ._variants import register_variant

POOLS = ("cls", "mean")
# timm's names for the head's pooling (``global_pool``), and "" (no pooling: the head sees every token).
HEAD_POOLS = {"cls": "cls", "token": "cls", "mean": "mean", "avg": "mean", "": ""}


def check_image_size(img: torch.Tensor, size: int) -> None:
    """A wrong input size is a one-line error, not a shape mismatch deep in the position embedding."""
    got, want = tuple(img.shape[-2:]), (size, size)
    check(got == want, "input", f"image size {got}; valid: {want}")


# A leaf in torch.fx graphs (its test reads concrete shapes): the forward stays traceable, and the traced
# module still checks its input.
torch.fx.wrap("check_image_size")


class TokenPool(nn.Module):
    """The head's pooling of ``[B, N, D]`` tokens: the class token, the mean of the patch tokens, or none."""

    def __init__(self, kind: str, num_prefix_tokens: int) -> None:
        super().__init__()
        self.kind, self.num_prefix_tokens = kind, num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "cls":
            return x[:, 0]
        if self.kind == "mean":
            return x[:, self.num_prefix_tokens :].mean(dim=1) if self.num_prefix_tokens else x.mean(dim=1)
        return x

    def extra_repr(self) -> str:
        return repr(self.kind)


@MODELS.register("vit")
class ViT(ClassifierMixin, nn.Module):
    """``head(pool(stack([cls; patch_embed(img)] + pos)))``.

    ``pool="cls"`` reads the class token (eq. 4); ``pool="mean"`` averages the patch tokens and has no
    class token. Patches come from a stride-``patch_size`` conv, initialised like a Linear (MAE).

    Args:
        image_size: input height = width; patch_size: patch side (divides ``image_size``).
        in_chans: input channels; num_classes: classes of the head.
        depth: number of blocks; dim: width; heads: attention heads; mlp_ratio: MLP width over ``dim``.
        dropout: position-embedding, attention and residual dropout; bias: biases in Linears and LayerNorms.
        attn_dropout: attention-probability dropout alone; ``None``: ``dropout`` (as in
            :class:`~resblocks.blocks.transformer.TransformerBlock`; 0 keeps a CPU's fused attention kernel).
        pool: ``cls`` (class token) or ``mean`` (average of the patch tokens).
        norm, norm_layer, shortcut, zero_init_last, drop_path_rate, layer_scale_init: the residual design of
            every sub-layer, as in :class:`~resblocks.blocks.transformer.TransformerBlock`.
        head_drop_rate: dropout before the head (timm's ``drop_rate``); ``num_classes=0``: no head.

    The timm interface (:mod:`resblocks.models._interface`): ``forward_features`` returns the normalised
    tokens ``[B, N, dim]`` (class token first), ``forward_head`` pools them; ``feature_info`` lists the blocks.
    """

    classifier_name = "head"

    def __init__(
        self,
        *,
        image_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 10,
        depth: int = 6,
        dim: int = 128,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        attn_dropout: float | None = None,
        bias: bool = True,
        pool: str = "cls",
        norm: str = "pre_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
        head_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        bad = f"image_size {image_size} is not divisible by patch_size {patch_size}; valid: a divisor of image_size"
        check(patch_size >= 1 and image_size % patch_size == 0, "patch_size", bad)
        check(pool in POOLS, "pool", f"unknown {pool!r}; valid: {', '.join(POOLS)}")
        self.image_size, self.patch_size, self.in_chans = image_size, patch_size, in_chans
        self.num_prefix_tokens = int(pool == "cls")
        self.patch_embed = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        num_tokens = (image_size // patch_size) ** 2 + (pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.stack = TransformerStack.from_options(locals(), causal=False)
        self.init_head(dim, num_classes, global_pool=pool, head_drop_rate=head_drop_rate)  # pool -> drop -> head
        self.feature_info = [dict(num_chs=dim, reduction=patch_size, module=f"stack.blocks.{i}") for i in range(depth)]
        init_transformer_(self, depth, rules=False)
        self._init_embeddings()

    def _make_pool(self, kind: str) -> nn.Module:
        check(kind in HEAD_POOLS, "global_pool", f"unknown {kind!r}; valid: cls (token), mean (avg), '' (none)")
        valid = "valid: mean, '' (the model has no class token)"
        check(HEAD_POOLS[kind] != "cls" or self.cls_token is not None, "global_pool", f"{kind!r}; {valid}")
        return TokenPool(HEAD_POOLS[kind], self.num_prefix_tokens)

    def _init_classifier(self, layer: nn.Linear) -> None:
        nn.init.normal_(layer.weight, std=INIT_STD)  # as init_transformer_
        nn.init.zeros_(layer.bias)

    def init_weights(self) -> None:
        """The library's whole init again: nanoGPT's, every residual's own (rules, modifiers), then MAE's
        for positions, class token and patch embedding."""
        init_transformer_(self, self.stack.depth)
        self._init_embeddings()

    @torch.no_grad()
    def _init_embeddings(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=INIT_STD)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=INIT_STD)  # MAE
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # MAE: "like nn.Linear"
        nn.init.zeros_(self.patch_embed.bias)

    def no_weight_decay(self) -> set[str]:
        """Learned positions and class token stay out of weight decay (timm's ViT convention), and the
        rules' residual scalars."""
        own = {"pos_embed"} | ({"cls_token"} if self.cls_token is not None else set())
        return own | residual_no_weight_decay(self)

    def _embed(self, img: torch.Tensor) -> torch.Tensor:
        check_image_size(img, self.image_size)
        x = self.patch_embed(img).flatten(2).transpose(1, 2)  # [B, N, D]
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return self.pos_drop(x + self.pos_embed)

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> the final (normalised) tokens ``[B, N, dim]``, class token first (timm's ViT)."""
        return self.stack(self._embed(img))

    def forward_intermediates(
        self,
        img: torch.Tensor,
        indices: Indices = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Any:
        """timm's ``forward_intermediates``: each block's output tokens (``indices``: all if None, the last n if
        an int), as ``[B, dim, h, w]`` maps (``NCHW``, class token dropped; ``return_prefix_tokens`` pairs it
        back) or ``[B, N, dim]`` (``NLC``); ``norm=True`` applies the final norm to each."""
        check(output_fmt in ("NCHW", "NLC"), "output_fmt", f"{output_fmt!r}; valid: NCHW, NLC")
        take, max_index = take_indices(len(self.stack.blocks), indices)
        x = self._embed(img)
        hiddens: Hiddens | None = {} if self.stack.reads_previous else None
        blocks = self.stack.blocks[: max_index + 1] if stop_early else self.stack.blocks
        intermediates = []
        for i, block in enumerate(blocks):
            x = block(x, hiddens=hiddens)
            if i in take:
                intermediates.append(self.stack.norm(x) if norm else x)
        n = self.num_prefix_tokens
        prefix = [y[:, :n] for y in intermediates]
        intermediates = [y[:, n:] for y in intermediates]
        if output_fmt == "NCHW":
            g = self.image_size // self.patch_size
            intermediates = [y.reshape(y.shape[0], g, g, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if return_prefix_tokens and n:
            intermediates = list(zip(intermediates, prefix))
        if intermediates_only:
            return intermediates
        return self.stack.norm(x), intermediates

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last one ``indices`` asks for (timm's ``FeatureGetterNet`` calls this)."""
        take, max_index = take_indices(len(self.stack.blocks), indices)
        self.stack.blocks = self.stack.blocks[: max_index + 1]
        if prune_norm:
            self.stack.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for layer-wise learning-rate decay (timm's ViT): embeddings, blocks, final norm."""
        return {
            "stem": r"^cls_token|^pos_embed|^patch_embed",
            "blocks": [(r"^stack\.blocks\.(\d+)", None), (r"^stack\.norm", (99999,))],
        }


# Small sizes for 28x28 / 32x32 inputs (every option stays overridable).
register_variant(
    "vit_fmnist", ViT,
    "A CPU-sized ViT for 28x28 Fashion-MNIST: patch 4, 6 layers, 64 wide, 4 heads, MLP x2 "
    "(s-chh/PyTorch-Scratch-Vision-Transformer-ViT reports ~92% with this shape).",
    defaults=dict(image_size=28, in_chans=1, patch_size=4, depth=6, dim=64, heads=4, mlp_ratio=2.0),
)
register_variant(
    "vit_cifar", ViT,
    "A small ViT for 32x32 CIFAR: patch 4, 6 layers, 128 wide, 4 heads, MLP x2 (~80% from scratch, same source).",
    defaults=dict(image_size=32, in_chans=3, patch_size=4, depth=6, dim=128, heads=4, mlp_ratio=2.0),
)
register_variant(
    "vit_tiny", ViT,
    "DeiT-Tiny's width and depth (192 wide, 12 layers, 3 heads, MLP x4); 32x32, patch 4.",
    defaults=dict(image_size=32, in_chans=3, patch_size=4, depth=12, dim=192, heads=3, mlp_ratio=4.0),
)
