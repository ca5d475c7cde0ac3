"""Train a recipe: ``python -m recipes.train recipe=NAME [group=option ...] [key=value ...]``.

``--help`` lists the recipes and every group's options; ``docs/training.md`` has the whole story.
Exit status: 0 done, 2 bad configuration (one line, no traceback, nothing built yet), 1 failure
(bad data, divergence, a checkpoint that cannot be written: one line too). ``debug=true`` or
``RESBLOCKS_DEBUG=1`` shows the Python traceback instead. See ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from resblocks.errors import ConfigError

from . import config as _config  # noqa: F401  (registers the schema in Hydra's ConfigStore)
from .build import build_module, fast_path_for, plain, validate
from .errors import CONFIG_EXIT, DEBUG_ENV, FAILURE_EXIT, DivergenceError, config_error_line, debug_requested
from .engine.fast_path import Decision
from .help_listing import shared_listing_repository, wants_help
from .runs.plan import RunPlan, WeightsMismatch, check_resumable, launch_rank, mismatch_message, plan_run
from .tracking.summary import RunSummary, collect_metrics, hydra_overrides, resolved_choices
from .tracking.loggers import quick_getmodule, redact_secrets
from .tracking.quiet import quiet_lightning

_task_started = False  # set once Hydra has composed the config (to tell its errors from ours)


def build_trainer(
    cfg: DictConfig, plan: RunPlan, callbacks: Sequence[Any], logger: Any, decision: Decision | None = None
) -> Any:
    """``lightning.Trainer`` from ``cfg.trainer`` with the fast path's precision (``decision``, default
    :func:`~recipes.build.fast_path_for`); FSDP shards per residual sub-layer (``cfg.fsdp``)."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf import OmegaConf

    from .runs.checkpoints import AtomicCheckpointIO, AtomicFSDPStrategy
    from .engine.precision import PLAIN_STRATEGIES, trainer_precision

    decision = decision or fast_path_for(cfg, None)
    quiet_lightning()
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    del kwargs["precision"]  # "auto", or what the decision took it from
    kwargs.update(trainer_precision(decision.precision, decision.device, kwargs["strategy"]))
    plugins: list[Any] = kwargs.pop("plugins", [])
    if kwargs["strategy"] == "fsdp":
        from resblocks import Residual

        kwargs["strategy"] = AtomicFSDPStrategy(
            checkpoint_io=AtomicCheckpointIO(),
            auto_wrap_policy={Residual},
            activation_checkpointing_policy={Residual} if cfg.fsdp.activation_checkpointing else None,
            sharding_strategy=cfg.fsdp.sharding_strategy,
            state_dict_type=cfg.fsdp.state_dict_type,
        )
    elif kwargs["strategy"] in PLAIN_STRATEGIES:
        plugins.append(AtomicCheckpointIO())
    try:
        return pl.Trainer(
            **kwargs, default_root_dir=str(plan.run_dir), callbacks=list(callbacks), logger=logger, plugins=plugins
        )
    except (ValueError, TypeError, MisconfigurationException) as e:  # Lightning's own checks of trainer.* values
        raise ConfigError(f"trainer: {' '.join(str(e).split())}") from e


def _tracker_info(logger: Any) -> str | None:
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    if getattr(logger, "failure", None):  # a FallbackLogger whose W&B failed
        return f"{_tracker_info(logger.fallback)} (W&B failed {logger.failure})"
    logger = getattr(logger, "primary", logger)
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        if getattr(run, "offline", False) or getattr(run.settings, "mode", "") == "offline":
            folder = str(Path(run.dir).parent)  # run.dir is <offline-run-...>/files
            return f"W&B offline: {folder} (upload: wandb sync {folder})"
        return f"W&B: {getattr(run, 'url', None) or run.id}"
    if isinstance(logger, CSVLogger):
        return f"CSV: {Path(logger.log_dir) / 'metrics.csv'}"
    return getattr(logger, "log_dir", None) if logger else None


def record_hydra_config(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's record of the run in ``run_dir/.hydra/`` (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``).

    Written here, once the config has passed the checks, not by Hydra before the task starts
    (``hydra.output_subdir: null`` in ``conf/train.yaml``): a bad config leaves no run directory behind.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.instance().cfg
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.hydra.overrides.task, folder / "overrides.yaml")


