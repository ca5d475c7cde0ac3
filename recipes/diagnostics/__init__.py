"""Residual diagnostics for Lightning: the :class:`ResidualDiagnostics` callback (any LightningModule with
resblocks ``Residual`` sub-layers), its pictures (:mod:`.pictures`), and how the recipes switch it on
(``diagnostics.*``, :func:`recipe_callbacks`). ``python -m recipes.diagnose`` looks at a checkpoint.
See ``docs/diagnostics.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .callback import ResidualDiagnostics, records_from_dicts


def recipe_callbacks(cfg: Any, run_dir: str | Path) -> list[ResidualDiagnostics]:
    """The recipes' diagnostics callback from ``cfg.diagnostics`` (none when ``every_n_steps`` is 0, or for a
    config from before the key existed); pictures go to ``<run_dir>/diagnostics``."""
    from omegaconf import OmegaConf

    d = OmegaConf.select(cfg, "diagnostics", default=None)
    if d is None or not d.every_n_steps:
        return []
    return [
        ResidualDiagnostics(
            int(d.every_n_steps), effective_rank=bool(d.effective_rank), rank_rows=int(d.rank_rows),
            dirpath=Path(run_dir) / "diagnostics",
        )
    ]  # fmt: skip


__all__ = ["ResidualDiagnostics", "recipe_callbacks", "records_from_dicts"]
