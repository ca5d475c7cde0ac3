"""Every number the probe reports, against a hand computation on 2-block models.

The reference re-runs each sub-layer's parts one by one (``pre_norm``, branch, ``branch_norm``,
modifiers, ``downsample``, rule, ``post_norm``/``post_act``) on a copy of the model, keeps every stream
input with ``retain_grad``, and writes each quantity out (in float64) from those tensors.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from resblocks import Residual
from resblocks.diagnostics import ResidualProbe, SubLayerStats

from diag_models import ImageBlocks, TokenBlocks, perturb_


def rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item()


def norm(t: torch.Tensor) -> float:
    return t.double().pow(2).sum().sqrt().item()


def erank(rows: torch.Tensor) -> float:
    s = torch.linalg.svdvals(rows.double())
    p = s / s.sum()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def rows_of(out: torch.Tensor, layout: str) -> torch.Tensor:
    return out.reshape(-1, out.shape[-1]) if layout == "token" else out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])


def reference(model: nn.Module, x: torch.Tensor, loss_fn) -> list[dict]:
    """Each sub-layer's quantities computed by hand on ``model`` (run on a copy; the stream is threaded
    through the sub-layers in module order, as both test models do)."""
    model = copy.deepcopy(model)
    subs = [m for m in model.modules() if isinstance(m, Residual)]
    inputs, shortcut_inputs, rows = [], [], []
    out = []
    h = x
    for r in subs:
        h = h.detach().requires_grad_() if not inputs else h
        h.retain_grad()
        inputs.append(h)
        a = r.pre_norm(h)
        b = r.branch_norm(r.branch(a))
        ref = dict(x_rms=rms(h), branch_rms=rms(b))  # now: post-activation ReLUs below work in place
        f = r.branch_out(b)
        s = r.downsample(a if r.shared_pre_norm else h)
        ref["f_rms"] = rms(f)
        same = f.shape == s.shape
        ref["cos_f_x"] = (f.double() * s.double()).sum().item() / (norm(f) * norm(s)) if same else math.nan
        k = r.shortcut.num_previous
        if k:
            prev = [p for p in reversed(shortcut_inputs) if p.shape == s.shape][:k]
            merged = r.shortcut(f, s, prev)
        else:
            merged = r.shortcut(f, s)
        shortcut_inputs.append(s)
        y = r.post_act(r.post_norm(merged))
        ref["out_rms"] = rms(y)
        ref["update_ratio"] = norm(y - s) / norm(s) if y.shape == s.shape else math.nan
        ref["effective_rank"] = erank(rows_of(y.detach(), r.site.layout))
        ref["s"] = s.detach()
        out.append(ref)
        h = y
    loss_fn(h).backward()
    for r, h, ref in zip(subs, inputs, out):
        ref["grad_rms"] = rms(h.grad)
        ref["branch_grad_norm"] = math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in r.branch.parameters()))
    return out


def loss_fn(y: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1, 1, y.numel()).view(y.shape)  # a fixed, non-trivial linear-quadratic loss
    return (w * y).sum() + y.pow(2).mean()


def probe(model: nn.Module, x: torch.Tensor) -> list[SubLayerStats]:
    with ResidualProbe(model, effective_rank=True, rank_rows=10_000) as p:
        loss_fn(model(x.detach().requires_grad_())).backward()  # the first sub-layer's input gets dL/dx too
        return p.collect()


def check(records: list[SubLayerStats], refs: list[dict]) -> None:
    assert len(records) == len(refs)
    for i, (rec, ref) in enumerate(zip(records, refs)):
        for q in ("x_rms", "branch_rms", "f_rms", "out_rms", "update_ratio", "cos_f_x", "grad_rms",
                  "branch_grad_norm", "effective_rank"):
            got, want = getattr(rec, q), ref[q]
            if math.isnan(want):
                assert math.isnan(got), (i, q, got)
            else:
                assert got == pytest.approx(want, rel=2e-5, abs=1e-7), (i, q, got, want)


def softmax2(a: float, b: float) -> tuple[float, float]:
    ea, eb = math.exp(a), math.exp(b)
    return ea / (ea + eb), eb / (ea + eb)


def test_token_blocks_peri_ln_laurel_pa_layerscale() -> None:
    """4 sub-layers (2 blocks x attention/MLP), Peri-LN (a branch norm), LayerScale (a modifier after it),
    LAuReL-RW+PA with softmax weights reading earlier stream inputs."""
    torch.manual_seed(0)
    shortcut = {"name": "laurel_rw_pa", "norm": "softmax", "k": 3}
    model = perturb_(TokenBlocks(norm="peri_ln", shortcut=shortcut, layer_scale_init=0.5))
    x = torch.randn(3, 5, 16)
    refs = reference(model, x, loss_fn)
    records = probe(model, x)
    check(records, refs)
    subs = [m for m in model.modules() if isinstance(m, Residual)]
    assert [(r.index, r.block, r.blocks, r.per_block, r.total) for r in records] == [
        (i, i // 2, 2, 2, 4) for i in range(4)
    ]
    assert [r.name for r in records] == ["blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp"]
    for rec, r in zip(records, subs):
        w = r.shortcut.weights
        alpha, beta = softmax2(w.alpha_logit.item(), w.beta_logit.item())
        gammas = r.shortcut.previous.gamma.tolist()
        want = {"shortcut.alpha": alpha, "shortcut.beta": beta}
        want |= {f"shortcut.gamma_{j}": g for j, g in enumerate(gammas)}
        want["branch_out.layer_scale"] = r.branch_out.layer_scale.scale.abs().double().mean().item()
        assert rec.state == pytest.approx(want, rel=1e-6)
        assert rec.branch_rms != pytest.approx(rec.f_rms)  # the modifier sits between the two


@pytest.mark.parametrize("block,downsample", [("basic", "pad"), ("preact_basic", "conv")])
def test_image_blocks_highway_with_downsample(block: str, downsample: str) -> None:
    """2 conv blocks, the second changing 4x8x8 -> 8x4x4: the update ratio and the cosine use the
    downsampled shortcut input (pre-activation: the downsample reads ReLU(BN(x)))."""
    torch.manual_seed(0)
    model = perturb_(ImageBlocks(block, downsample, shortcut="highway", layer_scale_init=0.5))
    x = torch.randn(4, 4, 8, 8)
    refs = reference(model, x, loss_fn)
    records = probe(model, x)
    check(records, refs)
    subs = [m for m in model.modules() if isinstance(m, Residual)]
    assert subs[1].shared_pre_norm == (block == "preact_basic")
    for rec, r, ref in zip(records, subs, refs):
        w = r.shortcut.gate.weight.double().flatten(1)  # [C, C] of the 1x1 conv
        b = r.shortcut.gate.bias.double()
        z = torch.einsum("oc,bchw->bohw", w, ref["s"].double()) + b.view(1, -1, 1, 1)
        t = 1 / (1 + torch.exp(-z))
        want = {
            "shortcut.gate": t.mean().item(),
            "shortcut.gate_bias": b.mean().item(),
            "branch_out.layer_scale": r.branch_out.layer_scale.scale.abs().double().mean().item(),
        }
        assert rec.state == pytest.approx(want, rel=1e-5)


def test_plain_net_at_a_shape_change_reports_nan() -> None:
    """``none`` has no shortcut path, so where the block changes the shape nothing has the output's shape
    to compare with: NaN, not a number from mismatched tensors."""
    torch.manual_seed(0)
    model = ImageBlocks("basic", "pad", shortcut="none")
    x = torch.randn(4, 4, 8, 8)
    refs = reference(model, x, loss_fn)
    records = probe(model, x)
    check(records, refs)
    assert not math.isnan(records[0].update_ratio) and not math.isnan(records[0].cos_f_x)
    assert math.isnan(records[1].update_ratio) and math.isnan(records[1].cos_f_x)
    assert records[0].state == {} and records[1].state == {}


def test_without_backward_gradients_are_nan() -> None:
    torch.manual_seed(0)
    model = TokenBlocks()
    x = torch.randn(2, 3, 16)
    loss_fn(model(x)).backward()  # stale .grad from an earlier step must not be reported
    with ResidualProbe(model) as p, torch.no_grad():
        model(x)
        records = p.collect()
    assert all(math.isnan(r.grad_rms) and math.isnan(r.branch_grad_norm) for r in records)
    assert all(r.x_rms > 0 and r.out_rms > 0 for r in records)
