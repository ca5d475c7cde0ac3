"""From a composed config to the objects Lightning runs: DataModule, network, task module, trainer.

:func:`validate` checks the whole config first, in two stages. :func:`check_config` needs the config
alone and imports neither Lightning nor W&B nor ``datasets`` (about two seconds from the command
line): names, types, ranges and finiteness of every value, the optimiser's and the schedule's values
as torch.optim sees them, the network's options against its builder, whether the network fits the
task of the data and whether the monitored metric is one the task logs. Then, with Lightning:
``trainer.*`` as Lightning sees it, the DataModule's options (constructed, nothing read), and the
network built once on the ``meta`` device (no memory, no data). A problem is one line naming the key.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import resblocks
from resblocks.blocks.residual import NORM_PLACEMENTS
from resblocks.errors import ConfigError
from resblocks.norms import NORMS
from resblocks.shortcuts import shortcut_factory

from .errors import describe
from .config import DIVERGENCE_ACTIONS, ResidualConfig, TrainConfig, check_checkpoint_config
from .engine.fast_path import Decision, check_switch, decide, device_type, is_conv_net, resolve_precision
from .modules.optim import OptimizerSettings, ScheduleSettings, check_schedule
from .tasks import TASKS, Task, check_model_fits_data, check_monitor, task_for
from .runs.init_from import check_init_from
from .tracking.loggers import check_logger, wandb_mode
from .values import check_finite, check_ranges, check_types, init_chain, option_hints

# Network options the data decides (passed to builders that accept them, unless set in model.*).
DATA_DERIVED = ("num_classes", "in_chans", "image_size", "vocab_size", "pad_id")
# Stand-ins for the meta-device check when a size is only known once the data is loaded.
PLACEHOLDERS = {"num_classes": 10, "vocab_size": 256, "pad_id": 0}
PRECISIONS = (
    "auto",  # recipes.engine.fast_path: bf16-mixed where bf16 is fast, else 32-true
    "64-true",
    "64",
    "32-true",
    "32",
    "16-mixed",
    "16",
    "bf16-mixed",
    "bf16",
    "16-true",
    "bf16-true",
    "transformer-engine",
)


def typed(config: dict[str, Any] | DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """A plain config (e.g. read back from a checkpoint) as a schema-checked ``DictConfig``."""
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), config)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    OmegaConf.set_struct(cfg, True)
    return cfg  # type: ignore[return-value]


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config as plain Python (what W&B and the checkpoint receive)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- model


def model_spec(cfg: DictConfig) -> tuple[str, dict[str, Any]]:
    """``(builder name, options)`` with the shortcut and norm groups folded in; checks names now."""
    opts = dict(plain(cfg)["model"])
    name = opts.pop("name", None)
    if not name:
        raise ConfigError(
            f"model: no model chosen; valid: model=NAME with NAME in {', '.join(resblocks.MODELS.names())}"
        )
    accepted = resblocks.MODELS.options(name)  # unknown name -> one line with the valid names
    for key, group in (
        ("shortcut", "shortcut=NAME shortcut.KEY=..."),
        ("norm", "norm=PLACEMENT"),
        ("norm_layer", "norm.layer=..."),
        ("drop_path_rate", "residual.drop_path_rate=..."),
        ("layer_scale_init", "residual.layer_scale_init=..."),
    ):
        if key in opts:
            raise ConfigError(f"model.{key}: set it through the group, not the model; valid: {group}")
    if cfg.shortcut is not None:
        if "shortcut" not in accepted:
            raise ConfigError(f"shortcut: model {name!r} has no shortcut option; valid: drop shortcut=")
        spec = dict(plain(cfg)["shortcut"])
        shortcut_factory(spec)  # unknown rule or option -> one line
        opts["shortcut"] = spec
    if cfg.norm is not None:
        if "norm" not in accepted:
            with_norm = [m for m in resblocks.MODELS.names() if "norm" in resblocks.MODELS.options(m)]
            raise ConfigError(
                f"norm: model {name!r} has no norm placement; valid: drop norm=, or a model among {', '.join(with_norm)}"
            )
        if cfg.norm.placement not in NORM_PLACEMENTS:
            raise ConfigError(f"norm.placement: {cfg.norm.placement!r}; valid: {', '.join(NORM_PLACEMENTS)}")
        NORMS.get(cfg.norm.layer)  # unknown layer -> one line
        opts["norm"] = cfg.norm.placement
        opts["norm_layer"] = cfg.norm.layer
    for key, value in plain(cfg)["residual"].items():  # branch-output modifiers: only what differs from off
        if value == getattr(ResidualConfig, key):
            continue
        if key not in accepted:
            raise ConfigError(f"residual.{key}: model {name!r} has no residual sub-layers to modify; valid: leave it unset")
        opts[key] = value
    resblocks.MODELS.check_options(name, opts)
    return name, opts


def run_task(cfg: DictConfig) -> Task:
    """The task this run trains: the data's, or one it also serves that the network fits (an MAE on images)."""
    return task_for(cfg.data.name, resblocks.MODELS.options(model_spec(cfg)[0]))


