"""Lesion (Veit et al. 2016, arXiv 1605.06431): a deleted sub-layer keeps its shortcut and loses its branch.

Each case is the written-out output of the deleted sub-layer: ``x`` for the identity rule with Pre-LN,
``LN(x)`` with Post-LN, ``(1 - T(x)) x`` for highway, ``relu(pad(x))`` at an option-A stage change, the
input itself for the plain net (``shortcut="none"``); every hook is gone after the context.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diag_models import ImageBlocks, TokenBlocks, perturb_

from resblocks.diagnostics import LesionError, delete_branch, lesion, lesion_study, lesion_units, residual_sublayers
from resblocks.errors import ConfigError


def io_of(sublayer, run):
    """``(input, output)`` of ``sublayer`` during ``run()``."""
    seen = {}

    def hook(module, args, kwargs, output):
        seen["x"], seen["out"] = (args[0] if args else kwargs["x"]), output

    handle = sublayer.register_forward_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen["x"], seen["out"]


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_pre_ln_identity_sublayer_deleted_passes_its_input(index):
    torch.manual_seed(0)
    model = TokenBlocks(norm="pre_ln").eval()
    r = residual_sublayers(model)[index]
    x = tokens()
    with lesion(model, [index]):
        inp, out = io_of(r, lambda: model(x))
    torch.testing.assert_close(out, inp, rtol=0, atol=0)


def test_post_ln_sublayer_deleted_is_the_norm_of_its_input():
    torch.manual_seed(0)
    model = TokenBlocks(norm="post_ln").eval()
    r = residual_sublayers(model)[2]
    with lesion(model, [2]):
        inp, out = io_of(r, lambda: model(tokens()))
    ln = r.post_norm
    torch.testing.assert_close(out, F.layer_norm(inp, (16,), ln.weight, ln.bias, ln.eps))


def test_highway_sublayer_deleted_keeps_the_carry_path():
    torch.manual_seed(0)
    model = perturb_(TokenBlocks(norm="pre_ln", shortcut="highway")).eval()
    r = residual_sublayers(model)[1]
    with delete_branch(r):
        inp, out = io_of(r, lambda: model(tokens()))
    gate = r.shortcut.gate
    t = torch.sigmoid(inp @ gate.weight.T + gate.bias)
    torch.testing.assert_close(out, (1 - t) * inp)


def test_conv_stage_change_keeps_the_padded_shortcut():
    torch.manual_seed(0)
    model = ImageBlocks(downsample="pad").eval()
    r = residual_sublayers(model)[1]  # 4 -> 8 channels at stride 2, option A
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with lesion(model, [1]):
        inp, out = io_of(r, lambda: model(x))
    padded = F.pad(inp[:, :, ::2, ::2], (0, 0, 0, 0, 0, 4))  # option A: subsample, 4 zero channels appended
    torch.testing.assert_close(out, torch.relu(padded), rtol=0, atol=0)


def test_plain_sublayer_deleted_passes_its_input_and_a_shape_change_refuses():
    torch.manual_seed(0)
    model = ImageBlocks(shortcut="none").eval()
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with lesion(model, [0]):
        torch.testing.assert_close(model(x), model.blocks[1](x), rtol=0, atol=0)
    with pytest.raises(LesionError, match="shortcut=none"), lesion(model, [1]):
        model(x)


def test_hooks_are_removed_and_outputs_return_exactly():
    torch.manual_seed(0)
    model = perturb_(TokenBlocks(norm="pre_ln", shortcut="laurel_rw_lr_pa")).eval()
    x = tokens()
    before = model(x)
    with lesion(model, [0, 3]):
        assert not torch.equal(model(x), before)
    assert torch.equal(model(x), before)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_study_deletes_every_unit_in_turn():
    torch.manual_seed(0)
    model = TokenBlocks(depth=3, norm="pre_ln").eval()
    x = tokens()
    intact = model(x).detach()

    @torch.no_grad()
    def evaluate():
        return {"change": float((model(x) - intact).norm() / intact.norm())}

    baseline, results = lesion_study(model, evaluate)  # by block: a Transformer block is 2 sub-layers
    assert baseline == {"change": 0.0}
    assert [(r.unit, r.indices) for r in results] == [(0, (0, 1)), (1, (2, 3)), (2, (4, 5))]
    assert all(r.get("change") > 0 and not r.skipped for r in results)
    assert [u for u, _ in lesion_units(model, by="sublayer")] == list(range(6))
    # Deleting block 1 by hand: its two sub-layers become the identity (Pre-LN, identity rule).
    with torch.no_grad():
        by_hand = model.blocks[2](model.blocks[0](x, hiddens={}), hiddens={})
    assert results[1].get("change") == pytest.approx(float((by_hand - intact).norm() / intact.norm()), rel=1e-6)


def test_plain_stage_change_is_reported_as_skipped():
    torch.manual_seed(0)
    model = ImageBlocks(shortcut="none").eval()
    x = torch.randn(2, 4, 8, 8)
    _, results = lesion_study(model, lambda: {"mean": float(model(x).detach().mean())})
    assert not results[0].skipped and results[0].metrics
    assert "changes the shape" in results[1].skipped and results[1].metrics == {}


def test_bad_requests_are_one_line():
    model = TokenBlocks()
    with pytest.raises(ConfigError, match=r"lesion: sub-layer\(s\) \[9\]"), lesion(model, [9]):
        pass
    with pytest.raises(ConfigError, match="no resblocks Residual"):
        lesion_study(torch.nn.Linear(2, 2), dict)
    with pytest.raises(ConfigError, match="lesion.by"):
        lesion_units(model, by="layer")

