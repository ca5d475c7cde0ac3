"""Evaluate a checkpoint: ``python -m recipes.evaluate ckpt=PATH [eval=test,knn,linear_probe] [key=value ...]``.

``eval``: what to measure, comma-separated: ``test`` (default: the task's test metrics), ``knn`` and
``linear_probe`` (the frozen network's pooled features, any image model: the train split as memory, the test
split as queries; ``frozen.knn_k``, ``frozen.knn_temperature``, ``frozen.max_memory`` apply).

The network, data and task come from the resolved config stored in the checkpoint; ``key=value``
overrides change it (e.g. ``data.batch_size=512``, ``trainer.accelerator=cpu``, ``data.path=...``).
Prints the test metrics and writes them next to the checkpoint (``<ckpt>.test.json``).
Exit status: 0 done, 2 bad arguments, a file that is not a checkpoint of recipes.train, weights that do
not fit the network, or data not found (one line each, labelled with the key, ``ckpt:`` for the file),
1 failure (bad data: one line).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resblocks.errors import ConfigError

from .errors import CONFIG_EXIT, FAILURE_EXIT
from .runs.plan import META_KEY, WRITTEN_BY, is_bare_state_dict, mismatch_message, open_checkpoint, weights_mismatch
from .tracking.quiet import quiet_lightning

USAGE = (
    "usage: python -m recipes.evaluate ckpt=PATH [eval=test,knn,linear_probe] [key=value ...]  "
    "(keys as in the training config)"
)
EVALS = ("test", "knn", "linear_probe")


def parse_evals(value: str) -> list[str]:
    """``eval=`` as a list of :data:`EVALS` (one line naming the bad one otherwise)."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in EVALS]
    if bad or not names:
        raise ConfigError(f"eval: {bad[0] if bad else value!r}; valid: a comma-separated list of {', '.join(EVALS)}")
    return names


def open_for_evaluation(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(checkpoint, its stored config)``, or one ``ckpt:`` line saying why the file cannot be evaluated."""
    if not str(ckpt).strip():
        raise ConfigError(f"ckpt: empty; valid: ckpt=PATH of {WRITTEN_BY}")
    path = Path(ckpt)
    if not path.exists():
        raise ConfigError(f"ckpt: '{ckpt}' not found; valid: {WRITTEN_BY}")
    if path.is_dir():
        raise ConfigError(
            f"ckpt: '{ckpt}' is a folder (a sharded FSDP checkpoint, or not a checkpoint); valid: {WRITTEN_BY} "
            "(fsdp.state_dict_type=full writes one file)"
        )
    state = open_checkpoint(path, "ckpt")
    if is_bare_state_dict(state):
        raise ConfigError(
            f"ckpt: '{ckpt}' is a bare state_dict ({len(state)} tensors, e.g. '{next(iter(state))}'), without the "
            f"config that builds its network and data; valid: {WRITTEN_BY}, or load these weights yourself: "
            f"resblocks.build_model(NAME, ...).load_state_dict(torch.load('{ckpt}', weights_only=True))"
        )
    stored = (state.get(META_KEY) or {}).get("config")
    if not stored or "state_dict" not in state:
        what = "no weights (state_dict)" if "state_dict" not in state else "no resblocks config"
        raise ConfigError(f"ckpt: '{ckpt}' has {what}: not written by recipes.train; valid: {WRITTEN_BY}")
    return state, stored


def evaluate(ckpt: str | Path, overrides: Sequence[str] = (), evals: Sequence[str] = ("test",)) -> dict[str, float]:
    """Metrics of the checkpoint ``ckpt`` (built from its stored config plus ``overrides``): the test split's
    (``"test"`` in ``evals``) and the frozen features' kNN / linear-probe accuracy (``"knn"``, ``"linear_probe"``)."""
    from omegaconf.errors import OmegaConfBaseException

    from .build import (
        build_data,
        build_module,
        check_network,
        check_task,
        check_values,
        fast_path_for,
        meta_net,
        plain,
        typed,
    )
    from .engine.precision import trainer_precision
    from .tracking.summary import collect_metrics

    state, stored = open_for_evaluation(ckpt)
    try:
        cfg = typed(stored, list(overrides))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', None) or 'override'}: {str(e).splitlines()[0]}") from e
    check_task(cfg)
    check_values(cfg)  # the overrides: ranges, NaN/inf, types
    check_network(cfg)

    import lightning.pytorch as pl

    dm = build_data(cfg)
    decision = fast_path_for(cfg, dm, meta_net(cfg, dm))  # "auto" decides for this machine, not the one that trained
    module = build_module(cfg, dm, decision)
    # Weights only (not Trainer(ckpt_path=...), which would also want the training callbacks back).
    frozen = [e for e in evals if e != "test"]
    if frozen and not hasattr(dm, "train_set"):
        raise ConfigError(f"eval: {frozen[0]} needs image data; data {cfg.data.name!r} is not; valid: eval=test")
    dm.prepare_data()
    dm.setup("fit" if frozen else "test")
    module.configure_model()
    mismatch = weights_mismatch(state["state_dict"], module.state_dict())
    if mismatch:
        raise ConfigError(mismatch_message("ckpt", ckpt, mismatch, stored, plain(cfg)))
    module.load_state_dict(state["state_dict"])
    t = cfg.trainer
    quiet_lightning()
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=1, **trainer_precision(decision.precision, decision.device), logger=False,
        limit_test_batches=t.limit_test_batches, enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False, default_root_dir=str(Path(ckpt).parent),
    )  # fmt: skip
    metrics: dict[str, float] = {}
    if "test" in evals:
        for result in trainer.test(module, datamodule=dm, verbose=False):
            metrics.update(collect_metrics(result))
    if frozen:
        from .diagnostics.frozen import frozen_metrics

        f = cfg.frozen
        found = frozen_metrics(
            module.net, dm, k=f.knn_k, temperature=f.knn_temperature, knn="knn" in frozen,
            linear_probe="linear_probe" in frozen, max_memory=f.max_memory,
            autocast=trainer.precision_plugin.forward_context,
        )  # fmt: skip
        metrics.update(found)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    from recipes.data import DataError, DataNotFoundError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + USAGE)
        sys.exit(0 if args else CONFIG_EXIT)
    ckpts = [a.split("=", 1)[1] for a in args if a.startswith("ckpt=")]
    evals = [a.split("=", 1)[1] for a in args if a.startswith("eval=")]
    overrides = [a for a in args if not a.startswith(("ckpt=", "eval="))]
    bad = [a for a in overrides if "=" not in a]
    try:
        if len(ckpts) != 1 or bad or len(evals) > 1:
            what = " ".join(bad) or ("eval= given twice" if len(evals) > 1 else "ckpt=PATH missing")
            raise ConfigError(f"arguments: {what}; valid: ckpt=PATH [eval=...] key=value ...")
        metrics = evaluate(ckpts[0], overrides, parse_evals(evals[0]) if evals else ["test"])
    except (ConfigError, DataNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(FAILURE_EXIT if isinstance(e, DataError) and not isinstance(e, DataNotFoundError) else CONFIG_EXIT)
    out: dict[str, Any] = {"checkpoint": ckpts[0], "overrides": overrides, "metrics": metrics}
    Path(ckpts[0] + ".test.json").write_text(json.dumps(out, indent=2) + "\n")
    print("  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
    main()