def extra_metrics(cfg: DictConfig) -> list[str]:
    """Metrics the recipe's callbacks log besides the task's (the frozen-feature evaluation's)."""
    if not cfg.frozen.every_n_epochs:
        return []
    return ["frozen/knn_acc"] + (["frozen/linear_acc"] if cfg.frozen.linear_probe else [])


def _data_value(dm: Any, key: str) -> Any:
    try:
        return getattr(dm, key)
    except (AttributeError, RuntimeError):  # e.g. a vocabulary that needs setup() first
        return None


def data_derived(name: str, opts: dict[str, Any], dm: Any, placeholders: bool = False) -> dict[str, Any]:
    accepted = resblocks.MODELS.options(name)
    out = {}
    for key in DATA_DERIVED:
        if key in accepted and key not in opts:
            value = _data_value(dm, key) if dm is not None else None
            if value in (None, 0) and placeholders:
                value = PLACEHOLDERS.get(key)
            if value not in (None, 0) or key == "pad_id" and value == 0:
                out[key] = value
    return out


def build_net(cfg: DictConfig, dm: Any, device: torch.device | str | None = None, compile: bool = False) -> nn.Module:
    """The network for ``cfg`` with the data's sizes (call after ``dm.setup()``); ``compile``: ``torch.compile`` it."""
    name, opts = model_spec(cfg)
    with torch.device(device) if device is not None else nullcontext():
        net = resblocks.build_model(name, **opts, **data_derived(name, opts, dm, placeholders=device == "meta"))
    if compile:
        net.compile()  # in place: state_dict keys stay the same as without compile
    return net


def meta_net(cfg: DictConfig, dm: Any) -> nn.Module:
    """The network on the meta device (no memory, no data): combinations fail now, in one line."""
    name, _ = model_spec(cfg)
    try:
        return build_net(cfg, dm, device="meta")
    except ConfigError:
        raise
    except (ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"model: {name!r} cannot be built with these options ({type(e).__name__}: {e})") from e


# ----------------------------------------------------------------------------- fast path


def fast_path_for(cfg: DictConfig, dm: Any, net: nn.Module | None = None, measure: bool = False) -> Decision:
    """The run's fast path (:func:`recipes.engine.fast_path.decide`) on the device ``trainer.accelerator`` trains on.

    A conv net is an image model whose weights are mostly conv kernels; ``net`` is the network if
    already built (any device, ``meta`` included), else it is built on the meta device.
    ``measure``: on a CPU, decide the ``auto`` precision (and a conv net's ``auto`` channels-last) by a
    timed calibration, cached (:mod:`recipes.engine.calibrate`; what ``recipes.train`` does).
    """
    from recipes.data import ImageClassificationData

    conv = isinstance(dm, ImageClassificationData) and is_conv_net(net if net is not None else meta_net(cfg, dm))
    device = device_type(cfg.trainer.accelerator)
    return decide(
        device, conv_net=conv, precision=str(cfg.trainer.precision),
        channels_last=cfg.channels_last, fused=cfg.optim.fused, compile=cfg.compile, optimizer=cfg.optim.name,
        clip_gradients=bool(cfg.trainer.gradient_clip_val),
        measured=measure_fast_path(cfg, dm, conv) if measure and device == "cpu" else None,
    )  # fmt: skip


