"""timm's model-interface checks (those ``timm/tests/test_models.py`` applies to its own models) on every
registered resblocks image model: forward and backward, grad checkpointing, the default cfg (unpooled
``forward_features``, ``forward_head(pre_logits=True)``, ``reset_classifier``, ``num_classes=0`` and
``global_pool=""``, classifier and first-conv names), ``features_only``, ``forward_intermediates``.

Each family runs them for real at a tiny size; every registered name (the deep presets too) runs the
default-cfg shape checks at its cfg's input size on the meta device, where no arithmetic is done.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import torch

timm = pytest.importorskip("timm")

import timm.optim  # noqa: E402

import resblocks  # noqa: E402  (registers the models with timm: timm is imported)
from resblocks import ConfigError  # noqa: E402
from resblocks.integrations import timm as bridge  # noqa: E402
from timm.models import FeatureInfo  # noqa: E402
from timm.models._features import FeatureGetterNet  # noqa: E402

# A tiny configuration of every family, by its generic builder.
TINY = {
    "cifar_resnet": dict(depth=14, width=4),  # 2 blocks per stage: LAuReL-PA reads earlier activations
    "preact_resnet": dict(depth=11, width=4),
    "wide_resnet": dict(depth=10, widen_factor=1),
    "resnext": dict(depth=11, cardinality=2, base_width=4),
    "resnet": dict(layers=(1, 1, 1, 1), block="basic"),
    "densenet_bc": dict(depth=10, growth_rate=4),
    "densenet": dict(block_config=(1, 1, 1, 1), growth_rate=4, num_init_features=8),
    "vit": dict(depth=3, dim=16, heads=2),
    "vit_fmnist": dict(depth=3, dim=16, heads=2),
}
SIZE = {"resnet": 64, "densenet": 64}  # ImageNet families at 64 px (their cfg says 224); others at the cfg's


def tname(name: str) -> str:
    return bridge.PREFIX + name


def is_vit(model: torch.nn.Module) -> bool:
    return hasattr(model, "patch_embed")


def create(name: str, **kw):
    opts = dict(TINY[name], **kw)
    if name.startswith("densenet"):  # no residual shortcut to choose
        opts.pop("shortcut", None)
    return timm.create_model(tname(name), **opts)


def input_for(name: str, batch: int = 2) -> torch.Tensor:
    c, h, w = timm.get_pretrained_cfg(tname(name)).input_size
    s = SIZE.get(name)
    return torch.randn(batch, c, s or h, s or w, generator=torch.Generator().manual_seed(0))


def final_reduction(model: torch.nn.Module) -> int:
    return model.feature_info[-1]["reduction"]


def test_every_family_has_a_tiny_config() -> None:
    assert {bridge.family(n) for n in TINY} == set(bridge.FAMILIES)


def test_the_image_models_are_registered_and_the_text_models_are_not() -> None:
    listed = set(timm.list_models("resblocks_*"))
    assert listed == {tname(n) for n in bridge.image_models()} == set(bridge.TIMM_NAMES)
    assert {"resblocks_vit_fmnist", "resblocks_cifar_resnet56", "resblocks_densenet121"} <= listed
    assert not listed & {tname(n) for n in ("gpt", "gpt_nano", "transformer_classifier")}


@pytest.mark.parametrize("timm_first", [False, True], ids=["resblocks-then-timm", "timm-then-resblocks"])
def test_import_resblocks_registers_with_timm_without_importing_it(timm_first: bool) -> None:
    first, second = ("timm", "resblocks") if timm_first else ("resblocks", "timm")
    code = (
        f"import sys, {first}\n"
        "light = 'timm' not in sys.modules\n"
        f"import {second}\n"
        "import timm\n"
        "print(light, timm.create_model('resblocks_cifar_resnet20').num_classes,"
        " len(timm.list_models('resblocks_*')) > 30, 'resblocks_gpt' in timm.list_models())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    light = "False" if timm_first else "True"  # `import resblocks` alone never imports timm
    assert out.stdout.split() == [light, "10", "True", "False"]
    assert "Overwriting" not in out.stderr


def test_create_model_passes_options_through() -> None:
    torch.manual_seed(0)
    model = timm.create_model("resblocks_cifar_resnet20", num_classes=7, in_chans=1, shortcut="laurel_rw")
    torch.manual_seed(0)
    ref = resblocks.build_model("cifar_resnet20", num_classes=7, in_chans=1, shortcut="laurel_rw")
    x = torch.randn(2, 1, 28, 28)
    model.eval(), ref.eval()
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    assert model(x).shape == (2, 7)
    vit = timm.create_model("resblocks_vit", img_size=(16, 16), patch_size=4, drop_rate=0.1, drop_path_rate=0.1, **TINY["vit"])
    assert vit.image_size == 16 and vit.drop_rate == 0.1 and vit.head_drop.p == 0.1
    assert timm.create_model("resblocks_vit", global_pool="avg", **TINY["vit"]).pool.kind == "mean"


def test_pretrained_and_unknown_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="^pretrained: resblocks ships no pretrained weights"):
        timm.create_model("resblocks_cifar_resnet20", pretrained=True, num_classes=10)
    with pytest.raises(ConfigError, match="valid options"):
        timm.create_model("resblocks_cifar_resnet20", num_classes=10, widht=3)
    with pytest.raises(ConfigError, match=r"^img_size: \(16, 32\); valid: a square size"):
        timm.create_model("resblocks_vit", img_size=(16, 32), **TINY["vit"])


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_and_grad_checkpointing(name: str) -> None:
    """timm's test_model_forward and test_model_backward."""
    torch.manual_seed(0)
    model = create(name, num_classes=42).train()
    x = input_for(name)
    out = model(x)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    model.eval()
    with torch.no_grad():
        plain = model(x)
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    ckpt = model(x)  # grad enabled: the checkpointed path runs
    torch.testing.assert_close(ckpt, plain, rtol=1e-4, atol=1e-5)
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing


