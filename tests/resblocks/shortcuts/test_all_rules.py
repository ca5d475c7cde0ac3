"""Properties every registered shortcut rule must have (parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resblocks import ConfigError
from resblocks.norms import is_norm
from resblocks.shortcuts import NO_DECAY_SUFFIXES, SHORTCUTS, Site, channel_linear, channel_view

from .conftest import merge

CASES = [(name, layout) for name in SHORTCUTS.names() for layout in SHORTCUTS.get(name).layouts]


def test_registry_lists_the_rules() -> None:
    expected = {"identity", "none", "projection", "decayed", "highway", "rezero", "layerscale", "deepnorm"}
    expected |= {"laurel_rw", "laurel_lr", "laurel_pa", "laurel_rw_lr", "laurel_rw_pa", "laurel_rw_lr_pa"}
    assert expected <= set(SHORTCUTS.names())


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_trains_every_parameter(name: str, layout: str, make, rand) -> None:
    """Forward + backward; after two optimizer steps every parameter gets a non-zero gradient (no dead params)."""
    rule = make(name, layout, index=3, total=8)
    branch = channel_linear(rule.site, rule.site.dim, rule.site.dim)  # F depends on x, as in a real block
    earlier = [rand(layout) for _ in range(3)]  # previous same-shape activations for PA's lags
    x, target = rand(layout), rand(layout)
    opt = torch.optim.SGD([*rule.parameters(), *branch.parameters()], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        x_in = x.clone().requires_grad_()
        out = merge(rule, branch(x_in), x_in, earlier)
        assert out.shape == x.shape and torch.isfinite(out).all()
        ((out - target) ** 2).mean().backward()
        opt.step()
    assert x_in.grad is not None and x_in.grad.abs().sum() > 0
    for pname, p in rule.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} gets no gradient"


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_no_weight_decay_names(name: str, layout: str, make) -> None:
    """Every small parameter is excluded, and is a named residual scalar, a bias or a norm affine."""
    rule = make(name, layout)
    small = {n for n, p in rule.named_parameters() if p.ndim <= 1}
    assert rule.no_weight_decay() == small
    norm_params = {f"{m}.{n}" for m, mod in rule.named_modules() if is_norm(mod) for n, _ in mod.named_parameters()}
    for n in small - norm_params:
        assert n.endswith(NO_DECAY_SUFFIXES) or n.endswith("bias"), n


@pytest.mark.parametrize("name", SHORTCUTS.names())
def test_unknown_option_names_the_key(name: str, make) -> None:
    with pytest.raises(ConfigError, match=r"shortcut\.ranq: unknown option"):
        make(name, SHORTCUTS.get(name).layouts[0], ranq=4)


def test_direct_construction_checks_layout() -> None:
    with pytest.raises(ConfigError, match="shortcut: DeepNormShortcut does not support image layout; valid: token"):
        SHORTCUTS.get("deepnorm")(Site(dim=8, layout="image"))


@pytest.mark.parametrize("layout", ["token", "image"])
def test_channel_view_broadcasts_and_keeps_dtype(layout: str, rand) -> None:
    x = rand(layout, dim=8).bfloat16()
    site = Site(dim=8, layout=layout)  # type: ignore[arg-type]
    v = nn.Parameter(torch.arange(8, dtype=torch.float32))
    y = channel_view(site, v, x) * x
    assert y.dtype == torch.bfloat16
    expected = x.float().movedim(1, -1) * v if layout == "image" else x.float() * v
    got = y.float().movedim(1, -1) if layout == "image" else y.float()
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_options_are_refused(value: float) -> None:
    from resblocks.shortcuts import shortcut_factory

    with pytest.raises(ConfigError, match=rf"^shortcut\.gate_bias: {value}; valid: a finite number$"):
        shortcut_factory("highway", gate_bias=value)
    with pytest.raises(ConfigError, match=r"^shortcut\.alpha_min: nan; valid: a finite number$"):
        shortcut_factory({"name": "decayed", "alpha_min": float("nan")})
