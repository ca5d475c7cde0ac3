"""Masked autoencoder (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners", arXiv 2111.06377)
with pluggable residuals in the encoder and, separately, the decoder.

The encoder is a :class:`~resblocks.models.vit.ViT` without a head that sees only the visible patches (so
its weights load into a ViT for fine-tuning, :func:`encoder_state_dict`); the decoder is a light Transformer
over all positions that predicts the pixels of the masked ones. The encoder-to-decoder long skips of the
decayed-identity paper (Zhang et al. 2024, "Residual Connections Harm Generative Representation Learning",
arXiv 2404.10947, official code ``xiao7199/decayed_Identity_shortcuts: MAE/models_mae.py``) are an option
(:class:`LongSkip`), on by default when the encoder's shortcut is ``decayed``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import check
from ..norms import NormFactory
from ..shortcuts import Hiddens, ShortcutFactory, ShortcutSpec
from ..shortcuts.decayed import DecayedShortcut
from . import MODELS
from ._transformer import INIT_STD, TransformerStack, init_transformer_
from ._variants import register_variant
from .vit import ViT


class MaeOutput(NamedTuple):
    """``loss`` (scalar), ``pred`` ``[B, L, p*p*C]`` (every patch's predicted pixels, in the loss's target
    space), ``mask`` ``[B, L]`` (1 = masked: removed from the encoder's input and counted by the loss)."""

    loss: torch.Tensor
    pred: torch.Tensor
    mask: torch.Tensor


def sincos_2d(dim: int, grid: int, prefix: int = 0) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions ``[1, prefix + grid*grid, dim]`` (MAE's ``get_2d_sincos_pos_embed``;
    half of the channels encode the row, half the column; prefix tokens get zeros)."""
    check(dim % 4 == 0, "dim", f"{dim}: sine-cosine positions need a multiple of 4; valid: dim % 4 == 0")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")  # fmt: skip

    def axis(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1) * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([axis(cols), axis(rows)], dim=1)  # MAE: the first half from the width coordinate
    return torch.cat([torch.zeros(prefix, dim, dtype=torch.float64), emb]).float().unsqueeze(0)


def random_masking(
    x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of uniform noise (MAE's ``random_masking``).

    ``x`` ``[B, L, D]`` -> ``(visible [B, keep, D], mask [B, L] with 1 = removed, ids_restore [B, L])`` with
    ``keep = int(L * (1 - mask_ratio))`` patches kept in every sample.
    """
    B, L, D = x.shape
    keep = int(L * (1 - mask_ratio))
    noise = torch.rand(B, L, device=x.device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    visible = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
    mask = torch.ones(B, L, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    return visible, torch.gather(mask, 1, ids_restore), ids_restore


def unshuffle(visible: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor, prefix: int) -> torch.Tensor:
    """``[B, prefix + keep, D]`` tokens back to ``[B, prefix + L, D]`` in image order, a mask token at each
    removed position (MAE's decoder input)."""
    B, L, D = visible.shape[0], ids_restore.shape[1], visible.shape[2]
    patches = torch.cat([visible[:, prefix:], mask_token.expand(B, L + prefix - visible.shape[1], -1)], dim=1)
    patches = torch.gather(patches, 1, ids_restore[:, :, None].expand(-1, -1, D))
    return torch.cat([visible[:, :prefix], patches], dim=1)


class LongSkip(nn.Module):
    """An encoder-to-decoder long skip: ``y = x + fc([x; unshuffle(h)])``, ``fc = Linear -> SiLU -> Linear``
    with the last Linear zero-initialised, so the skip starts as an exact no-op.

    The official code's ``SkipLayer`` (Zhang et al. 2024): ``h`` is an encoder block's output over the
    visible patches, unshuffled with this skip's own mask token (encoder width) for the removed ones.

    Args:
        dim: decoder width; enc_dim: encoder width; prefix: class tokens in front of the patches (0 or 1).
    """

    def __init__(self, dim: int, enc_dim: int, prefix: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.mask_token = nn.Parameter(torch.zeros(1, 1, enc_dim))
        self.fc = nn.Sequential(nn.Linear(dim + enc_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        nn.init.normal_(self.mask_token, std=INIT_STD)  # official: randn * 0.02
        nn.init.xavier_uniform_(self.fc[0].weight)
        nn.init.zeros_(self.fc[0].bias)
        nn.init.zeros_(self.fc[2].weight)  # the skip adds nothing at init
        nn.init.zeros_(self.fc[2].bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        h = unshuffle(h, self.mask_token, ids_restore, self.prefix)
        return x + self.fc(torch.cat([x, h], dim=-1))


def skip_blocks(depth: int) -> list[int]:
    """Encoder blocks whose outputs feed the long skips: every second one counting back from the last
    (the official ``arange(depth).reshape(-1, 2)[:, -1]`` for an even depth), in encoder order."""
    return list(range(depth - 1, -1, -2))[::-1]


@MODELS.register("mae")
class MaskedAutoencoder(nn.Module):
    """``loss = mean over masked patches of (decoder(encoder(visible patches)) - pixels)^2``.

    Encoder: ViT blocks over the visible patches plus the class token (``pool="cls"``) with fixed
    sine-cosine positions (MAE). Decoder: ``decoder_depth`` blocks of width ``decoder_dim`` over all
    positions, a mask token at each removed one, then a linear prediction of each patch's pixels.

    With ``long_skips`` (Zhang et al. 2024, official code): the decoder's input is only its learned
    positional queries (``decoder_embed([cls; positions])``), and the encoder enters through a
    :class:`LongSkip` from every second encoder block (:func:`skip_blocks`) into the first decoder blocks,
    deepest first. Without: MAE's decoder input, ``decoder_embed(latent)`` with mask tokens and positions.

    Args:
        image_size, patch_size, in_chans, depth, dim, heads, mlp_ratio, pool: the encoder (a ViT).
        norm, norm_layer, shortcut, drop_path_rate, layer_scale_init: the encoder's residual design
            (the decayed schedule counts the encoder's ``2 * depth`` sub-layers only, as the official code).
        decoder_depth, decoder_dim, decoder_heads: the decoder's size.
        decoder_norm, decoder_shortcut: the decoder's residual design (default Pre-LN identity: undecayed).
        zero_init_last: zero the attention and MLP output projections of both (the official code's
            compensating design for the decayed identity), and the pixel prediction.
        mask_ratio: share of patches removed per sample, in [0, 1); 0 is a plain autoencoder (the loss
            then counts every patch).
        norm_pix_loss: targets are each patch's pixels normalised by their own mean and variance (MAE).
        long_skips: the encoder-to-decoder skips; ``None``: on iff ``shortcut`` is ``decayed``.
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        patch_size: int = 4,
        in_chans: int = 1,
        depth: int = 6,
        dim: int = 64,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        pool: str = "cls",
        norm: str = "pre_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
        decoder_depth: int = 4,
        decoder_dim: int = 64,
        decoder_heads: int = 4,
        decoder_norm: str = "pre_ln",
        decoder_shortcut: ShortcutSpec | ShortcutFactory = "identity",
        zero_init_last: bool = True,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = False,
        long_skips: bool | None = None,
    ) -> None:
        super().__init__()
        check(0.0 <= mask_ratio < 1.0, "mask_ratio", f"{mask_ratio}; valid: 0 <= mask_ratio < 1")
        self.encoder = ViT(
            image_size=image_size, patch_size=patch_size, in_chans=in_chans, num_classes=0, depth=depth, dim=dim,
            heads=heads, mlp_ratio=mlp_ratio, pool=pool, norm=norm, norm_layer=norm_layer, shortcut=shortcut,
            zero_init_last=zero_init_last, drop_path_rate=drop_path_rate, layer_scale_init=layer_scale_init,
        )  # fmt: skip
        self.encoder.pos_embed.requires_grad_(False)  # fixed sine-cosine (MAE)
        self.patch_size, self.in_chans, self.mask_ratio, self.norm_pix_loss = patch_size, in_chans, mask_ratio, norm_pix_loss
        self.prefix = self.encoder.num_prefix_tokens
        self.grid = image_size // patch_size
        if long_skips is None:  # the official code pairs the decayed identity with the skips
            long_skips = any(isinstance(m, DecayedShortcut) for m in self.encoder.modules())
        self.skip_ids = skip_blocks(depth) if long_skips else []
        if long_skips:
            need = len(self.skip_ids)
            check(decoder_depth >= need, "decoder_depth",
                  f"{decoder_depth} with long_skips (one per second encoder block: {need}); valid: >= {need}")  # fmt: skip
        self.decoder_embed = nn.Linear(decoder_dim if long_skips else dim, decoder_dim)
        self.mask_token = None if long_skips else nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_cls_token = nn.Parameter(torch.zeros(1, 1, decoder_dim)) if long_skips and self.prefix else None
        self.register_buffer("decoder_pos_embed", sincos_2d(decoder_dim, self.grid, self.prefix), persistent=False)
        self.skips = nn.ModuleList(LongSkip(decoder_dim, dim, self.prefix) for _ in self.skip_ids)
        self.decoder = TransformerStack(
            depth=decoder_depth, dim=decoder_dim, heads=decoder_heads, mlp_ratio=mlp_ratio, norm=decoder_norm,
            norm_layer=norm_layer, shortcut=decoder_shortcut, causal=False, dropout=0.0, bias=True,
            zero_init_last=zero_init_last,
        )  # fmt: skip
        self.decoder_pred = nn.Linear(decoder_dim, patch_size**2 * in_chans)
        self.zero_init_last = zero_init_last
        init_transformer_(self.decoder, decoder_depth, rules=False)
        self._init_own()

    # ------------------------------------------------------------------ init

    def init_weights(self) -> None:
        """The whole init again: the encoder's (ViT), the decoder's (nanoGPT's, then every residual's own),
        the skips' (zero last layer) and MAE's positions, tokens and prediction."""
        self.encoder.init_weights()
        init_transformer_(self.decoder, self.decoder.depth)
        for skip in self.skips:
            skip.init_weights()
        self._init_own()

    @torch.no_grad()
    def _init_own(self) -> None:
        self.encoder.pos_embed.copy_(sincos_2d(self.encoder.pos_embed.shape[-1], self.grid, self.prefix))
        for p in (self.mask_token, self.decoder_cls_token):
            if p is not None:
                nn.init.normal_(p, std=INIT_STD)
        nn.init.xavier_uniform_(self.decoder_embed.weight)
        nn.init.zeros_(self.decoder_embed.bias)
        if self.zero_init_last:
            nn.init.zeros_(self.decoder_pred.weight)  # official: the prediction starts at zero
        else:
            nn.init.xavier_uniform_(self.decoder_pred.weight)
        nn.init.zeros_(self.decoder_pred.bias)

    def no_weight_decay(self) -> set[str]:
        """The encoder's (positions, class token, residual scalars) and the mask and class tokens."""
        own = {f"encoder.{n}" for n in self.encoder.no_weight_decay()}
        own |= {n for n, _ in self.named_parameters() if n.endswith(("mask_token", "cls_token"))}
        return own

    # ------------------------------------------------------------------ patches

    def patchify(self, img: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, L, p*p*C]`` (MAE's order: row-major patches, pixels then channels)."""
        p, g, c = self.patch_size, self.grid, self.in_chans
        x = img.reshape(img.shape[0], c, g, p, g, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(img.shape[0], g * g, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, p*p*C]`` -> ``[B, C, H, W]``, the inverse of :meth:`patchify`."""
        p, g, c = self.patch_size, self.grid, self.in_chans
        x = torch.einsum("nhwpqc->nchpwq", x.reshape(x.shape[0], g, g, p, p, c))
        return x.reshape(x.shape[0], c, g * p, g * p)

    def target(self, img: torch.Tensor) -> torch.Tensor:
        """The loss's target per patch: pixels, or with ``norm_pix_loss`` each patch normalised (MAE)."""
        target = self.patchify(img)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    # ------------------------------------------------------------------ forward

    def forward_encoder(
        self, img: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(latent [B, prefix + keep, dim], mask, ids_restore, skip features)`` over the visible patches."""
        enc = self.encoder
        x = enc.patch_embed(img).flatten(2).transpose(1, 2) + enc.pos_embed[:, self.prefix :]
        x, mask, ids_restore = random_masking(x, self.mask_ratio, generator)
        if enc.cls_token is not None:
            x = torch.cat([(enc.cls_token + enc.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
        hiddens: Hiddens | None = {} if enc.stack.reads_previous else None
        skips = []
        for i, block in enumerate(enc.stack.blocks):
            x = block(x, hiddens=hiddens)
            if i in self.skip_ids:
                skips.append(x)
        return enc.stack.norm(x), mask, ids_restore, skips

    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        """Every patch's prediction ``[B, L, p*p*C]``."""
        B = latent.shape[0]
        if self.skips:  # positional queries; the encoder enters through the skips, deepest first
            queries = self.decoder_pos_embed[:, self.prefix :].expand(B, -1, -1)
            if self.decoder_cls_token is not None:
                queries = torch.cat([self.decoder_cls_token.expand(B, -1, -1), queries], dim=1)
            x = self.decoder_embed(queries)
        else:
            x = unshuffle(self.decoder_embed(latent), self.mask_token, ids_restore, self.prefix) + self.decoder_pos_embed
        hiddens: Hiddens | None = {} if self.decoder.reads_previous else None
        for i, block in enumerate(self.decoder.blocks):
            if i < len(self.skips):
                x = self.skips[i](x, skips[len(skips) - 1 - i], ids_restore)
            x = block(x, hiddens=hiddens)
        return self.decoder_pred(self.decoder.norm(x))[:, self.prefix :]

    def loss(self, img: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches (over all when none is masked)."""
        per_patch = (pred - self.target(img)).pow(2).mean(dim=-1)
        if self.mask_ratio == 0:  # nothing removed: an autoencoder
            return per_patch.mean()
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, img: torch.Tensor, generator: torch.Generator | None = None) -> MaeOutput:
        """``img`` ``[B, C, H, W]`` -> :class:`MaeOutput`; ``generator`` draws the masks (default: torch's)."""
        latent, mask, ids_restore, skips = self.forward_encoder(img, generator)
        pred = self.forward_decoder(latent, ids_restore, skips)
        return MaeOutput(self.loss(img, pred, mask), pred, mask)

    # ------------------------------------------------------------------ frozen features

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        """The encoder on the whole image (no masking): normalised tokens ``[B, N, dim]`` (a ViT's)."""
        return self.encoder.forward_features(img)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = True) -> torch.Tensor:
        """The pooled feature ``[B, dim]`` (the class token, or the mean patch token with ``pool="mean"``)."""
        return self.encoder.forward_head(x, pre_logits=True)

    def encoder_state_dict(self) -> dict[str, Any]:
        """The encoder's weights as a :class:`ViT`'s (head excluded): ``vit.load_state_dict(sd, strict=False)``."""
        return self.encoder.state_dict()

    def effective_alpha(self) -> float:
        """The product of the encoder's stream weights over its sub-layers (``alpha_L^eff`` of Zhang et al.
        2024; the paper's guideline: 1e-3 to 1e-2); 1 for undecayed rules."""
        out = 1.0
        for m in self.encoder.modules():
            if isinstance(m, DecayedShortcut):
                out *= float(m.alpha)
        return out


# CPU-sized presets (every option stays overridable).
register_variant(
    "mae_fmnist", MaskedAutoencoder,
    "An MAE for 28x28 Fashion-MNIST: the vit_fmnist encoder (patch 4, 49 patches, 6 blocks, 64 wide, 4 heads), "
    "a 4-block 64-wide decoder, 75% masking.",
    defaults=dict(image_size=28, in_chans=1, patch_size=4, depth=6, dim=64, heads=4, mlp_ratio=2.0,
                  decoder_depth=4, decoder_dim=64, decoder_heads=4),
)  # fmt: skip
register_variant(
    "mae_cifar", MaskedAutoencoder,
    "An MAE for 32x32 CIFAR: the vit_cifar encoder (patch 4, 64 patches, 6 blocks, 128 wide, 4 heads), "
    "a 4-block 128-wide decoder, 75% masking.",
    defaults=dict(image_size=32, in_chans=3, patch_size=4, depth=6, dim=128, heads=4, mlp_ratio=2.0,
                  decoder_depth=4, decoder_dim=128, decoder_heads=4),
)  # fmt: skip

__all__ = ["LongSkip", "MaeOutput", "MaskedAutoencoder", "random_masking", "sincos_2d", "skip_blocks", "unshuffle"]
