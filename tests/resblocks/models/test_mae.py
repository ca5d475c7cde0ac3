"""The masked autoencoder: masking, the loss, the decayed schedule, the long skips, the encoder as a ViT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resblocks
from resblocks import SHORTCUTS, ConfigError
from resblocks.models.mae import LongSkip, MaskedAutoencoder, random_masking, sincos_2d, skip_blocks
from resblocks.shortcuts.decayed import DecayedShortcut

TINY = dict(image_size=8, patch_size=2, in_chans=1, depth=2, dim=16, heads=2, decoder_depth=2, decoder_dim=16,
            decoder_heads=2)  # fmt: skip


def tiny(**options) -> MaskedAutoencoder:
    torch.manual_seed(0)
    return resblocks.build_model("mae", **{**TINY, **options})


def images(n: int = 3, chans: int = 1, size: int = 8) -> torch.Tensor:
    return torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.75, 0.9])
def test_masking_keeps_exactly_the_requested_share_per_sample(ratio: float) -> None:
    B, L, D = 5, 16, 3
    x = torch.randn(B, L, D)
    visible, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(0))
    keep = int(L * (1 - ratio))
    assert visible.shape == (B, keep, D)
    assert (mask.sum(dim=1) == L - keep).all()
    for b in range(B):
        kept = torch.nonzero(mask[b] == 0).flatten()
        # the visible tokens are exactly the unmasked patches (as a set: their order is the shuffle's)
        got = {tuple(v.tolist()) for v in visible[b]}
        assert got == {tuple(x[b, i].tolist()) for i in kept}
        assert sorted(ids_restore[b].tolist()) == list(range(L))
    other = random_masking(x, ratio, torch.Generator().manual_seed(1))[1]
    if 0 < ratio:
        assert not torch.equal(mask, other)  # per-sample random, a new draw per generator


def test_loss_counts_only_the_masked_patches() -> None:
    model = tiny(zero_init_last=False)
    img = images()
    out = model(img, generator=torch.Generator().manual_seed(0))
    target = model.patchify(img)
    by_hand = sum(
        ((out.pred[b, i] - target[b, i]) ** 2).mean() for b in range(img.shape[0]) for i in range(16) if out.mask[b, i]
    ) / out.mask.sum()
    torch.testing.assert_close(out.loss, by_hand)
    # a prediction changed only where patches were visible leaves the loss unchanged
    pred = out.pred + 10.0 * (1 - out.mask)[..., None]
    torch.testing.assert_close(model.loss(img, pred, out.mask), out.loss)


def test_without_masking_and_a_zero_decoder_the_loss_is_the_plain_pixel_mse() -> None:
    model = tiny(mask_ratio=0.0)
    img = images()
    with torch.no_grad():
        model.decoder_pred.weight.zero_()  # zero_init_last already zeroes it; the bias too
        model.decoder_pred.bias.zero_()
    out = model(img)
    assert out.mask.sum() == 0
    torch.testing.assert_close(out.loss, F.mse_loss(torch.zeros_like(img), img))
    # and with any decoder, the plain MSE of the reassembled prediction
    model = tiny(mask_ratio=0.0, zero_init_last=False)
    out = model(img)
    torch.testing.assert_close(out.loss, F.mse_loss(model.unpatchify(out.pred), img))


def test_norm_pix_loss_normalises_each_patch() -> None:
    model = tiny(norm_pix_loss=True)
    target = model.target(images())
    torch.testing.assert_close(target.mean(dim=-1), torch.zeros(target.shape[:2]), atol=1e-5, rtol=0)


def test_patchify_round_trips_in_maes_order() -> None:
    model = tiny(in_chans=3)
    img = images(chans=3)
    patches = model.patchify(img)
    assert patches.shape == (3, 16, 2 * 2 * 3)
    torch.testing.assert_close(model.unpatchify(patches), img)
    # patch 1 is the second patch of the first row; pixels first, then channels (MAE's 'nhwpqc')
    torch.testing.assert_close(patches[0, 1].reshape(2, 2, 3), img[0, :, 0:2, 2:4].permute(1, 2, 0))


def mae_reference_sincos(dim: int, grid: int) -> np.ndarray:
    """MAE's ``get_2d_sincos_pos_embed`` (facebookresearch/mae util/pos_embed.py), transcribed."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    g = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))  # w goes first
    g = np.stack(g, axis=0).reshape([2, 1, grid, grid])
    return np.concatenate([one_d(dim // 2, g[0]), one_d(dim // 2, g[1])], axis=1)


def test_positions_are_maes_fixed_sine_cosine() -> None:
    ours = sincos_2d(16, 4, prefix=1)[0]
    assert (ours[0] == 0).all()
    np.testing.assert_allclose(ours[1:].numpy(), mae_reference_sincos(16, 4), rtol=1e-6, atol=1e-6)
    model = tiny()
    assert not model.encoder.pos_embed.requires_grad
    torch.testing.assert_close(model.encoder.pos_embed.detach(), sincos_2d(16, 4, prefix=1))
    model.init_weights()
    torch.testing.assert_close(model.encoder.pos_embed.detach(), sincos_2d(16, 4, prefix=1))


@pytest.mark.parametrize("depth,alpha_min", [(2, 0.6), (6, 0.7), (12, 0.8)])
def test_decayed_schedule_is_the_official_one_over_the_encoder_only(depth: int, alpha_min: float) -> None:
    model = tiny(depth=depth, decoder_depth=max(2, depth // 2), shortcut={"name": "decayed", "alpha_min": alpha_min})
    official = 1 - np.linspace(0, 1, 2 * depth).reshape(-1, 2) * (1 - alpha_min)
    ours = [[float(b.attn.shortcut.alpha), float(b.mlp.shortcut.alpha)] for b in model.encoder.stack.blocks]
    np.testing.assert_allclose(ours, official, rtol=1e-6)
    assert not any(isinstance(m, DecayedShortcut) for m in model.decoder.modules())  # the decoder: undecayed
    assert model.effective_alpha() == pytest.approx(float(np.prod(official)), rel=1e-5)
    assert tiny().effective_alpha() == 1.0


def test_long_skips_follow_the_official_code() -> None:
    assert skip_blocks(12) == list(np.arange(12).reshape(-1, 2)[:, -1])  # [1, 3, ..., 11]
    assert skip_blocks(5) == [0, 2, 4]  # an odd depth keeps the last block
    decayed = tiny(depth=4, shortcut="decayed")
    assert decayed.skip_ids == [1, 3] and len(decayed.skips) == 2  # on by default with the decayed rule
    assert tiny().skips == [] or len(tiny().skips) == 0  # off by default otherwise
    assert len(tiny(long_skips=True).skips) == 1  # available for any rule
    with pytest.raises(ConfigError, match="decoder_depth"):
        tiny(depth=6, long_skips=True, decoder_depth=2)


def test_a_long_skip_starts_as_an_exact_no_op() -> None:
    skip = LongSkip(dim=16, enc_dim=8, prefix=1)
    x, h = torch.randn(2, 17, 16), torch.randn(2, 5, 8)
    ids_restore = torch.argsort(torch.rand(2, 16), dim=1)
    assert torch.equal(skip(x, h, ids_restore), x)
    skip.init_weights()
    assert torch.equal(skip(x, h, ids_restore), x)
    with torch.no_grad():
        skip.fc[2].weight.normal_()
    assert not torch.equal(skip(x, h, ids_restore), x)  # the check can fail


def test_with_skips_the_decoder_sees_the_encoder_only_through_them() -> None:
    model = tiny(long_skips=True, zero_init_last=False)
    img = images()
    with torch.no_grad():
        model.skips[0].fc[2].weight.normal_()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base = model(img, generator=g()).pred
    with torch.no_grad():
        model.skips[0].fc[2].weight.zero_()
    # skips closed: the prediction no longer depends on the image
    closed = model(img, generator=g()).pred
    assert not torch.allclose(base, closed)
    torch.testing.assert_close(closed, model(torch.randn_like(img), generator=g()).pred)


def rule_spec(rule: str):
    return {"name": rule, "rank": 4} if "rank" in SHORTCUTS.options(rule) else rule


def token_rules():
    for rule in SHORTCUTS.names():
        cls = SHORTCUTS.get(rule)
        if "token" in cls.layouts:
            yield pytest.param(rule, cls.requires_norm or "pre_ln", id=rule)


@pytest.mark.parametrize("rule,norm", list(token_rules()))
def test_every_rule_trains_in_the_encoder_and_in_the_decoder(rule: str, norm: str) -> None:
    cls = SHORTCUTS.get(rule)  # one starting-at-zero mechanism per branch, none for a plain sub-layer
    zero = cls.carries_stream and not cls.gates_branch_at_zero
    for where in ("encoder", "decoder"):
        opts = dict(shortcut=rule_spec(rule), norm=norm) if where == "encoder" else dict(
            decoder_shortcut=rule_spec(rule), decoder_norm=norm)  # fmt: skip
        model = tiny(zero_init_last=zero, long_skips=True, **opts)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        # With long skips the encoder's final norm is not on the training path (the official encoder has none;
        # frozen features pass through it at its initial unit scale).
        touched = {n: False for n, p in model.named_parameters() if p.requires_grad and "encoder.stack.norm" not in n}
        # Zero-initialised output layers in a chain (prediction, skip, branch outputs) open one per step.
        for step in range(6):
            opt.zero_grad(set_to_none=True)
            loss = model(images(), generator=torch.Generator().manual_seed(step)).loss
            assert torch.isfinite(loss)
            loss.backward()
            for n, p in model.named_parameters():
                if n in touched and p.grad is not None and p.grad.abs().sum() > 0:
                    touched[n] = True
            opt.step()
        dead = [n for n, ok in touched.items() if not ok]
        assert not dead, f"{where} {rule}: never a gradient: {dead}"


def test_the_encoder_loads_into_a_vit_for_fine_tuning() -> None:
    model = tiny(zero_init_last=False)
    vit = resblocks.build_model("vit", **{k: TINY[k] for k in ("image_size", "patch_size", "in_chans", "depth", "dim",
                                                                "heads")}, num_classes=3)  # fmt: skip
    missing, unexpected = vit.load_state_dict(model.encoder_state_dict(), strict=False)
    assert set(missing) == {"head.weight", "head.bias"} and not unexpected
    img = images()
    vit.eval(), model.eval()
    torch.testing.assert_close(vit.forward_head(vit.forward_features(img), pre_logits=True),
                               model.forward_head(model.forward_features(img)))  # fmt: skip


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="zero_init_last=false"):
        tiny(shortcut="none")  # a plain encoder whose branches start at zero would output zeros
    with pytest.raises(ConfigError, match="mask_ratio"):
        tiny(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="dim"):
        tiny(decoder_dim=18, decoder_heads=2)


def test_presets_build_and_take_their_inputs() -> None:
    for name, shape in (("mae_fmnist", (2, 1, 28, 28)), ("mae_cifar", (2, 3, 32, 32))):
        model = resblocks.build_model(name)
        out = model(torch.randn(shape))
        assert out.pred.shape[1] == (shape[-1] // 4) ** 2 and torch.isfinite(out.loss)


def test_the_probe_numbers_encoder_and_decoder_sub_layers_in_network_order() -> None:
    from resblocks.diagnostics import ResidualProbe, to_scalars

    model = tiny()
    with ResidualProbe(model) as probe:
        model(images()).loss.backward()
    records = probe.collect()
    assert [r.index for r in records] == list(range(8)) and {r.total for r in records} == {8}
    assert records[0].name.startswith("encoder") and records[-1].name.startswith("decoder")
    assert len([k for k in to_scalars(records) if k.startswith("residual/f_rms/")]) == 8
