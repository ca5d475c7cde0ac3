"""The config tree: every recipe composes and validates, groups match the registries, bad input fails in one line."""

from __future__ import annotations

import re

import pytest
import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from recipe_helpers import CONF, CPU, RECIPES, TINY_DATA, compose

import recipes.data
import resblocks
from recipes.config import registry_defaults
from recipes.build import device_count, model_spec, validate
from resblocks.blocks.residual import NORM_PLACEMENTS
from resblocks.errors import ConfigError


def test_every_recipe_has_tiny_data_and_the_listed_ones_exist():
    assert set(RECIPES) == set(TINY_DATA)
    expected = {"shakespeare_gpt", "shakespeare_genre", "fmnist_resnet20", "fmnist_vit", "cifar10_resnet56",
                "cifar10_preact_resnet164", "imagenet_resnet50", "tinystories_gpt", "shakespeare_bpe_gpt", "shakespeare_speakers"}  # fmt: skip
    assert expected <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_and_validates(recipe):
    cfg = compose([f"recipe={recipe}"])
    assert cfg.name == recipe  # the run directory defaults to runs/<recipe>
    # Multi-GPU recipes are checked against the devices present: on a machine without them, validate on the CPU.
    hardware = [] if torch.cuda.device_count() >= device_count(cfg.trainer) else CPU
    validate(compose([f"recipe={recipe}", *hardware]))  # registries, options, the network on the meta device


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_header_has_launch_command_and_expected_result(recipe):
    text = (CONF / "recipe" / f"{recipe}.yaml").read_text()
    header = text.split("defaults:")[0]
    assert text.startswith("# @package _global_")
    assert "python -m recipes.train" in header
    assert re.search(r"# Expected: \S", header), "each recipe states its expected result"


def test_default_recipe_is_shakespeare_gpt_pre_ln():
    cfg = compose()
    assert cfg.name == "shakespeare_gpt"
    assert cfg.norm.placement == "pre_ln" and cfg.model.name == "gpt_nano"
    assert (cfg.data.block_size, cfg.data.batch_size, cfg.trainer.max_steps) == (64, 12, 2000)
    assert cfg.model.block_size == 64  # interpolated from the data


def test_group_override_on_top_of_a_recipe():
    cfg = compose(["recipe=fmnist_resnet20", "shortcut=laurel_rw", "shortcut.per_channel=true"])
    name, opts = model_spec(cfg)
    assert name == "cifar_resnet20" and opts["shortcut"]["name"] == "laurel_rw" and opts["shortcut"]["per_channel"]
    assert cfg.optim.name == "sgd"  # the recipe's own settings survive the group override
    validate(cfg)


def test_switching_the_residual_design_is_one_override():
    cfg = compose(["shortcut=laurel_rw_lr", "norm=post_ln"])
    _, opts = model_spec(cfg)
    assert opts["norm"] == "post_ln" and opts["shortcut"]["name"] == "laurel_rw_lr"
    validate(cfg)


def test_shortcut_group_offers_every_registered_rule_with_its_real_defaults():
    files = {p.stem for p in (CONF / "shortcut").glob("*.yaml")}
    assert files <= set(resblocks.SHORTCUTS.names()), "a conf/shortcut YAML names no registered rule"
    for name in resblocks.SHORTCUTS.names():
        spec = dict(compose([f"shortcut={name}"]).shortcut)
        assert spec.pop("name") == name
        if name not in files:  # generated from the registry: exactly the constructor's options and defaults
            assert spec == registry_defaults(resblocks.SHORTCUTS.options(name))
        resblocks.SHORTCUTS.check_options(name, spec)


def test_a_rule_option_is_set_without_plus():
    cfg = compose(["shortcut=laurel_rw_lr", "shortcut.rank=8", "shortcut.norm=softmax"])
    _, opts = model_spec(cfg)
    assert opts["shortcut"]["rank"] == 8 and opts["shortcut"]["norm"] == "softmax"
    validate(cfg)


