"""``ResidualDiagnostics``: a Lightning callback that probes every residual sub-layer of a model while it trains.

Works with any ``LightningModule`` whose modules include resblocks ``Residual`` sub-layers (a
``resblocks.build_model`` network, resblocks blocks in your own network): it finds them itself. Every
``every_n_steps`` optimiser steps (step 0 included) it attaches a
:class:`~resblocks.diagnostics.ResidualProbe` for one training step (at ``on_train_batch_start``), collects
it after the backward pass (``on_before_optimizer_step``, before the gradients are zeroed) and detaches it,
so the other steps run without a hook. The per-depth numbers are

* logged to every configured logger (W&B, TensorBoard, CSV, ...) at that step, named
  ``residual/<quantity>/<sub-layer>`` (:func:`~resblocks.diagnostics.to_scalars`), e.g.
  ``residual/grad_rms/07``, ``residual/update_ratio/07``, ``residual/shortcut.alpha/07``;
* kept in memory (at most ``max_history`` probed steps: when full, every other one is dropped) and in the
  checkpoint (the callback's state), so a resumed run draws the whole run;
* drawn at the end of fit into ``dirpath`` (default ``<trainer.log_dir or default_root_dir>/diagnostics``):
  ``grad_rms.png``, ``update_ratio.png`` (depth x step heatmaps), ``shortcut_state.png`` (each rule's weights
  against step, per depth), ``profile.png`` (the last probed step per depth) and ``history.json`` (the
  numbers); also logged as W&B images when a logger is W&B.

Cost: nothing on the steps in between (a modulo per batch); a probed step pays the hooks' reductions and
one host sync (``benchmarks/diagnostics.py`` measures it); ``effective_rank=True`` adds one SVD per
sub-layer on at most ``rank_rows`` rows.

``torch.compile``: hooks added after compilation are not run inside a compiled graph, so a probed step runs
the modules compiled with ``nn.Module.compile()`` (what the recipes use) eagerly; a ``torch.compile(module)``
wrapper cannot be bypassed and the callback says once that its numbers are missing.

DDP: every rank probes its own batch; with ``reduce`` (default under DDP) each number is averaged over
the ranks (one all-reduce per probed step, every rank takes part); only rank 0 logs and writes pictures.
FSDP: parameter-gradient norms are those of each rank's shard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from resblocks.diagnostics import ResidualProbe, SubLayerStats, to_scalars
from resblocks.errors import ConfigError

Snapshot = tuple[int, list[SubLayerStats]]


def records_from_dicts(rows: list[dict[str, Any]]) -> list[SubLayerStats]:
    return [SubLayerStats(**{**row, "state": dict(row.get("state") or {})}) for row in rows]


class ResidualDiagnostics(Callback):
    """Per-depth residual diagnostics while training (see the module docs).

    >>> trainer = L.Trainer(callbacks=[ResidualDiagnostics(every_n_steps=250)], logger=CSVLogger("logs"))

    Args:
        every_n_steps: probe one training step every this many optimiser steps (step 0 included); 0: off.
        effective_rank: also record each sub-layer's effective rank (Roy & Vetterli 2007) on ``rank_rows`` rows.
        rank_rows: the bound on the rows of that sample (tokens, or positions x samples).
        dirpath: folder for the pictures (default ``<trainer.log_dir or default_root_dir>/diagnostics``).
        prefix: first part of the logged names.
        pictures: draw the pictures at the end of fit (rank 0).
        max_history: probed steps kept for the pictures; when full, every other one is dropped.
        reduce: average over data-parallel ranks; ``None``: when the trainer runs on more than one process.
    """

    def __init__(
        self,
        every_n_steps: int = 250,
        *,
        effective_rank: bool = False,
        rank_rows: int = 1024,
        dirpath: str | Path | None = None,
        prefix: str = "residual",
        pictures: bool = True,
        max_history: int = 256,
        reduce: bool | None = None,
    ) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 0:
            raise ConfigError(f"diagnostics.every_n_steps: {every_n_steps!r}; valid: an integer >= 0 (0: off)")
        if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 2:
            raise ConfigError(f"diagnostics.max_history: {max_history!r}; valid: an integer >= 2")
        self.every_n_steps, self.effective_rank, self.rank_rows = every_n_steps, bool(effective_rank), rank_rows
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.prefix, self.pictures, self.max_history, self.reduce = prefix, pictures, max_history, reduce
        self.history: list[Snapshot] = []
        self.written: dict[str, Path] = {}  # the pictures of the last fit, by name
        self._probe: ResidualProbe | None = None
        self._probing_step: int | None = None  # the global step the attached probe records
        self._last_step = -1  # the last step recorded (gradient accumulation: one probe per step)
        self._eager: list[tuple[Any, Any]] = []  # (module, its compiled call) switched off for a probed step
        self._warned_empty = False

    # -- state (the history travels in the checkpoint) ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [{"step": s, "records": [r.as_dict() for r in recs]} for s, recs in self.history],
            "last_step": self._last_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [(int(h["step"]), records_from_dicts(h["records"])) for h in state_dict.get("history", [])]
        self._last_step = int(state_dict.get("last_step", -1))

    # -- probing ------------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._probe = None
        if not self.every_n_steps:
            return
        reduce = trainer.world_size > 1 if self.reduce is None else self.reduce
        try:
            self._probe = ResidualProbe(
                pl_module, effective_rank=self.effective_rank, rank_rows=self.rank_rows, reduce=reduce
            )
        except ConfigError as e:  # a model without residual sub-layers (DenseNet): nothing to record
            rank_zero_info(f"diagnostics: off ({e})")
            return
        if any(type(m).__name__ == "OptimizedModule" for m in pl_module.modules()):
            rank_zero_warn(
                "diagnostics: the model holds a torch.compile(...) wrapper, whose graph does not run hooks added "
                "after compilation; compile with module.compile() instead (the probed step then runs eagerly)"
            )

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self._probe is None or self._probe.attached or step % self.every_n_steps or step <= self._last_step:
            return
        if trainer.sanity_checking:
            return
        compiled = [m for m in pl_module.modules() if getattr(m, "_compiled_call_impl", None) is not None]
        self._eager = [(m, m._compiled_call_impl) for m in compiled]
        for m, _ in self._eager:
            m._compiled_call_impl = None  # this step runs eagerly, hooks included
        self._probe.attach()
        self._probing_step = step

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        probe = self._probe
        if probe is None or not probe.attached or self._probing_step != trainer.global_step:
            return
        try:
            records = probe.collect()  # after backward, before the gradients are zeroed; every rank (reduce)
        finally:
            self._release()
        step = trainer.global_step
        self._last_step = step
        self._remember(step, records)
        if trainer.is_global_zero:
            scalars = to_scalars(records, self.prefix)
            if not scalars and not self._warned_empty:
                self._warned_empty = True
                rank_zero_warn(f"diagnostics: nothing was recorded at step {step} (see the torch.compile note)")
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=step)

    def _remember(self, step: int, records: list[SubLayerStats]) -> None:
        self.history.append((step, records))
        if len(self.history) > self.max_history:  # keep an even coverage of the whole run, and the newest
            last = self.history[-1]
            self.history = self.history[:-1:2] + [last]

    def _release(self) -> None:
        """Detach the probe (dropping an unfinished record) and give compiled modules their compiled call back."""
        if self._probe is not None and self._probe.attached:
            self._probe.detach()
        for m, compiled in self._eager:
            m._compiled_call_impl = compiled
        self._eager, self._probing_step = [], None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # An optimiser step that never came for the probed step (the optimizer hook was not called): give up on it.
        if self._probing_step is not None and trainer.global_step > self._probing_step:
            self._release()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._release()  # a probe still attached here saw no optimiser step: validation must not be recorded

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._release()

    # -- the end: pictures ---------------------------------------------------------------------------------

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._release()
        if not (self.pictures and self.history and trainer.is_global_zero) or trainer.fast_dev_run:
            return
        self.written = self.write(self.folder(trainer))
        for logger in filter(None, map(_wandb_of, trainer.loggers)):
            pngs = {name: path for name, path in self.written.items() if path.suffix == ".png"}
            try:
                for name, path in pngs.items():
                    logger.log_image(key=f"{self.prefix}/pictures/{name}", images=[str(path)], step=trainer.global_step)
            except Exception as e:  # noqa: BLE001  (a tracker failure never fails the run; the files are written)
                where = self.folder(trainer)
                rank_zero_warn(f"diagnostics: W&B did not take the pictures ({type(e).__name__}: {e}); see {where}")

    def folder(self, trainer: Any) -> Path:
        if self.dirpath is not None:
            return self.dirpath
        return Path(trainer.log_dir or trainer.default_root_dir) / "diagnostics"

    def write(self, folder: str | Path) -> dict[str, Path]:
        """The pictures of the history (and ``history.json``) in ``folder``; ``{name: path}``."""
        from .pictures import write_pictures

        folder = Path(folder)
        written = write_pictures(self.history, folder)
        path = folder / "history.json"
        rows = [{"step": s, "records": [_finite_or_none(r.as_dict()) for r in recs]} for s, recs in self.history]
        path.write_text(json.dumps(rows) + "\n")
        return {**written, "history": path}


def _finite_or_none(row: dict[str, Any]) -> dict[str, Any]:
    """NaN as null: JSON has no NaN."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(row)


def _wandb_of(logger: Any) -> Any:
    """The ``WandbLogger`` behind ``logger`` (also inside the recipes' ``FallbackLogger`` while W&B works), or None."""
    from lightning.pytorch.loggers import WandbLogger

    inner = getattr(logger, "active", logger)
    return inner if isinstance(inner, WandbLogger) else None


__all__ = ["ResidualDiagnostics", "records_from_dicts"]
