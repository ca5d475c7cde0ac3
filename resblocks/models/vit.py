"""Vision Transformer (Dosovitskiy et al. 2021, arXiv 2010.11929, eq. 1-4) with pluggable residuals."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check
from ..norms import NormFactory
from ..shortcuts import ShortcutFactory, ShortcutSpec
from . import MODELS
from ._transformer import INIT_STD, TransformerStack, init_transformer_
from ._variants import register_variant

POOLS = ("cls", "mean")


@MODELS.register("vit")
class ViT(nn.Module):
    """``head(pool(stack([cls; patch_embed(img)] + pos)))``.

    ``pool="cls"`` reads the class token (eq. 4); ``pool="mean"`` averages the patch tokens and has no
    class token. Patches come from a stride-``patch_size`` conv, initialised like a Linear (MAE).

    Args:
        image_size: input height = width; patch_size: patch side (divides ``image_size``).
        in_chans: input channels; num_classes: classes of the head.
        depth: number of blocks; dim: width; heads: attention heads; mlp_ratio: MLP width over ``dim``.
        dropout: position-embedding, attention and residual dropout; bias: biases in Linears and LayerNorms.
        pool: ``cls`` (class token) or ``mean`` (average of the patch tokens).
        norm, norm_layer, shortcut, zero_init_last, drop_path_rate, layer_scale_init: the residual design of
            every sub-layer, as in :class:`~resblocks.blocks.transformer.TransformerBlock`.
    """

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
        bias: bool = True,
        pool: str = "cls",
        norm: str = "pre_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        bad = f"image_size {image_size} is not divisible by patch_size {patch_size}; valid: a divisor of image_size"
        check(patch_size >= 1 and image_size % patch_size == 0, "patch_size", bad)
        check(pool in POOLS, "pool", f"unknown {pool!r}; valid: {', '.join(POOLS)}")
        self.image_size, self.pool = image_size, pool
        self.patch_embed = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        num_tokens = (image_size // patch_size) ** 2 + (pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.stack = TransformerStack.from_options(locals(), causal=False)
        self.head = nn.Linear(dim, num_classes)
        init_transformer_(self, depth, rules=False)
        self._init_embeddings()

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
        """Learned positions and class token stay out of weight decay (timm's ViT convention)."""
        return {"pos_embed"} | ({"cls_token"} if self.cls_token is not None else set())

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> pooled features ``[B, dim]`` (the head's input; for linear probes)."""
        size, want = tuple(img.shape[-2:]), (self.image_size, self.image_size)
        check(size == want, "input", f"image size {size}; valid: {want}")
        x = self.patch_embed(img).flatten(2).transpose(1, 2)  # [B, N, D]
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.stack(self.pos_drop(x + self.pos_embed))
        return x[:, 0] if self.pool == "cls" else x.mean(dim=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> class logits ``[B, num_classes]``."""
        return self.head(self.forward_features(img))


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