def test_every_registered_model_is_a_group_option():
    from hydra.core.config_store import ConfigStore

    stored = {k.removesuffix(".yaml") for k in ConfigStore.instance().repo["model"]}
    curated = {p.stem for p in (CONF / "model").glob("*.yaml")}
    assert stored | curated == set(resblocks.MODELS.names())
    uncurated = min(stored - curated)
    assert compose([f"model={uncurated}"]).model == {"name": uncurated}


def test_norm_and_data_groups_match_their_registries():
    assert {p.stem for p in (CONF / "norm").glob("*.yaml")} <= set(NORM_PLACEMENTS)
    for placement in NORM_PLACEMENTS:  # generated from the library's list
        assert compose([f"norm={placement}"]).norm == {"placement": placement, "layer": "layernorm"}
    assert {p.stem for p in (CONF / "data").glob("*.yaml")} == set(recipes.data.dataset_names())
    for path in (CONF / "model").glob("*.yaml"):
        assert path.stem in resblocks.MODELS, f"conf/model/{path.name} names no registered model"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+model.depht=3"], r"^model\.depht: unknown option for model 'gpt_nano'; valid options: .*depth"),
        (["shortcut.rank=4"], None),  # identity has no rank: Hydra refuses the key (struct)
        (["shortcut=laurel_lr", "shortcut.rank=-1"], r"rank"),
        (["norm=post_ln", "recipe=fmnist_resnet20"], r"^norm: model 'cifar_resnet20' has no norm placement"),
        (["norm.layer=batchnorm2"], r"norm_layer: unknown name 'batchnorm2'; valid: .*rmsnorm"),
        (["optim.name=adam"], r"^optim\.name: unknown optimiser 'adam'; valid: adamw, sgd$"),
        (["sched.name=linear"], r"^sched\.name: unknown schedule 'linear'"),
        (["trainer.precision=bf17"], r"^trainer\.precision: 'bf17'; valid: .*bf16-mixed"),
        (["logger.mode=sometimes"], r"^logger\.mode: unknown W&B mode 'sometimes'"),
        (["+model.shortcut=rezero"], r"^model\.shortcut: set it through the group"),
        (["shortcut=deepnorm"], r"post_ln"),  # DeepNorm is defined for Post-LN; the recipe is Pre-LN
        (["+data.tokenizer=words"], r"^data\.tokenizer: unknown tokenizer 'words'"),
        (["model.bias=true", "+model.heads=5"], r"heads|dim"),  # 128 wide cannot split into 5 heads
    ],
)
def test_bad_config_fails_in_one_line(overrides, message):
    try:
        cfg = compose(overrides)
    except (HydraException, OmegaConfBaseException) as e:  # Hydra's own refusal (unknown key, wrong type)
        assert message is None, f"expected our error, Hydra said: {e}"
        return
    assert message is not None, f"{overrides} composed; expected Hydra to refuse it"
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    text = str(info.value)
    assert "\n" not in text
    assert re.search(message, text), text


def test_multirun_with_several_devices_is_refused():
    cfg = compose(["trainer.devices=2", "trainer.accelerator=cpu"])
    with pytest.raises(ConfigError, match=r"^trainer\.devices: 2 x 1 node\(s\) under multirun"):
        validate(cfg, multirun=True)
    validate(compose(["trainer.devices=1"]), multirun=True)  # one device per job is fine


@pytest.mark.parametrize(
    ("devices", "accelerator", "n"),
    [(1, "cpu", 1), (4, "gpu", 4), ("0,1,2", "gpu", 3), ([0, 1], "gpu", 2), ("auto", "cpu", 1)],
)
def test_device_count(devices, accelerator, n):
    cfg = compose([f"trainer.accelerator={accelerator}"])
    cfg.trainer.devices = devices
    assert device_count(cfg.trainer) == n
