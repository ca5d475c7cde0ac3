"""Typed schema of the training configuration, registered in Hydra's ConfigStore as ``train_schema``.

The YAML files under ``conf/`` fill this schema; a key that is not in it, or a value of the wrong
type, fails when the config is composed. ``model``, ``data`` and ``shortcut`` are open mappings
whose option names are checked against the registries instead (``resblocks.MODELS``,
``recipes.data``, ``resblocks.SHORTCUTS``), so every registered builder is reachable without a
schema edit.

The nested dataclasses are plain data: ``OmegaConf.to_object(cfg.optim)`` gives the
:class:`~recipes.modules.optim.OptimizerSettings` the LightningModules take.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from resblocks.errors import ConfigError

from .modules.optim import OptimizerSettings, ScheduleSettings
from .values import check_ranges, ranged

SEED_MAX = 2**32 - 1  # Lightning's seed_everything range (numpy's uint32)
DIVERGENCE_ACTIONS = ("stop", "skip", "off")


@dataclass
class ResidualConfig:
    """Branch-output modifiers of every residual sub-layer, composed with any shortcut rule (resblocks.modifiers)."""

    drop_path_rate: float = 0.0  # stochastic depth of the last block, linspace(0, rate, blocks) (Huang et al. 2016)
    layer_scale_init: float | None = None  # LayerScale diag(lambda) F(x) with this init (CaiT); null = off


@dataclass
class NormConfig:
    """Norm placement for Transformer blocks (``post_ln``, ``pre_ln``, ``peri_ln``, ``res_post_ln``, ``none``)."""

    placement: str = "pre_ln"
    layer: str = "layernorm"  # layernorm | rmsnorm


@dataclass
class TrainerConfig:
    """Keyword arguments of ``lightning.Trainer`` (same names and meaning)."""

    accelerator: str = "auto"  # auto | cpu | gpu | mps
    devices: Any = "auto"  # an int, a list of device ids, or "auto"
    num_nodes: int = ranged(1, ge=1)
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp | deepspeed ...
    precision: str = "auto"  # auto (bf16-mixed where bf16 is fast, else 32-true; recipes/engine/fast_path.py) | 32-true | bf16-mixed | bf16-true | 16-mixed
    max_steps: int = ranged(-1, ge=-1)  # -1: no step limit
    max_epochs: int | None = ranged(None, ge=1, also=((-1, "for no epoch limit"),), null="")
    gradient_clip_val: float | None = ranged(None, gt=0, also=((0, "for no clipping"),), null="for no clipping")
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = ranged(1, ge=1)
    val_check_interval: Any = None  # int: every N train batches; float: fraction of an epoch
    check_val_every_n_epoch: int | None = 1  # null with an int val_check_interval: count across epochs
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int = ranged(50, ge=1)
    fast_dev_run: Any = False
    deterministic: Any = None
    benchmark: bool | None = None
    sync_batchnorm: bool = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    detect_anomaly: bool = False


@dataclass
class FSDPConfig:
    """Settings used when ``trainer.strategy=fsdp`` (Lightning ``FSDPStrategy``)."""

    sharding_strategy: str = "FULL_SHARD"  # FULL_SHARD | SHARD_GRAD_OP | HYBRID_SHARD | NO_SHARD
    activation_checkpointing: bool = False  # recompute each residual sub-layer in the backward pass
    state_dict_type: str = "full"  # full: one .ckpt file; sharded: a folder per checkpoint


@dataclass
class LoggerConfig:
    """Experiment tracker: ``wandb`` (default), ``csv``, ``tensorboard`` or ``none``."""

    name: str = "wandb"
    project: str = "resblocks"  # wandb
    entity: str | None = None  # wandb
    group: str | None = None  # wandb
    tags: list[str] = field(default_factory=list)  # wandb
    mode: str | None = None  # wandb: online | offline | disabled; null = online iff an API key is configured


@dataclass
class CheckpointConfig:
    """Step-based checkpoints (with ``last.ckpt``) and the best one by ``monitor``."""

    every_n_steps: int | None = ranged(None, ge=1, null="for every epoch")  # null: at the end of every epoch
    keep: int = ranged(1, ge=1, also=((-1, "for all"),))  # periodic checkpoints kept besides last.ckpt (-1: all)
    monitor: str | None = "val/loss"  # null: no best checkpoint
    mode: str = "min"  # min | max


@dataclass
class DivergenceConfig:
    """What a non-finite loss or gradient does; checked every step, before the optimiser step."""

    action: str = "stop"  # stop: end the run (exit 1), last good checkpoint kept | skip: drop the update | off
    max_skips: int = ranged(10, ge=1)  # skip: stop anyway after this many consecutive skipped steps
    grad_norms: bool = False  # log per-layer gradient norms (grad_norm/<layer>) every log_every_n_steps


@dataclass
class DiagnosticsConfig:
    """Residual diagnostics while training (``recipes.diagnostics``, docs/diagnostics.md); ``diagnostics=off``: none."""

    every_n_steps: int = ranged(250, ge=0)  # probe one optimiser step in this many (step 0 included); 0: off
    effective_rank: bool = False  # also each sub-layer's output effective rank (one SVD per sub-layer per probe)
    rank_rows: int = ranged(1024, ge=1)  # rows of the effective-rank sample (tokens, or positions x samples)


@dataclass
class FrozenConfig:
    """Frozen-feature quality of the network while training (``recipes.diagnostics.frozen``, docs/training.md):
    kNN and linear-probe accuracy of its pooled features, the train split as memory, the test split as queries."""

    every_n_epochs: int = ranged(0, ge=0)  # 0: off; else every n epochs and at the end (frozen/knn_acc, frozen/linear_acc)
    knn_k: int = ranged(20, ge=1)  # neighbours (DINO's weighted vote)
    knn_temperature: float = ranged(0.07, gt=0)
    linear_probe: bool = True  # also a linear classifier on the standardised features (L-BFGS)
    max_memory: int | None = ranged(None, ge=1, null="for the whole train split")  # quick runs: a prefix of it


@dataclass
class TaskConfig:
    """Loss options of the LightningModule."""

    label_smoothing: float = ranged(0.0, ge=0, lt=1)  # classification (Szegedy et al. 2016)


@dataclass
class SampleConfig:
    """Text sample printed after training a language model (nanoGPT ``sample.py``)."""

    tokens: int = ranged(500, ge=0)  # 0: no sample
    prompt: str = "\n"
    temperature: float = ranged(0.8, gt=0)
    top_k: int | None = ranged(200, ge=1, null="for all tokens")


@dataclass
class TrainConfig:
    """The whole run. Recipes (``conf/recipe/*.yaml``) set ``name`` and everything that differs."""

    name: str = MISSING  # run name; the run directory is runs/<name> unless run_dir is set
    seed: int = ranged(0, ge=0, le=SEED_MAX)
    run_dir: str = "runs/${name}"
    resume: str | None = None  # null | auto | PATH to a .ckpt
    init_from: str | None = None  # fine-tuning: weights of a recipes.train checkpoint (the same network, or an MAE's encoder)
    overwrite: bool = False  # start afresh in a run_dir that already holds checkpoints (deletes them)
    test: bool = False  # evaluate the best (else last) checkpoint on the test split after training
    # The fast path (recipes/engine/fast_path.py): auto | true | false each; one line at the start says what was chosen.
    compile: bool | str = "auto"  # torch.compile the network; auto: on CUDA only
    channels_last: bool | str = "auto"  # NHWC conv nets and image batches; auto: for conv nets
    # highest | high | medium (TF32 on Ampere+ GPUs). On a CPU with AMX, medium makes fp32 matmuls bf16 (oneDNN):
    # shakespeare_gpt's step was 1.9x slower so on an Intel Xeon (docs/benchmarks.md).
    float32_matmul_precision: str | None = None
    model: dict[str, Any] = field(default_factory=dict)  # name + builder options (resblocks.MODELS)
    data: dict[str, Any] = field(default_factory=dict)  # name + DataModule options (recipes.data)
    shortcut: dict[str, Any] | None = None  # name + rule options (resblocks.SHORTCUTS); null = model default
    norm: NormConfig | None = None  # null = model default
    residual: ResidualConfig = field(default_factory=ResidualConfig)  # branch-output modifiers, any rule
    optim: OptimizerSettings = field(default_factory=OptimizerSettings)
    sched: ScheduleSettings = field(default_factory=ScheduleSettings)
    task: TaskConfig = field(default_factory=TaskConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)  # per-depth residual diagnostics
    frozen: FrozenConfig = field(default_factory=FrozenConfig)  # kNN / linear-probe accuracy of the features
    debug: bool = False  # Python tracebacks for configuration and data errors (also: RESBLOCKS_DEBUG=1)
    threads: int | None = ranged(None, ge=1, null="for torch's choice")  # torch.set_num_threads for this run; null = torch's choice (studies: 1 per job)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_checkpoint_config(cfg: Any) -> None:
    """One-line ``ConfigError`` for a bad ``CheckpointConfig``, a mapping or an instance (called by ``validate``
    before anything is built; here, not in ``recipes.runs.checkpoints``, so the check needs no Lightning import)."""
    check_ranges(cfg, CheckpointConfig, "checkpoint")  # keep, every_n_steps: their ranged() fields
    if cfg.mode not in ("min", "max"):
        raise ConfigError(f"checkpoint.mode: {cfg.mode!r}; valid: min, max")


def registry_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """A constructor's options as config values (a required option, which has no default, becomes null)."""
    return {k: None if v is inspect.Parameter.empty else v for k, v in options.items()}


def register_configs() -> None:
    """Register the schema and the group options that come from the library's registries.

    * ``shortcut=NAME``: every registered rule, with *its constructor's real defaults*, so
      ``shortcut.rank=8`` works without a ``+`` and no YAML copy of the defaults can drift from the code;
    * ``norm=PLACEMENT``: every placement of :data:`resblocks.NORM_PLACEMENTS` (LayerNorm; ``norm.layer=rmsnorm``);
    * ``model=NAME``: every registered model by name (its builder's defaults; ``+model.KEY=...`` adds options).

    A YAML under ``conf/<group>/`` of the same name wins: it is kept only for presets whose values differ
    (``conf/model/*.yaml`` give recipes their model defaults). Idempotent.
    """
    import resblocks

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    generated = {
        "model": {name: {"name": name} for name in resblocks.MODELS.names()},
        "shortcut": {
            name: {"name": name, **registry_defaults(resblocks.SHORTCUTS.options(name))}
            for name in resblocks.SHORTCUTS.names()
        },
        "norm": {p: {"placement": p, "layer": "layernorm"} for p in resblocks.NORM_PLACEMENTS},
    }
    for group, nodes in generated.items():
        curated = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
        for name, node in nodes.items():
            if name not in curated:
                store.store(group=group, name=name, node=node)


register_configs()
