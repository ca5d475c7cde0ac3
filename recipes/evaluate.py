"""Evaluate a checkpoint on the test split: ``python -m recipes.evaluate ckpt=PATH [key=value ...]``.

The network, data and task come from the resolved config stored in the checkpoint; ``key=value``
overrides change it (e.g. ``data.batch_size=512``, ``trainer.accelerator=cpu``, ``data.path=...``).
Prints the test metrics and writes them next to the checkpoint (``<ckpt>.test.json``).
Exit status: 0 done, 2 bad arguments or unreadable checkpoint, 1 failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resblocks.errors import ConfigError

from .runs import read_meta

USAGE = "usage: python -m recipes.evaluate ckpt=PATH [key=value ...]  (keys as in the training config)"


def evaluate(ckpt: str | Path, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Test metrics of the checkpoint ``ckpt`` (built from its stored config plus ``overrides``)."""
    from omegaconf.errors import OmegaConfBaseException

    from .build import build_data, build_module, fast_path_for, typed
    from .precision import trainer_precision
    from .summary import collect_metrics

    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise ConfigError(f"ckpt: '{ckpt}' not found; valid: a .ckpt file written by recipes.train")
    stored = read_meta(ckpt).get("config")
    if not stored:
        raise ConfigError(f"ckpt: '{ckpt}' has no resblocks config (not written by recipes.train)")
    try:
        cfg = typed(stored, list(overrides))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', None) or 'override'}: {str(e).splitlines()[0]}") from e

    import lightning.pytorch as pl
    import torch

    dm = build_data(cfg)
    decision = fast_path_for(cfg, dm)  # "auto" decides for this machine, not the one that trained
    module = build_module(cfg, dm, decision)
    # Weights only (not Trainer(ckpt_path=...), which would also want the training callbacks back).
    dm.prepare_data()
    dm.setup("test")
    module.configure_model()
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    t = cfg.trainer
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=1, **trainer_precision(decision.precision, decision.device), logger=False,
        limit_test_batches=t.limit_test_batches, enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False, default_root_dir=str(ckpt.parent),
    )  # fmt: skip
    metrics: dict[str, float] = {}
    for result in trainer.test(module, datamodule=dm, verbose=False):
        metrics.update(collect_metrics(result))
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + USAGE)
        sys.exit(0 if args else 2)
    ckpts = [a.split("=", 1)[1] for a in args if a.startswith("ckpt=")]
    overrides = [a for a in args if not a.startswith("ckpt=")]
    bad = [a for a in overrides if "=" not in a]
    try:
        if len(ckpts) != 1 or bad:
            raise ConfigError(f"arguments: {' '.join(bad) or 'ckpt=PATH missing'}; valid: ckpt=PATH key=value ...")
        metrics = evaluate(ckpts[0], overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    out: dict[str, Any] = {"checkpoint": ckpts[0], "overrides": overrides, "metrics": metrics}
    Path(ckpts[0] + ".test.json").write_text(json.dumps(out, indent=2) + "\n")
    print("  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
    main()