def measure_fast_path(cfg: DictConfig, dm: Any, conv_net: bool) -> Any:
    """The calibration's :class:`~recipes.engine.calibrate.Result` for this run on the CPU, or ``None`` where it
    does not apply: turned off (``RESBLOCKS_CALIBRATE=0``), nothing left on ``auto``, several processes (each
    would measure for itself and might choose differently), or a DataModule whose batch shape is unknown."""
    from recipes.data import ImageClassificationData, LanguageModelData, TextClassificationData

    from .engine import calibrate as cal
    from .engine.fast_path import AUTO, bf16_fast

    precision, layout = str(cfg.trainer.precision), cfg.channels_last
    if not cal.enabled() or (precision != AUTO and (layout != AUTO or not conv_net)):
        return None
    if device_count(cfg.trainer) != 1 or cfg.trainer.get("num_nodes", 1) != 1:
        return None
    batch = int(_data_value(dm, "batch_size") or 0)
    if isinstance(dm, ImageClassificationData):
        shape = (batch, int(dm.in_chans), int(dm.image_size or 224), int(dm.image_size or 224))
    elif isinstance(dm, (LanguageModelData, TextClassificationData)):
        shape = (batch, int(_data_value(dm, "block_size") or 0))
    else:
        return None
    if min(shape) <= 0:
        return None
    cands = cal.candidates(
        None if precision == AUTO else precision in ("bf16-mixed", "bf16"),
        None if layout == AUTO else bool(layout),
        bf16_native=bf16_fast("cpu")[0],
        conv_net=conv_net,
    )
    if len(cands) < 2:  # e.g. a GPT on a CPU without native bf16: fp32, nothing to compare
        return None
    name, opts = model_spec(cfg)

    def net() -> nn.Module:
        return resblocks.build_model(name, **opts, **data_derived(name, opts, dm, placeholders=True))

    def batch_of(network: nn.Module) -> torch.Tensor:
        if len(shape) == 4:
            return torch.randn(shape)
        ids = min((m.num_embeddings for m in network.modules() if isinstance(m, nn.Embedding)), default=2)
        return torch.randint(0, ids, shape)

    model = {"name": name, **opts, **data_derived(name, opts, dm, placeholders=True)}
    return cal.calibrate(cal.Calibration(net, batch_of, cands, model=model, batch_shape=shape))


# ----------------------------------------------------------------------------- data


def build_data(cfg: DictConfig) -> Any:
    """The DataModule (constructed only: nothing is read until ``prepare_data``/``setup``)."""
    from recipes import data

    opts = dict(plain(cfg)["data"])
    name = opts.pop("name", None)
    if name not in data.dataset_names():
        raise ConfigError(f"data: unknown dataset {name!r}; valid: {', '.join(data.dataset_names())}")
    try:
        return data.build_datamodule(name, **opts)
    except ValueError as e:  # the DataModules check their options in __init__, one line each
        raise ConfigError(str(e)) from e
    except TypeError as e:  # a value of the wrong type, e.g. data.batch_size=abc (data.* is an open mapping)
        raise ConfigError(
            f"data: option of the wrong type for {name!r} ({e}); valid: {', '.join(data.options(data.DATASETS[name]))}"
        ) from e


# ----------------------------------------------------------------------------- task module


def settings(cfg: DictConfig) -> tuple[OptimizerSettings, ScheduleSettings]:
    """The optimiser and schedule settings; their values are checked as torch.optim sees them."""
    optim, sched = OmegaConf.to_object(cfg.optim), OmegaConf.to_object(cfg.sched)
    check_schedule(optim, sched)  # type: ignore[arg-type]
    return optim, sched  # type: ignore[return-value]


def build_module(cfg: DictConfig, dm: Any, decision: Decision | None = None) -> Any:
    """The LightningModule for the DataModule's task; the network is built in ``configure_model``.

    ``decision``: the run's fast path (default: :func:`fast_path_for`): compile, fused optimiser and,
    for image classifiers, channels-last.
    """
    import dataclasses

    from recipes.data import ImageClassificationData, LanguageModelData, TextClassificationData

    from .modules import CausalLM, ImageClassifier, TextClassifier

    path = (decision or fast_path_for(cfg, dm)).path
    optim, sched = settings(cfg)
    optim = dataclasses.replace(optim, fused=path.fused)

    def net() -> nn.Module:
        if not cfg.init_from:
            return build_net(cfg, dm, compile=path.compile)
        from .runs.init_from import load_initial_weights

        network = build_net(cfg, dm)
        print(load_initial_weights(network, cfg.init_from), flush=True)
        if path.compile:
            network.compile()
        return network

    if run_task(cfg) is TASKS["masked_image_modelling"]:
        from .modules.masked_image import MaskedImageModel

        return MaskedImageModel(net, optim, sched, picture_dir=Path(cfg.run_dir))

    if isinstance(dm, LanguageModelData):
        cpt = _data_value(dm, "chars_per_token")
        if cpt is None and getattr(dm, "tokenizer_kind", None) == "char":
            cpt = 1.0
        return CausalLM(net, optim, sched, chars_per_token=cpt, encode=dm.encode, decode=dm.decode)
    # num_classes None: the module reads it from the DataModule after setup (an imagefolder's classes).
    num_classes, smoothing = cfg.model.get("num_classes"), cfg.task.label_smoothing
    if isinstance(dm, ImageClassificationData):
        return ImageClassifier(
            net, num_classes, optim, sched, label_smoothing=smoothing, channels_last=path.channels_last
        )
    if isinstance(dm, TextClassificationData):
        return TextClassifier(net, num_classes, optim, sched, label_smoothing=smoothing)
    raise ConfigError(f"data: {type(dm).__name__} has no task module; valid: image/text classification or LM data")