@pytest.mark.parametrize("name", sorted(TINY))
def test_default_cfg_interface(name: str) -> None:
    """timm's test_model_default_cfgs (CNNs) and test_model_default_cfgs_non_std (ViT), at a tiny size."""
    model = create(name).eval()
    cfg = model.default_cfg
    assert model.pretrained_cfg is cfg and model.num_classes == cfg["num_classes"] > 0
    assert model.num_features > 0 and model.head_hidden_size > 0
    x = input_for(name, batch=1)
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    assert model.get_classifier() is getattr(model, cfg["classifier"]) and model.get_classifier(True) == cfg["classifier"]
    feats = model.forward_features(x)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (1, model.head_hidden_size)
    torch.testing.assert_close(model.get_classifier()(pre), model(x))
    if is_vit(model):
        assert feats.shape == (1, (x.shape[-1] // model.patch_size) ** 2 + model.num_prefix_tokens, model.num_features)
    else:
        grid = math.ceil(x.shape[-1] / final_reduction(model))
        assert feats.shape == (1, model.num_features, grid, grid)
    model.reset_classifier(0)
    assert model.num_classes == 0
    out = model(x)
    assert out.shape == pre.shape == (1, model.head_hidden_size)
    torch.testing.assert_close(out, pre)
    if is_vit(model):
        assert create(name, num_classes=0).eval()(x).shape == (1, model.num_features)
        model.reset_classifier(5, "avg")
        assert model(x).shape == (1, 5)
        model.reset_classifier(0, "")
        assert model(x).shape == feats.shape
    else:
        model.reset_classifier(0, "")
        assert model(x).shape == feats.shape
        no_head = create(name, num_classes=0, global_pool="").eval()
        assert no_head(x).shape == feats.shape and cfg["classifier"] + ".weight" not in no_head.state_dict()
        model.reset_classifier(3, "max")
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", sorted(TINY))
def test_features_only(name: str) -> None:
    """timm's test_model_forward_features, plus: the features are the model's own intermediates."""
    torch.manual_seed(0)
    model = create(name, features_only=True, shortcut={"name": "laurel_rw_pa", "k": 3}).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3
    x = input_for(name, batch=1)
    outs = model(x)
    assert len(outs) == len(channels)
    for c, r, o in zip(channels, reductions, outs):
        assert o.shape[0] == 1 and o.shape[1] == c and not torch.isnan(o).any()
        assert o.shape[2] == o.shape[3] == math.ceil(x.shape[-1] / r)
    full = create(name, shortcut={"name": "laurel_rw_pa", "k": 3}).eval()
    with torch.no_grad():  # move the PA weights off zero: the features must carry the earlier activations
        for n, p in full.named_parameters():
            if ".shortcut." in n:
                p.add_(0.1)
    pruned = copy.deepcopy(full)
    features = FeatureGetterNet(pruned, out_indices=(1, -1))  # what features_only wraps the model in
    want = full.forward_intermediates(x, indices=(1, -1), intermediates_only=True)
    got = features(x)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert pruned.num_classes == 0  # pruned: the head (and what follows the last feature) is gone


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_intermediates(name: str) -> None:
    """timm's test_model_forward_intermediates."""
    model = create(name, shortcut={"name": "laurel_rw_lr_pa", "rank": 2}).eval()
    info = FeatureInfo(model.feature_info, len(model.feature_info))  # timm's own validation of the dicts
    x = input_for(name, batch=1)
    out, inter = model.forward_intermediates(x)
    assert len(inter) == len(info.channels()) >= 2
    for c, r, o in zip(info.channels(), info.reduction(), inter):
        assert o.shape == (1, c, math.ceil(x.shape[-1] / r), math.ceil(x.shape[-1] / r))
    torch.testing.assert_close(out, model.forward_features(x))
    last2 = model.forward_intermediates(x, indices=2, intermediates_only=True, stop_early=True)
    for got, ref in zip(last2, inter[-2:]):
        torch.testing.assert_close(got, ref)
    model.set_grad_checkpointing()
    out3, _ = model.forward_intermediates(x)
    torch.testing.assert_close(out3, out, rtol=1e-4, atol=1e-5)
    if is_vit(model):
        tokens = model.forward_intermediates(x, indices=[0], output_fmt="NLC", intermediates_only=True)[0]
        assert tokens.shape == (1, (x.shape[-1] // model.patch_size) ** 2, model.num_features)
        pairs = model.forward_intermediates(x, indices=[0], return_prefix_tokens=True, intermediates_only=True)
        assert pairs[0][1].shape == (1, 1, model.num_features)


@pytest.mark.parametrize("name", sorted(TINY))
def test_group_matcher_and_no_weight_decay(name: str) -> None:
    model = create(name, shortcut="laurel_rw")
    params = {n for n, _ in model.named_parameters()}
    for coarse in (False, True):
        groups = timm.models.group_parameters(model, model.group_matcher(coarse=coarse))
        assert {n for g in groups.values() for n in g} == params
        assert len(groups) >= 3
    skip = model.no_weight_decay()
    assert skip <= params
    rules = {n for n in params if ".shortcut." in n}
    assert rules <= skip and (rules or name.startswith("densenet"))
    opt = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert not any(id(p) in decayed for n, p in model.named_parameters() if n in skip)


DATA = {  # preset -> (input size, mean, std) of the data it is for
    "vit_fmnist": ((1, 28, 28), (0.2860,), (0.3530,)),
    "cifar_resnet56": ((3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "vit_cifar": ((3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "densenet_bc_100_12": ((3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "resnet50": ((3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "densenet121": ((3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@pytest.mark.parametrize("name", sorted(DATA))
def test_resolve_data_config(name: str) -> None:
    model = timm.create_model(tname(name), device="meta")
    cfg = timm.data.resolve_data_config(model=model)
    size, mean, std = DATA[name]
    assert (cfg["input_size"], cfg["mean"], cfg["std"]) == (size, mean, std)
    assert model.in_chans == size[0]
    transform = timm.data.create_transform(**cfg)  # timm's eval transform for the preset
    assert transform is not None


def test_data_statistics_are_the_recipes() -> None:
    from recipes.data.augment import STATS

    assert (bridge.DATA["fashion_mnist"]["mean"], bridge.DATA["fashion_mnist"]["std"]) == STATS["fmnist"]
    assert (bridge.DATA["cifar10"]["mean"], bridge.DATA["cifar10"]["std"]) == STATS["cifar10"]
    assert (tuple(bridge.DATA["imagenet"]["mean"]), tuple(bridge.DATA["imagenet"]["std"])) == STATS["imagenet"]


@pytest.mark.parametrize("name", bridge.image_models())
def test_every_registered_model_at_its_cfg_size_on_meta(name: str) -> None:
    """timm's default-cfg shape checks at the preset's real input size (meta tensors: shapes only)."""
    model = timm.create_model(tname(name), device="meta").eval()
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] in (10, 1000) and len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0]
    x = torch.empty(1, *cfg["input_size"], device="meta")
    feats = model.forward_features(x)
    if cfg.get("pool_size"):
        assert feats.shape == (1, model.num_features, *cfg["pool_size"])
    else:
        assert cfg["fixed_input_size"] and feats.shape[-1] == model.num_features
    assert model(x).shape == (1, cfg["num_classes"])
    inter = model.forward_intermediates(x, intermediates_only=True)
    assert [t.shape[1] for t in inter] == [f["num_chs"] for f in model.feature_info]
