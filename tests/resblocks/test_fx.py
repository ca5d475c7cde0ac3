"""torch.fx: torchvision's ``create_feature_extractor`` traces every rule on a small CNN and the ViT.

Decisions in the forwards are static (taken at construction): LAuReL-RW's scalar/per-channel choice,
the per-channel views, LAuReL-PA's stage bound; the fused ops with Python-side checks (``weighted_sum``,
``channel_matmul``) and the ViT's input-size check are leaves of the graph (``torch.fx.wrap``). The traced
module must compute exactly what the model does, in eval and in training mode (stochastic depth on),
forward and backward, and its block outputs must be the model's intermediates.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.fx import symbolic_trace

from resblocks import SHORTCUTS, ConfigError, build_model

fe = pytest.importorskip("torchvision.models.feature_extraction")

FAMILIES = {  # two blocks per stage, so LAuReL-PA mixes earlier activations and meets stage boundaries
    "cnn": ("cifar_resnet", dict(depth=14, width=4, in_chans=1, num_classes=3), (2, 1, 16, 16)),
    "preact": ("preact_resnet", dict(depth=14, block="basic", width=4, in_chans=1, num_classes=3), (2, 1, 16, 16)),
    "vit": ("vit", dict(image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=2, dim=16, heads=2), (2, 1, 8, 8)),
}
# Options that change what the rule's forward does: identity h for PA, per-channel and softmax RW.
EXTRA = {"laurel_pa_identity_h": ("laurel_pa", {}), "laurel_rw_vector": ("laurel_rw", dict(per_channel=True, norm="softmax"))}


def spec(rule: str, options: dict | None = None) -> object:
    if options is not None:
        return {"name": rule, **options}
    return {"name": rule, "rank": 2} if "rank" in SHORTCUTS.options(rule) else rule


def cases():
    for fam, (model, _, _) in FAMILIES.items():
        layout = "token" if model == "vit" else "image"
        rules = {r: (r, None) for r in SHORTCUTS.names()} | EXTRA
        for case, (rule, options) in rules.items():
            if layout in SHORTCUTS.get(rule).layouts:
                yield pytest.param(fam, rule, options, id=f"{fam}-{case}")


def build(fam: str, rule: str, options: dict | None) -> torch.nn.Module:
    name, opts, _ = FAMILIES[fam]
    norm = SHORTCUTS.get(rule).requires_norm
    extra = {"norm": norm} if norm and name == "vit" else {}
    torch.manual_seed(0)
    model = build_model(name, **opts, **extra, shortcut=spec(rule, options), drop_path_rate=0.2, layer_scale_init=0.5)
    with torch.no_grad():  # off the identity-at-init point, so every term (PA's earlier activations too) matters
        for n, p in model.named_parameters():
            if ".shortcut." in n:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("fam,rule,options", list(cases()))
def test_feature_extractor_equals_the_model(fam: str, rule: str, options: dict | None) -> None:
    model = build(fam, rule, options)
    x = torch.randn(*FAMILIES[fam][2], generator=torch.Generator().manual_seed(0))
    train_nodes, eval_nodes = fe.get_graph_node_names(model)
    ext = fe.create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]]
    )
    model.eval(), ext.eval()
    with torch.no_grad():
        torch.testing.assert_close(ext(x)[eval_nodes[-1]], model(x), rtol=0, atol=0)
    model.train(), ext.train()
    outs, grads = [], []
    for m, key in ((model, None), (ext, train_nodes[-1])):
        torch.manual_seed(1)  # the same stochastic-depth draws
        out = m(x) if key is None else m(x)[key]
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in m.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=1e-6, atol=1e-7, msg=n)


@pytest.mark.parametrize("fam", sorted(FAMILIES))
def test_block_outputs_are_the_intermediates(fam: str) -> None:
    pytest.importorskip("timm")
    model = build(fam, "laurel_rw_lr_pa", None).eval()
    x = torch.randn(*FAMILIES[fam][2], generator=torch.Generator().manual_seed(0))
    _, nodes = fe.get_graph_node_names(model)
    blocks = [f["module"] for f in model.feature_info[(0 if fam == "vit" else 1):]]
    last = {b: [n for n in nodes if n.startswith(b + ".")][-1] for b in blocks}  # each block's output node
    ext = fe.create_feature_extractor(model, return_nodes={node: b for b, node in last.items()})
    with torch.no_grad():
        got = ext(x)
        want = model.forward_intermediates(x, output_fmt="NLC" if fam == "vit" else "NCHW", intermediates_only=True)
    for b, w in zip(blocks, want if fam == "vit" else want[1:]):
        g = got[b][:, model.num_prefix_tokens :] if fam == "vit" else got[b]
        torch.testing.assert_close(g, w, rtol=0, atol=0, msg=b)


def test_densenet_traces() -> None:
    model = build_model("densenet_bc", depth=10, growth_rate=4, in_chans=1, num_classes=3).eval()
    x = torch.randn(1, 1, 16, 16)
    traced = symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


def test_traced_vit_still_checks_its_input_size() -> None:
    model = build_model("vit", image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=1, dim=8, heads=2)
    traced = symbolic_trace(copy.deepcopy(model))
    assert any(getattr(n.target, "__name__", "") == "check_image_size" for n in traced.graph.nodes)
    with pytest.raises(ConfigError, match=r"^input: image size \(12, 12\); valid: \(8, 8\)$"):
        traced(torch.randn(1, 1, 12, 12))
