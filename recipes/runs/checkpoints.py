"""Everything that writes checkpoints: when (step-based, best, last), how (atomically), and what
extra state goes in (the resolved config, the run id, RNG states).

A checkpoint is Lightning's (weights, optimiser, LR scheduler, step/epoch loop state, callback and
DataModule state) plus ``checkpoint["resblocks"]`` from :class:`RunState`. Resume reads it back
through ``trainer.fit(ckpt_path=...)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.strategies import FSDPStrategy

from .atomic import TEMP_MARK, atomic_write, fsync_dir, remove_path, replace_path, staged_folder, temp_path
from ..config import check_checkpoint_config
from ..data.windows import mix
from .plan import LAST, META_KEY, RunPlan, safe_load
from ..tracking.wandb_rewind import record_position

STAGED = f"{TEMP_MARK}-staged"  # StepCheckpoint's files before they are published: .last.ckpt.tmp-staged


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written atomically (:func:`recipes.runs.atomic.atomic_write`) and read back safely.

    A run killed mid-write leaves the previous checkpoint intact, so ``resume=auto`` never meets a
    truncated ``last.ckpt``; a failed write (e.g. ``ENOSPC``) raises a one-line
    :class:`~recipes.runs.atomic.WriteError` and leaves no partial file. Reading always uses
    ``torch.load(weights_only=True)``: tensors and plain containers only, so opening a checkpoint
    cannot run code, whatever ``weights_only`` Lightning passes.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        path = Path(path)
        shown = path.with_name(path.name[1 : -len(STAGED)]) if path.name.endswith(STAGED) else path
        atomic_write(path, lambda f: torch.save(checkpoint, f), "checkpoint", shown)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return safe_load(path, map_location=map_location or "cpu")


class AtomicFSDPStrategy(FSDPStrategy):
    """Lightning's ``FSDPStrategy`` whose checkpoints are written atomically too.

    ``state_dict_type="full"`` checkpoints are one file written by rank 0 through ``checkpoint_io``
    (pass :class:`AtomicCheckpointIO`). ``"sharded"`` ones are folders that every rank writes into:
    here they go to rank 0's staging folder (:func:`recipes.runs.atomic.staged_folder`), and rank 0 renames
    it into place once every rank is done (torch.distributed.checkpoint fsyncs the shards; rank 0
    fsyncs the rest). A rank killed mid-write leaves the previous checkpoint folder intact.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None) -> None:
        if self._state_dict_type != "sharded":
            super().save_checkpoint(checkpoint, filepath, storage_options)
            return
        final = Path(self.broadcast(str(filepath)))
        tmp = Path(self.broadcast(str(temp_path(final))))  # rank 0's name, on every rank
        with staged_folder(final, tmp, owner=self.is_global_zero):
            self.barrier("staging folder ready")
            super().save_checkpoint(checkpoint, tmp, storage_options)
            self.barrier("every shard written")
        self.barrier("checkpoint published")


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) generator states, as tensors and plain types (``weights_only``-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }
    state: dict[str, Any] = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_batch(seed: int, epoch: int, batch_idx: int, rank: int, *, cpu_only: bool = False) -> None:
    """Seed Python, NumPy and torch from ``(seed, epoch, batch_idx, rank)`` (splitmix64): every device's
    generator, or with ``cpu_only`` (a run on the CPU) the CPU generator alone, the only one such a run draws from.

    Why ``cpu_only``: where CUDA is built in but not initialised, ``torch.manual_seed`` queues a lazy CUDA seed
    and formats the Python stack for it on every call, ~1 % of the default CPU run's time at one call per step.
    """
    s = mix(mix(mix(seed, epoch), batch_idx), rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    if cpu_only:
        torch.default_generator.manual_seed(s % 2**63)
    else:
        torch.manual_seed(s % 2**63)


class RunState(Callback):
    """Puts the resolved config and the run id in every checkpoint, and saves/restores RNG states.

    RNG states are restored when training (re)starts, after Lightning has restored everything else.
    Each training batch also starts from its own seed (:func:`seed_batch`), so its randomness
    (dropout, stochastic depth) is a function of ``(seed, epoch, batch, rank)``, not of what ran
    before it: validation, or a DataLoader iterator made at an epoch's start, draw from the global
    generators, and a run resumed from a checkpoint saved at such a point would otherwise drift.
    """

    def __init__(self, config: dict[str, Any], plan: RunPlan) -> None:
        self.config, self.plan = config, plan
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "RunState"

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = {"config": self.config, "run_id": self.plan.run_id, "run_dir": str(self.plan.run_dir)}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_rng = state_dict.get("rng")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        seed = int(self.config.get("seed", 0))
        cpu_only = trainer.strategy.root_device.type == "cpu"
        seed_batch(seed, trainer.current_epoch, batch_idx, trainer.global_rank, cpu_only=cpu_only)


class StepCheckpoint(ModelCheckpoint):
    """Periodic checkpoints (every N steps, else every epoch), the newest ``keep`` kept, plus ``last.ckpt``.

    Unlike a plain ``ModelCheckpoint``:

    * ``last.ckpt`` is also written when training ends between two periodic saves, so
      ``resume=auto`` after a finished run starts from its true final step;
    * a save due at an epoch's last batch happens then, not at the next validation (Lightning
      defers monitored saves to fresh metrics; ``step`` always is fresh);
    * files are written *staged* (complete, under a hidden name) and published, i.e. renamed into
      place, only once the step's metrics have been logged: at the next batch, the epoch's end or
      the end of training. A run killed in between resumes from the previous checkpoint, whose
      logged steps are all on disk, so the resumed log has neither gaps nor repeats
      (:func:`recipes.tracking.loggers.rewind_logs` drops the rows past it). An exception discards them.
    * when the next step starts (or training ends) after a checkpoint was published, W&B's position
      is recorded for it, so a resume from it rewinds the W&B run there (:mod:`recipes.tracking.wandb_rewind`).
    * rotation (``keep``) deletes an old periodic checkpoint only once its replacement is published:
      Lightning deletes it right after the save, which here only staged the new one, so a kill or a
      failure before the publish would leave no periodic checkpoint at all.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(save_on_train_epoch_end=True, **kwargs)
        self._staged: list[tuple[Path, Path]] = []
        self._superseded: list[str] = []  # old periodic checkpoints to delete once the staged ones are published
        self._staged_step: int | None = None  # the global step the staged checkpoints hold
        self._unrecorded: int | None = None  # published, W&B position not yet recorded

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        if not isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):  # a writer we cannot vouch for
            super()._save_checkpoint(trainer, filepath)
            return
        final = Path(filepath)
        staged = final.with_name(f".{final.name}{STAGED}")
        super()._save_checkpoint(trainer, str(staged))
        self._staged.append((staged, final))
        self._staged_step = trainer.global_step

    def _remove_checkpoint(self, trainer: Any, filepath: str) -> None:
        if self._staged:  # its replacement is only staged: delete it once that is published
            self._superseded.append(filepath)
        else:
            super()._remove_checkpoint(trainer, filepath)

    def publish(self, trainer: Any) -> None:
        """Rename the staged checkpoints (files, or FSDP folders) into place, ``last.ckpt`` first (resume reads it),
        then delete the periodic checkpoints they replace."""
        staged, self._staged = self._staged, []
        superseded, self._superseded = self._superseded, []
        if trainer.is_global_zero:
            for tmp, final in sorted(staged, key=lambda s: s[1].name != LAST):
                replace_path(tmp, final)
            if staged:
                fsync_dir(staged[0][1].parent)
        for old in superseded:  # every rank: a sharded strategy's removal is a collective
            super()._remove_checkpoint(trainer, old)
        if staged:
            self._unrecorded = self._staged_step

    def record_log_position(self, trainer: Any) -> None:
        """Note W&B's position for the last published checkpoint (all its step's rows are logged by now)."""
        if self._unrecorded is not None and trainer.is_global_zero and self.dirpath:
            record_position(Path(self.dirpath), self._unrecorded, trainer.logger)
        self._unrecorded = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.publish(trainer)
        self.record_log_position(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.publish(trainer)  # the epoch's own metrics are logged after this hook: record at the next step

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)
        self.publish(trainer)
        self.record_log_position(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        staged, self._staged = self._staged, []
        self._superseded = []  # their replacements are discarded: they stay
        for tmp, _ in staged if trainer.is_global_zero else ():
            remove_path(tmp)


def checkpoint_callbacks(cfg: Any, ckpt_dir: Path) -> list[ModelCheckpoint]:
    """``[best (if cfg.monitor), periodic + last]`` for a ``CheckpointConfig``."""
    check_checkpoint_config(cfg)
    steps = cfg.every_n_steps
    periodic = StepCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step:08d}",
        auto_insert_metric_name=False,
        monitor="step",  # "keep the newest k" expressed as top-k by step
        mode="max",
        save_top_k=cfg.keep,
        save_last=True,
        every_n_train_steps=steps,
        every_n_epochs=None if steps else 1,
    )
    callbacks: list[ModelCheckpoint] = []
    if cfg.monitor:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="best-step{step:08d}",
                auto_insert_metric_name=False,
                monitor=cfg.monitor,
                mode=cfg.mode,
                save_top_k=1,
                save_last=False,
            )
        )
    return callbacks + [periodic]