def train(
    cfg: DictConfig, multirun: bool = False, callbacks: Sequence[Any] = (), hydra_record: DictConfig | None = None
) -> RunSummary:
    """Validate ``cfg``, then train (resuming per ``cfg.resume``), evaluate and summarise.

    ``callbacks`` are extra Lightning callbacks (tests use them to observe a run). ``hydra_record``: the
    config as Hydra composed it, recorded in ``run_dir/.hydra/`` once the checks passed (the entry point).
    """
    dm = validate(cfg, multirun=multirun)  # raises ConfigError before any data or model is built
    plan = plan_run(cfg.run_dir, cfg.resume, cfg.overwrite)
    if hydra_record is not None and launch_rank() == 0:
        record_hydra_config(plan.run_dir, hydra_record)
    resolved = redact_secrets(plain(cfg))  # what logs, checkpoints and summaries see
    check_resumable(plan.stored_config, resolved)

    import lightning.pytorch as pl
    import torch

    from .tracking.callbacks import TrainingMonitor
    from .runs.checkpoints import RunState, checkpoint_callbacks
    from .diagnostics import recipe_callbacks
    from .engine.divergence import DivergenceGuard
    from .tracking.loggers import build_logger, finish, rewind_logs
    from .tracking.progress import progress_callbacks

    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # parallel study jobs: one thread each, jobs = cores
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.float32_matmul_precision:
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    decision = fast_path_for(cfg, dm, measure=True)  # on a CPU: a ~2 s calibration, cached per machine + model
    module = build_module(cfg, dm, decision)
    if launch_rank() == 0:
        print(decision.line(), flush=True)
        rewind_logs(plan.run_dir, plan.start_step)  # rows a killed attempt logged past the checkpoint
    logger = build_logger(
        cfg.logger, plan.run_dir, plan.run_id, cfg.name, announce=launch_rank() == 0, start_step=plan.start_step
    )
    monitor = TrainingMonitor()
    ckpts = checkpoint_callbacks(cfg.checkpoint, plan.ckpt_dir)
    guard = DivergenceGuard(cfg.divergence.action, cfg.divergence.max_skips, cfg.divergence.grad_norms)
    diagnostics = recipe_callbacks(cfg, plan.run_dir)  # residual/* scalars and pictures (diagnostics=off: none)
    progress = progress_callbacks(cfg.trainer.enable_progress_bar)  # stdout not a terminal: a line per 30 s
    trainer = build_trainer(
        cfg, plan, [*ckpts, RunState(resolved, plan), monitor, guard, *diagnostics, *callbacks, *progress], logger,
        decision,
    )
    if logger:
        with quick_getmodule():  # W&B starts here (its first use); see quick_getmodule
            logger.log_hyperparams({**resolved, "fast_path": decision.summary()})  # what "auto" chose
    start = time.perf_counter()

    def run_summary(metrics: dict[str, float], best: str | None, last: str | None, **more: Any) -> RunSummary:
        return RunSummary(
            name=cfg.name, run_dir=str(plan.run_dir), run_id=plan.run_id, steps=trainer.global_step,
            seconds=time.perf_counter() - start, metrics=metrics, best_checkpoint=best, last_checkpoint=last,
            params=sum(p.numel() for p in module.parameters()),
            tracker=_tracker_info(logger) if trainer.is_global_zero else None,
            resumed_from=str(plan.ckpt_path) if plan.ckpt_path else None,
            overrides=hydra_overrides(), choices=resolved_choices(cfg), **more,
        )  # fmt: skip

    try:
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=plan.ckpt_path, weights_only=True)
        except WeightsMismatch as e:  # raised as Lightning loads the checkpoint, before the first step
            raise ConfigError(mismatch_message("resume", plan.ckpt_path, str(e), plan.stored_config, resolved)) from e
        except DivergenceError as e:
            # A run that diverged is a result (a study counts it as one, and does not run it again): its
            # summary says so, with the metrics logged until then; the command still fails (exit status 1).
            if trainer.is_global_zero:
                diverged = run_summary(collect_metrics(trainer.callback_metrics), None, None, diverged=str(e))
                diverged.write(plan.run_dir / "summary.json")
            raise
        if monitor.last_val_step != trainer.global_step and any(trainer.num_val_batches) and not trainer.fast_dev_run:
            trainer.validate(module, datamodule=dm, verbose=False)  # report metrics of the final weights
        metrics = collect_metrics(trainer.callback_metrics)
        if cfg.test:
            for result in trainer.test(module, datamodule=dm, verbose=False):
                metrics.update(collect_metrics(result))
        best = next(
            (c.best_model_path for c in ckpts if c.monitor == cfg.checkpoint.monitor and c.best_model_path), None
        )
        best, last = (p if p and Path(p).exists() else None for p in (best, ckpts[-1].last_model_path))
        summary = run_summary(metrics, best, last)
        if trainer.is_global_zero:
            if cfg.sample.tokens and hasattr(module, "sample") and cfg.trainer.strategy != "fsdp":
                s = cfg.sample
                summary.sample = module.sample(
                    s.prompt, s.tokens, temperature=s.temperature, top_k=s.top_k, seed=cfg.seed
                )
            summary.write(plan.run_dir / "summary.json")
            print(summary.format(), flush=True)
        return summary
    finally:
        finish(logger)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    global _task_started
    _task_started = True
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from recipes.data import DataError, DataNotFoundError

    from .runs.atomic import WriteError

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    composed = OmegaConf.create(OmegaConf.to_container(cfg))  # as Hydra composed it, for run_dir/.hydra/
    if multirun:
        cfg.run_dir = hydra_cfg.runtime.output_dir  # runs/<name>-multirun/<overrides>: one folder per job
    debug = bool(cfg.get("debug")) or debug_requested([])
    try:
        summary = train(cfg, multirun=multirun, hydra_record=composed)
    except (ConfigError, DataNotFoundError, DataError, DivergenceError, WriteError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(CONFIG_EXIT if isinstance(e, (ConfigError, DataNotFoundError)) else FAILURE_EXIT)
    return summary.metric(cfg.checkpoint.monitor)  # the objective for Hydra sweepers


def main() -> None:
    """The command line: Hydra composes the config; a bad one ends in one line and exit status 2."""
    debug = debug_requested(sys.argv[1:])
    os.environ[DEBUG_ENV] = "1" if debug else "0"  # the task (and DDP's relaunched ranks) decide alike
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them; we report them
    listing = shared_listing_repository() if wants_help(sys.argv[1:]) else contextlib.nullcontext()
    try:
        with listing:
            _hydra_main()
    except SystemExit as e:
        # Hydra reports some argument errors itself and exits 1: those are config errors too.
        if e.code == 1 and not _task_started:
            raise SystemExit(CONFIG_EXIT) from None
        raise
    except Exception as e:
        if _task_started or debug:
            raise
        print(f"error: {config_error_line(e)}", file=sys.stderr, flush=True)
        sys.exit(CONFIG_EXIT)


if __name__ == "__main__":
    main()