# ----------------------------------------------------------------------------- trainer


def device_count(trainer: DictConfig) -> int:
    """How many processes per node ``trainer.devices`` asks for."""
    devices = trainer.devices
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, str) and devices not in ("auto", "-1"):
        return len([d for d in devices.split(",") if d.strip()]) if "," in devices else int(devices)
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        return len(devices)
    if trainer.accelerator == "cpu":
        return 1
    return max(1, torch.cuda.device_count())


DEVICES_VALID = "auto, -1 (all), a count >= 1, a list of device ids >= 0, or ids as a string such as '0,1'"


def check_devices(trainer: DictConfig) -> int:
    """``trainer.devices`` is a value Lightning takes (its own message would not name the key); returns
    :func:`device_count`."""
    devices = trainer.devices
    if isinstance(devices, str) and devices != "auto":
        parts = [p.strip() for p in devices.split(",")]
        if not all(p.lstrip("-").isdigit() for p in parts):
            raise ConfigError(f"trainer.devices: {devices!r}; valid: {DEVICES_VALID}")
        devices = [int(p) for p in parts] if len(parts) > 1 else int(parts[0])
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        if not devices or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in devices):
            raise ConfigError(f"trainer.devices: {trainer.devices}; valid: {DEVICES_VALID}")
    elif devices != "auto" and (
        isinstance(devices, bool) or not isinstance(devices, int) or devices < -1 or devices == 0
    ):
        raise ConfigError(f"trainer.devices: {trainer.devices!r}; valid: {DEVICES_VALID}")
    return device_count(trainer)


def check_trainer(cfg: DictConfig) -> None:
    """``trainer.*`` as Lightning sees it, now: a throwaway ``Trainer`` runs Lightning's own checks
    (accelerator, devices, strategy, precision, intervals), before any file is written. Ranges and
    ``trainer.devices`` are checked before, without Lightning (:func:`check_config`)."""
    import logging

    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    t = cfg.trainer
    if str(t.accelerator) in ("gpu", "cuda") and str(t.devices) not in ("auto", "-1"):
        wanted, have = device_count(t), torch.cuda.device_count()
        if wanted > have:
            raise ConfigError(
                f"trainer.devices: {t.devices} with trainer.accelerator={t.accelerator}, but this machine has {have} "
                f"CUDA GPU(s); valid: at most {have}" + (", or trainer.accelerator=cpu" if not have else "")
            )
    kwargs = OmegaConf.to_container(t, resolve=True)
    kwargs["precision"] = resolve_precision(kwargs["precision"], device_type(t.accelerator))[0]
    quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level, quiet.level = quiet.level, logging.WARNING  # its "GPU available: ..." lines come with the real Trainer
    try:
        pl.Trainer(**kwargs, logger=False, enable_checkpointing=False, callbacks=[])
    except (ValueError, TypeError, KeyError, ImportError, MisconfigurationException) as e:
        raise ConfigError(f"trainer: {' '.join(str(e).split())}") from e
    finally:
        quiet.level = level


def validate(cfg: DictConfig, multirun: bool = False) -> Any:
    """Check everything that can be checked without data; returns the (unloaded) DataModule.

    Raises :class:`ConfigError` with one line naming the key, the value and the valid choices; an
    unexpected error while checking is reported the same way (``debug=true`` shows its traceback).
    """
    try:
        return _validate(cfg, multirun)
    except ConfigError:
        raise
    except Exception as e:
        if cfg.get("debug"):
            raise
        raise ConfigError(
            f"config: could not be checked ({describe(e)}); "
            "valid: fix the value it names (debug=true shows the traceback)"
        ) from e


def _validate(cfg: DictConfig, multirun: bool = False) -> Any:
    check_config(cfg, multirun)  # Lightning, W&B and datasets are not imported yet
    check_trainer(cfg)
    dm = build_data(cfg)
    num_classes = _data_value(dm, "num_classes")
    if num_classes:  # known before setup for fixed datasets: a top-5 metric needs 100 classes
        check_monitor(cfg.checkpoint.monitor, cfg.data.name, num_classes, cfg.divergence.grad_norms,
                      resblocks.MODELS.options(model_spec(cfg)[0]), extra_metrics(cfg))  # fmt: skip
    fast_path_for(cfg, dm, meta_net(cfg, dm))  # combinations; an explicit switch that cannot work on this device
    return dm


