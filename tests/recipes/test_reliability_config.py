"""Reliability 4: a bad config fails before any data is loaded or model built: one line naming the key, the bad
value and the valid choices, exit status 2, no traceback unless asked for; random overrides never escape that.

The entry point (``recipes.train.main``) runs in this process with ``plan_run`` (the first step after the
checks) replaced by a stop, so a valid config ends there without training.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import call_main

import recipes.train
import resblocks
from recipes.data import dataset_names


class Valid(Exception):
    """Raised instead of planning the run: the config passed every check."""


@pytest.fixture
def entry(monkeypatch, tmp_path, capsys):
    """``entry(*overrides) -> (exit status, stderr lines)``; status 0 means the config was valid."""
    monkeypatch.chdir(tmp_path)  # Hydra writes runs/<name>/.hydra here
    monkeypatch.setattr(recipes.train, "plan_run", lambda *a, **k: (_ for _ in ()).throw(Valid()))

    def call(*overrides: str) -> tuple[int, list[str]]:
        try:
            return call_main(monkeypatch, capsys, *overrides)
        except Valid:
            return 0, capsys.readouterr().err.splitlines()

    return call


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["recipe=imagenet_resnet5"], "recipe: unknown option 'imagenet_resnet5'; valid: cifar10_preact_resnet164, "),
        (["model=resnet5"], "model: unknown option 'resnet5'; valid: cifar_resnet"),
        (["shortcut=laurel"], "shortcut: unknown option 'laurel'; valid: decayed, "),
        (["norm=pre_layernorm"], "norm: unknown option 'pre_layernorm'; valid: none, peri_ln, post_ln"),
        (["norm.layer=batchnorm2"], "norm_layer: unknown name 'batchnorm2'; valid: "),
        (["data=cifar11"], "data: unknown option 'cifar11'; valid: cifar10, cifar100"),
        (["+model.widht=3"], "model.widht: unknown option for model 'gpt_nano'; valid options: "),
        (["trainer.max_stesp=3"], "trainer.max_stesp: unknown key; valid: accelerator, devices"),
        (
            ["trainer.max_steps=many"],
            (
                "trainer.max_steps: Value 'many' of type 'str' could not be converted to Integer; "
                "valid: a value of type Integer"
            ),
        ),
        (
            ["optim.fused=7"],
            "optim.fused: Value '7' of type 'int' is incompatible with type hint 'Union[bool, str]'; "
            "valid: auto, true, false",
        ),
        (["data.batch_size=abc"], "data.batch_size: 'abc'; valid: an integer"),
        (["+model.depth=abc"], "model.depth: 'abc'; valid: an integer"),
        (["+model.heads=5"], "heads: dim 128 is not divisible by heads 5; valid: a divisor of dim"),
        (
            ["shortcut=decayed", "shortcut.alpha_min=0"],
            "shortcut.alpha_min: 0 outside (0, 1]; valid: 0 < alpha_min <= 1",
        ),
        (["shortcut=decayed", "shortcut.alpha_min=1.5"], "shortcut.alpha_min: 1.5 outside (0, 1]"),
        (["shortcut=laurel_lr", "shortcut.rank=129"], "shortcut.rank: 129 with width 128; valid: 1 <= rank <= 128"),
        (["shortcut=laurel_pa", "shortcut.k=0"], "shortcut.k: 0; valid: an integer >= 1"),
        (["recipe=fmnist_resnet20", "norm=post_ln"], "norm: model 'cifar_resnet20' has no norm placement; valid: "),
        (
            ["trainer.accelerator=gpu", "trainer.devices=64"],
            "trainer.devices: 64 with trainer.accelerator=gpu, but this ",
        ),
        (["optim.lr=nan"], "optim.lr: nan; valid: a finite number > 0"),
        (["optim.lr=inf"], "optim.lr: inf; valid: a finite number > 0"),
        # The optimiser's own rules, asked of torch.optim (its words after "it says").
        (["optim.eps=-1"], "optim.eps: -1.0; valid: what torch.optim.AdamW accepts (it says: Invalid epsilon value"),
        (["optim.betas=[1.5,0.9]"], "optim.betas: [1.5, 0.9]; valid: what torch.optim.AdamW accepts (it says: "),
        (["optim.weight_decay=-0.1"], "optim.weight_decay: -0.1; valid: what torch.optim.AdamW accepts"),
        (["optim.name=sgd", "optim.momentum=-1"], "optim.momentum: -1.0; valid: what torch.optim.SGD accepts"),
        (["sched.min_lr=-1"], "sched.min_lr: -1.0; valid: a learning rate torch.optim.AdamW accepts (it says: "),
        (
            ["sched.name=multistep", "sched.milestones=[1]", "sched.gamma=-1"],
            "sched.gamma: -1.0; valid: a factor giving learning rates torch.optim.AdamW accepts (optim.lr x gamma^1",
        ),
        (["sched.gamma=inf"], "sched.gamma: inf; valid: a finite number"),
        (["sched.warmup_steps=-1"], "sched.warmup_steps: -1; valid: >= 0"),
        (["task.label_smoothing=2"], "task.label_smoothing: 2.0; valid: 0 <= x < 1"),
        (["recipe=fmnist_resnet20", "task.label_smoothing=1"], "task.label_smoothing: 1.0; valid: 0 <= x < 1"),
        (["data.val_batches=0"], "data.val_batches: 0; valid: >= 1, or null for every window"),
        (["seed=-1"], "seed: -1; valid: 0 <= x <= 4294967295"),
        (["checkpoint.monitor=val/acc"], "checkpoint.monitor: 'val/acc', but language modelling (data 'shakespeare')"),
        (
            ["recipe=cifar10_resnet56", "checkpoint.monitor=val/acc5"],
            "checkpoint.monitor: 'val/acc5', but acc5 is logged with at least 100 classes, data 'cifar10' has 10",
        ),
        (["shortcut=highway", "shortcut.gate_bias=nan"], "shortcut.gate_bias: nan; valid: a finite number"),
        (["shortcut=highway", "shortcut.gate_bias=abc"], "shortcut.gate_bias: 'abc'; valid: a number"),
        (["model.dropout=-inf"], "model.dropout: -inf; valid: a finite number"),
        (
            ["model=vit_fmnist", "data=shakespeare"],
            "model: 'vit_fmnist' takes images (image classification), but data 'shakespeare' is for language modelling",
        ),
        (["recipe=fmnist_resnet20", "model=gpt_nano"], "model: 'gpt_nano' takes token ids, predicting the next token"),
        (["trainer.devices=-3"], "trainer.devices: -3; valid: auto, -1 (all), a count >= 1"),
        (["trainer.devices=[0,-1]"], "trainer.devices: [0, -1]; valid: auto, -1 (all), a count >= 1"),
        (["trainer.devices=abc"], "trainer.devices: 'abc'; valid: auto, -1 (all), a count >= 1"),
        (["checkpoint.keep=0"], "checkpoint.keep: 0; valid: >= 1, or -1 for all"),
        (["sample.temperature=0"], "sample.temperature: 0.0; valid: > 0"),
        (["divergence.action=ignore"], "divergence.action: 'ignore'; valid: stop, skip, off"),
        (["trainer.max_steps=-5"], "trainer.max_steps: -5; valid: >= -1"),
        (["trainer.strategy=dpp"], "trainer: You selected an invalid strategy name: `strategy='dpp'`"),  # Lightning's
        (["+model.dim=[1,"], "override: no viable alternative at input '[1,'; valid: key=value"),
    ],
)
def test_bad_config_is_one_line_with_exit_status_2(entry, overrides, expected):
    code, err = entry(*overrides)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {expected}"), err[0]
    assert "valid" in err[0] or "trainer: " in err[0]  # Lightning's own words for trainer.* say what is valid


@pytest.mark.parametrize(
    "overrides",
    [["shortcut=laurel_lr", "shortcut.rank=999"], ["model=vit_fmnist", "data=shakespeare"], ["optim.eps=-1"]],
)
def test_nothing_is_built_or_written_before_the_checks(entry, tmp_path, monkeypatch, overrides):
    """Not even the run directory: Hydra's record of the config (runs/<name>/.hydra/) is written after the checks."""
    import recipes.build

    built = []
    monkeypatch.setattr(recipes.build, "build_module", lambda *a: built.append(a))
    assert entry(*overrides)[0] == 2
    assert not built and list(tmp_path.iterdir()) == []


