"""Each rule's reported state (``Shortcut.state()``, through the probe) equals the module's own values,
written out here from its parameters and its equation (softmax / sigmoid applied), for every registered rule.

A new rule must be added to ``EXPECTED``: the registry-wide test below fails for a name it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from resblocks import SHORTCUTS, Residual, Site, shortcut_factory
from resblocks.branches.mlp import Mlp
from resblocks.diagnostics import ResidualProbe
from resblocks.modifiers import branch_output

from diag_models import perturb_

DIM, TOTAL = 8, 6  # 6 sub-layers: 3 blocks of 2 (Transformer-like)

Expected = Callable[[nn.Module, torch.Tensor], dict[str, float]]


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def rw(rule: nn.Module) -> dict[str, float]:
    """LAuReL-RW's (alpha, beta) from its raw parameters: free, softmax of two logits, or sigmoid of one."""
    w = rule.weights
    if w.norm == "none":
        a, b = w.alpha.detach().double(), w.beta.detach().double()
    elif w.norm == "softmax":
        la, lb = w.alpha_logit.detach().double(), w.beta_logit.detach().double()
        a, b = la.exp() / (la.exp() + lb.exp()), lb.exp() / (la.exp() + lb.exp())
    else:
        a = 1 / (1 + (-w.alpha_logit.detach().double()).exp())
        b = 1 - a
    return {"alpha": a.mean().item(), "beta": b.mean().item()}


def pa(rule: nn.Module) -> dict[str, float]:
    return {f"gamma_{j}": g for j, g in enumerate(rule.previous.gamma.tolist())}


def highway(rule: nn.Module, s: torch.Tensor) -> dict[str, float]:
    w, b = rule.gate.weight.detach().double().flatten(1), rule.gate.bias.detach().double()
    if rule.site.layout == "token":
        z = s.double() @ w.T + b
    else:
        z = torch.einsum("oc,bchw->bohw", w, s.double()) + b.view(-1, 1, 1)
    return {"gate": (1 / (1 + torch.exp(-z))).mean().item(), "gate_bias": b.mean().item()}


def decayed(rule: nn.Module) -> dict[str, float]:
    # arXiv 2404.10947: alpha_l = 1 - l / (L - 1) * (1 - alpha_min), alpha_min = 0.7 by default
    site = rule.site
    return {"alpha": 1 - site.index / (site.total - 1) * (1 - 0.7)}


EXPECTED: dict[str, Expected] = {
    "identity": lambda rule, s: {},
    "none": lambda rule, s: {},
    "projection": lambda rule, s: {},
    "laurel_lr": lambda rule, s: {},
    "decayed": lambda rule, s: decayed(rule),
    "deepnorm": lambda rule, s: {"alpha": (2 * rule.site.blocks) ** 0.25},  # arXiv 2203.00555: (2N)^(1/4)
    "rezero": lambda rule, s: {"alpha": rule.alpha.item()},
    "layerscale": lambda rule, s: {"layer_scale": rule.ls.scale.detach().double().abs().mean().item()},
    "highway": highway,
    "laurel_rw": lambda rule, s: rw(rule),
    "laurel_rw_lr": lambda rule, s: rw(rule),
    "laurel_pa": lambda rule, s: pa(rule),
    "laurel_rw_pa": lambda rule, s: rw(rule) | pa(rule),
    "laurel_rw_lr_pa": lambda rule, s: rw(rule) | pa(rule),
}

OPTIONS = {  # the RW normalisations and the per-channel form, where a rule has them
    "laurel_rw": [{}, {"norm": "softmax"}, {"norm": "sigmoid"}, {"norm": "softmax", "per_channel": True}],
    "laurel_rw_lr": [{"rank": 4}, {"rank": 4, "norm": "sigmoid"}],
    "laurel_lr": [{"rank": 4}],
    "laurel_rw_lr_pa": [{"rank": 4, "norm": "softmax"}],
    "laurel_rw_pa": [{"norm": "softmax"}],
    "rezero": [{"init": 0.5}],
}


def cases():
    for name in SHORTCUTS.names():
        for layout in SHORTCUTS.get(name).layouts:
            for opts in OPTIONS.get(name, [{}]):
                yield pytest.param(name, layout, opts, id=f"{name}-{layout}-{opts}")


class Chain(nn.Module):
    """Sub-layers 2..5 of a 6-sub-layer network, each an MLP (tokens) or 1x1-conv (images) branch."""

    def __init__(self, name: str, layout: str, options: dict) -> None:
        super().__init__()
        make = shortcut_factory(name, **options)
        subs = []
        for i in range(2, TOTAL):
            site = Site(DIM, layout, i, TOTAL, per_block=2)
            branch = Mlp(DIM, 2 * DIM) if layout == "token" else nn.Sequential(nn.Conv2d(DIM, DIM, 1), nn.Tanh())
            subs.append(Residual(branch, make(site), branch_out=branch_output(site, layer_scale_init=0.3)))
        self.subs = nn.ModuleList(subs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hiddens: dict[int, torch.Tensor] = {}
        for r in self.subs:
            x = r(x, hiddens=hiddens)
        return x


@pytest.mark.parametrize("name,layout,options", list(cases()))
def test_reported_state_is_the_rules_own(name: str, layout: str, options: dict) -> None:
    torch.manual_seed(0)
    model = perturb_(Chain(name, layout, options), scale=0.5)
    x = torch.randn(2, 3, DIM) if layout == "token" else torch.randn(2, DIM, 3, 3)
    inputs: list[torch.Tensor] = []
    spies = [r.shortcut.register_forward_pre_hook(lambda _m, a: inputs.append(a[1])) for r in model.subs]
    with ResidualProbe(model) as probe:
        model(x).sum().backward()
        records = probe.collect()
    for h in spies:
        h.remove()
    for rec, r, s in zip(records, model.subs, inputs):
        want = {f"shortcut.{k}": v for k, v in EXPECTED[name](r.shortcut, s).items()}
        want["branch_out.layer_scale"] = r.branch_out.layer_scale.scale.detach().double().abs().mean().item()
        assert rec.state.keys() == want.keys()
        assert rec.state == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_every_rule_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SHORTCUTS.names())


def test_state_is_not_a_view_of_the_parameters() -> None:
    """A probe reads state at the forward and the host reads it after the optimiser step: it must be a copy."""
    for name, opts in [("rezero", {"init": 0.5}), ("laurel_pa", {}), ("decayed", {}), ("laurel_rw", {})]:
        rule = shortcut_factory(name, **opts)(Site(DIM, "token", 1, 4))
        state = rule.state()
        before = {k: v.clone() for k, v in state.items()}
        with torch.no_grad():
            for p in rule.parameters():
                p.add_(1.0)
            for b in rule.buffers():
                b.add_(1.0)
        assert all(torch.equal(state[k], before[k]) for k in state), name
        assert all(v.dtype == torch.float32 and v.ndim == 0 for v in state.values()), name