def check_values(cfg: DictConfig) -> dict[str, Any]:
    """Interpolations, ranges (the schema's :func:`~recipes.values.ranged` fields), NaN/inf anywhere, and the
    optimiser's and schedule's values; returns the plain config."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        tree = plain(cfg)  # missing values (???) and broken interpolations
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', None) or 'config'}: {str(e).splitlines()[0]}") from e
    check_ranges(tree, TrainConfig)
    check_finite(tree)  # open mappings too: model.*, data.*, shortcut.* (a gate_bias of NaN diverges at step 0)
    settings(cfg)  # optimiser / schedule names, and their values asked of torch.optim
    return tree


def check_task(cfg: DictConfig) -> None:
    """The network (``model.name``) can learn the task of the data (``data.name``): an image network on text is
    refused here, first, since the two groups' other options may not even resolve together."""
    from recipes import data

    name = OmegaConf.select(cfg, "model.name", throw_on_resolution_failure=False)
    data_name = OmegaConf.select(cfg, "data.name", throw_on_resolution_failure=False)
    if not isinstance(data_name, str) or data_name not in data.dataset_names():
        raise ConfigError(f"data: unknown dataset {data_name!r}; valid: {', '.join(data.dataset_names())}")
    models = resblocks.MODELS
    if isinstance(name, str) and name in models:
        options = ((n, models.options(n)) for n in models.names())
        check_model_fits_data(name, models.options(name), data_name, options)


def check_network(cfg: DictConfig) -> None:
    """The network's and the shortcut rule's option names, and their types by the builder's annotations."""
    name, _ = model_spec(cfg)
    tree = plain(cfg)
    given = {k: v for k, v in tree["model"].items() if k != "name"}
    check_types(option_hints([resblocks.MODELS.get(name)]), given, "model")
    if tree["shortcut"] is not None:
        rule = resblocks.SHORTCUTS.get(tree["shortcut"]["name"])
        chain = init_chain(rule) if isinstance(rule, type) else [rule]
        check_types(option_hints(chain), {k: v for k, v in tree["shortcut"].items() if k != "name"}, "shortcut")


def check_config(cfg: DictConfig, multirun: bool = False) -> None:
    """Everything that needs neither data nor Lightning (see the module docstring); one line per problem."""
    check_task(cfg)
    check_values(cfg)
    check_logger(cfg.logger.name)
    if cfg.logger.name == "wandb":
        wandb_mode(cfg.logger.mode)  # a bad mode, or online without a key
    if str(cfg.trainer.precision) not in PRECISIONS:
        raise ConfigError(f"trainer.precision: {cfg.trainer.precision!r}; valid: {', '.join(PRECISIONS)}")
    check_switch("compile", cfg.compile)
    check_switch("channels_last", cfg.channels_last)
    if cfg.resume not in (None, "auto") and not str(cfg.resume).strip():
        raise ConfigError("resume: empty; valid: auto, null or a checkpoint path")
    n = check_devices(cfg.trainer) * cfg.trainer.num_nodes
    if multirun and n > 1:
        raise ConfigError(
            f"trainer.devices: {cfg.trainer.devices} x {cfg.trainer.num_nodes} node(s) under multirun (-m); valid: "
            "trainer.devices=1 per sweep job (Hydra runs sweep jobs in one process, Lightning's DDP relaunch cannot "
            "follow), or launch each multi-device job yourself (torchrun, SLURM, a W&B sweep agent)"
        )
    if str(cfg.trainer.strategy).startswith("fsdp") and (
        cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()
    ):
        raise ConfigError(
            f"trainer.strategy: {cfg.trainer.strategy} needs CUDA GPUs (Lightning's FSDP); valid: ddp, auto on this machine"
        )
    if cfg.divergence.action not in DIVERGENCE_ACTIONS:
        raise ConfigError(f"divergence.action: {cfg.divergence.action!r}; valid: {', '.join(DIVERGENCE_ACTIONS)}")
    check_checkpoint_config(cfg.checkpoint)
    check_network(cfg)
    check_monitor(cfg.checkpoint.monitor, cfg.data.name, grad_norms=cfg.divergence.grad_norms,
                  model_options=resblocks.MODELS.options(model_spec(cfg)[0]), extra=extra_metrics(cfg))
    from recipes.data import task_of

    if cfg.frozen.every_n_epochs and task_of(cfg.data.name) != "image_classification":  # labelled images
        raise ConfigError(
            f"frozen.every_n_epochs: {cfg.frozen.every_n_epochs}, but data {cfg.data.name!r} is not images; valid: 0"
        )
    check_init_from(cfg.init_from)