def test_hydra_records_the_config_once_it_is_checked(monkeypatch, tmp_path, capsys):
    """A valid config: runs/<name>/.hydra/ holds Hydra's record (config, overrides), written by the entry point."""
    import yaml

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recipes.train, "build_module", lambda *a: (_ for _ in ()).throw(Valid()))  # stop there
    with pytest.raises(Valid):
        call_main(monkeypatch, capsys, "name=rec", "sample.tokens=0")
    record = tmp_path / "runs" / "rec" / ".hydra"
    assert yaml.safe_load((record / "overrides.yaml").read_text()) == ["name=rec", "sample.tokens=0"]
    assert yaml.safe_load((record / "config.yaml").read_text())["sample"]["tokens"] == 0
    assert "hydra" in yaml.safe_load((record / "hydra.yaml").read_text())


def test_a_config_error_imports_neither_lightning_nor_wandb_nor_datasets(tmp_path):
    """The command-line path of a bad value: checked before the heavy imports (they take seconds), so it
    fails fast. A sitecustomize in the subprocess lists the heavy modules loaded when the process exits
    (torch._dynamo: what constructing a torch optimiser imports, over a second)."""
    import subprocess
    import sys

    from reliability_helpers import SUBPROCESS_ENV

    (tmp_path / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        "HEAVY = {'lightning', 'pytorch_lightning', 'wandb', 'datasets', 'torchmetrics', 'torch._dynamo'}\n"
        "atexit.register(lambda: open('loaded.txt', 'w').write(' '.join(sorted(HEAVY & ({m.split('.')[0] for m in"
        " sys.modules} | set(sys.modules))))))\n"
    )
    env = {**SUBPROCESS_ENV, "PYTHONPATH": f"{tmp_path}:{SUBPROCESS_ENV['PYTHONPATH']}"}
    for bad in (["optim.eps=-1"], ["model=vit_fmnist", "data=shakespeare"], ["trainer.devices=-3"]):
        proc = subprocess.run([sys.executable, "-m", "recipes.train", *bad], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
        assert (tmp_path / "loaded.txt").read_text() == "", (bad, (tmp_path / "loaded.txt").read_text())


def test_debug_shows_the_traceback(entry, monkeypatch):
    from hydra.errors import MissingConfigException

    from recipes.errors import debug_requested
    from resblocks.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^shortcut\.rank: 999"):  # raised, so Python prints the traceback
        entry("shortcut=laurel_lr", "shortcut.rank=999", "debug=true")
    monkeypatch.setattr(recipes.train, "debug_requested", lambda argv, env=None: True)
    with pytest.raises(MissingConfigException):  # Hydra's own errors too
        entry("recipe=nope")
    assert debug_requested(["+debug=True"], {}) and debug_requested([], {"RESBLOCKS_DEBUG": "1"})
    assert debug_requested([], {"HYDRA_FULL_ERROR": "1"}) and not debug_requested([], {})
    assert not debug_requested([], {"RESBLOCKS_DEBUG": "0", "HYDRA_FULL_ERROR": "1"})  # ours wins (main sets both)


# ----------------------------------------------------------------------------- random overrides

KEYS = [
    "seed", "resume", "overwrite", "test", "compile", "channels_last", "float32_matmul_precision",
    "optim.name", "optim.lr", "optim.weight_decay", "optim.betas", "optim.momentum", "optim.fused",
    "sched.name", "sched.warmup_steps", "sched.min_lr", "sched.total_steps", "sched.milestones", "sched.step_size",
    "trainer.accelerator", "trainer.devices", "trainer.strategy", "trainer.precision", "trainer.max_steps",
    "trainer.max_epochs", "trainer.gradient_clip_val", "trainer.accumulate_grad_batches", "trainer.val_check_interval",
    "trainer.limit_train_batches", "trainer.log_every_n_steps", "trainer.deterministic", "trainer.num_nodes",
    "logger.name", "logger.mode", "logger.tags", "checkpoint.every_n_steps", "checkpoint.keep", "checkpoint.monitor",
    "checkpoint.mode", "divergence.action", "divergence.max_skips", "sample.tokens", "sample.temperature",
    "sample.top_k", "task.label_smoothing", "norm.placement", "norm.layer", "fsdp.sharding_strategy",
    "+model.depth", "+model.dim", "+model.heads", "+model.dropout", "+model.bias", "+model.mlp_ratio", "+model.nope",
    "data.batch_size", "data.block_size", "+data.tokenizer", "+data.vocab_size", "+data.val_fraction", "+data.nope",
    "shortcut.rank", "shortcut.alpha_min", "shortcut.k", "+shortcut.rank", "+shortcut.alpha_min", "+shortcut.k",
    "nope", "trainer.nope", "optim.nope",
    # Every numeric option of every group, and the ones the second reliability round found unchecked.
    "optim.eps", "optim.nesterov", "sched.gamma", "sched.min_lr", "trainer.check_val_every_n_epoch",
    "trainer.num_sanity_val_steps", "trainer.limit_val_batches", "checkpoint.every_n_steps", "divergence.grad_norms",
    "data.val_batches", "data.num_workers", "data.seed", "+data.samples_per_epoch", "model.dropout", "model.bias",
    "shortcut.gate_bias", "+shortcut.gate_bias", "+shortcut.alpha", "fsdp.state_dict_type",
    "fsdp.activation_checkpointing", "logger.project", "sample.prompt", "norm.layer",
]  # fmt: skip
# Not among them: run_dir, name, data.path, hydra.* (Hydra makes folders from them), debug (it raises).
GROUPS = {
    "recipe": ["shakespeare_gpt", "fmnist_resnet20", "fmnist_vit", "shakespeare_genre", "cifar10_resnet56"],
    "model": resblocks.MODELS.names(),
    "shortcut": resblocks.SHORTCUTS.names(),
    "norm": ["pre_ln", "post_ln", "peri_ln", "res_post_ln", "none"],
    "data": dataset_names(),
    "trainer": ["cpu", "debug", "default", "gpu", "ddp", "fsdp"],
    "logger": ["csv", "none", "wandb", "tensorboard"],
}
WORDS = ["auto", "cpu", "gpu", "adamw", "sgd", "cosine", "max", "min", "stop", "skip", "bf16-mixed", "16-mixed",
         "layernorm", "rmsnorm", "offline", "online", "val/loss", "abc", "", "-", "[]", "{}", "[1,2]", "x=y", "${nope}"]  # fmt: skip
NUMBERS = ["nan", "inf", "-inf", "+inf", "1e39", "-1e39", "1e-300", "-1e-9", "0.0", "-0.5", "0.999", "1.0", "1.5", "2"]
VALUES = st.one_of(
    st.integers(-5, 100).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(NUMBERS),
    st.sampled_from(["true", "false", "null", *WORDS]),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=6),
)
OVERRIDE = st.one_of(
    st.tuples(st.sampled_from(KEYS), VALUES).map("=".join),
    st.sampled_from(sorted(GROUPS)).flatmap(
        lambda g: st.one_of(st.sampled_from(GROUPS[g]), st.sampled_from(WORDS)).map(lambda v: f"{g}={v}")
    ),
)


