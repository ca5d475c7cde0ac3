"""Residual diagnostics for Lightning: the :class:`ResidualDiagnostics` callback (any LightningModule with
resblocks ``Residual`` sub-layers), its pictures (:mod:`.pictures`), and how the recipes switch it on
(``diagnostics.*``, :func:`recipe_callbacks`). ``python -m recipes.diagnose`` looks at a checkpoint.
See ``docs/diagnostics.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .callback import ResidualDiagnostics, records_from_dicts


def recipe_callbacks(cfg: Any, run_dir: str | Path) -> list[Any]:
    """The recipes' diagnostics callbacks: residual diagnostics from ``cfg.diagnostics`` (none when
    ``every_n_steps`` is 0, or for a config from before the key existed; pictures go to
    ``<run_dir>/diagnostics``), and the frozen-feature evaluation from ``cfg.frozen`` (off at 0 epochs)."""
    from omegaconf import OmegaConf

    out: list[Any] = []
    d = OmegaConf.select(cfg, "diagnostics", default=None)
    if d is not None and d.every_n_steps:
        out.append(ResidualDiagnostics(
            int(d.every_n_steps), effective_rank=bool(d.effective_rank), rank_rows=int(d.rank_rows),
            dirpath=Path(run_dir) / "diagnostics",
        ))  # fmt: skip
    f = OmegaConf.select(cfg, "frozen", default=None)
    if f is not None and f.every_n_epochs:
        from .frozen import FrozenFeatureEval

        out.append(FrozenFeatureEval(
            int(f.every_n_epochs), k=int(f.knn_k), temperature=float(f.knn_temperature),
            linear_probe=bool(f.linear_probe), max_memory=f.max_memory,
        ))  # fmt: skip
    return out


__all__ = ["ResidualDiagnostics", "recipe_callbacks", "records_from_dicts"]