def _non_finite(tree, key=""):
    """Keys of the non-finite floats in a plain config."""
    if isinstance(tree, dict):
        return [k for name, v in tree.items() for k in _non_finite(v, f"{key}.{name}" if key else name)]
    if isinstance(tree, list):
        return [k for i, v in enumerate(tree) for k in _non_finite(v, f"{key}[{i}]")]
    return [key] if isinstance(tree, float) and not math.isfinite(tree) else []


@pytest.fixture
def checked(entry, monkeypatch):
    """``entry`` that also returns the config the checks accepted (None when they refused it)."""
    from recipes.build import plain

    accepted = []
    real = recipes.train.validate

    def recording(cfg, *args, **kwargs):
        dm = real(cfg, *args, **kwargs)
        accepted.append(plain(cfg))
        return dm

    monkeypatch.setattr(recipes.train, "validate", recording)

    def call(*overrides):
        accepted.clear()
        code, err = entry(*overrides)
        return code, err, accepted[0] if accepted else None

    return call


@pytest.mark.timeout(300)
@settings(max_examples=40, deadline=timedelta(seconds=30), derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(overrides=st.lists(OVERRIDE, min_size=1, max_size=4))
def test_random_overrides_never_escape_as_a_traceback(checked, overrides):
    """One line and exit status 2, or a valid config; and a valid config never holds a NaN or an infinity."""
    code, err, accepted = checked(*overrides)
    if code == 0:  # a valid config reached the run: no error output at all
        assert not any(line.startswith("error:") for line in err), err
        assert accepted is not None and not _non_finite(accepted), (overrides, _non_finite(accepted or {}))
        return
    assert code == 2, (overrides, code, err)
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), (overrides, err)
