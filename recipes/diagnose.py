"""Per-depth residual diagnostics of a checkpoint or of a recipe's model at initialisation, and a lesion study.

    python -m recipes.diagnose ckpt=PATH [batches=N] [lesion=true] [out=DIR] [key=value ...]
    python -m recipes.diagnose recipe=NAME [group=option ...] [batches=N] [lesion=true] [key=value ...]

The network, data and task come from the checkpoint's stored config (as ``recipes.evaluate``) or from the
recipe (composed as ``recipes.train`` would, nothing trained); ``key=value`` overrides change them. On
``batches`` training batches of the recipe's data it runs the forward and backward pass with a
:class:`~resblocks.diagnostics.ResidualProbe` (train mode as training runs it, BatchNorm statistics put back
afterwards; ``mode=eval`` for eval mode; no optimiser step), prints the per-depth table (mean over the
batches) and writes ``profile.png`` and ``shortcut_state.png``; a checkpoint written with diagnostics on also
carries its training history, drawn into ``training/`` (heatmaps over steps). ``lesion=true`` then deletes
each residual block in turn (branch removed, shortcut kept; ``shortcut=none``: the block's output becomes its
input; :mod:`resblocks.diagnostics.lesion`) and reports the validation loss and accuracy on the first
``lesion_batches`` validation batches after each deletion (Veit et al. 2016, arXiv 1605.06431), with
``lesion.png``. Everything is also in ``diagnose.json``.

Options: ``batches`` (1), ``lesion`` (false), ``lesion_batches`` (10), ``lesion_by`` (block | sublayer),
``effective_rank`` (true), ``rank_rows`` (1024), ``mode`` (train | eval), ``out`` (default ``<ckpt>.diagnose/``,
or ``<run_dir>/diagnose-init/`` for a recipe). Several ``ckpt=`` (e.g. a ResNet and its plain twin): each is
diagnosed into ``out/<its run name>/`` and ``out/profile.png``, ``out/lesion.png`` overlay them all.
``torch.compile`` is off here (hooks), the rest of the fast path as the config says (bf16 autocast on CPUs
that run it fast; ``trainer.precision=32-true`` for fp32).
Exit status: 0 done, 2 bad arguments, a file that is not a checkpoint of recipes.train, a model without
resblocks residual sub-layers, data not found (one line each), 1 failure (bad data: one line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from resblocks.errors import ConfigError

from .errors import CONFIG_EXIT, FAILURE_EXIT, config_error_line

USAGE = (
    "usage: python -m recipes.diagnose ckpt=PATH | recipe=NAME [batches=N] [lesion=true] [lesion_batches=M] "
    "[lesion_by=block|sublayer] [effective_rank=true|false] [rank_rows=R] [mode=train|eval] [out=DIR] [key=value ...]"
)
BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclasses.dataclass
class Options:
    """The command's own options (everything else on the command line is a config override)."""

    ckpt: list[str] = dataclasses.field(default_factory=list)  # several: each diagnosed, then compared
    recipe: str | None = None
    batches: int = 1
    lesion: bool = False
    lesion_batches: int = 10
    lesion_by: str = "block"
    effective_rank: bool = True
    rank_rows: int = 1024
    mode: str = "train"
    out: str | None = None


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Options))


def _int(key: str, value: str, low: int = 1) -> int:
    try:
        n = int(value)
    except ValueError:
        n = low - 1
    if n < low:
        raise ConfigError(f"{key}: {value!r}; valid: an integer >= {low}")
    return n


def parse(argv: Sequence[str]) -> tuple[Options, list[str]]:
    """``(options, config overrides)``; one-line ``ConfigError`` for a malformed or unknown argument."""
    from .config import CONF_DIR, TrainConfig

    opts, overrides = Options(), []
    config_keys = {f.name for f in dataclasses.fields(TrainConfig)} | {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            raise ConfigError(f"arguments: {arg!r} is not key=value; valid: {USAGE.removeprefix('usage: ')}")
        if key not in OPTION_NAMES:
            bare = key.lstrip("+~")
            if "." not in bare and bare not in config_keys and bare != "hydra":
                raise ConfigError(
                    f"arguments: unknown option {key!r}; valid: {', '.join(OPTION_NAMES)}, or a config key=value "
                    "(as for recipes.train)"
                )
            overrides.append(arg)
            continue
        if key in ("batches", "lesion_batches", "rank_rows"):
            setattr(opts, key, _int(key, value))
        elif key in ("lesion", "effective_rank"):
            if value.lower() not in BOOLS:
                raise ConfigError(f"{key}: {value!r}; valid: true, false")
            setattr(opts, key, BOOLS[value.lower()])
        elif key == "mode" and value not in ("train", "eval"):
            raise ConfigError(f"mode: {value!r}; valid: train, eval")
        elif key == "lesion_by" and value not in ("block", "sublayer"):
            raise ConfigError(f"lesion_by: {value!r}; valid: block, sublayer")
        elif key in ("ckpt", "recipe", "out") and not value.strip():
            raise ConfigError(f"{key}: empty; valid: {'ckpt=PATH' if key == 'ckpt' else key + '=...'}")
        elif key == "ckpt":
            opts.ckpt.append(value)
        else:
            setattr(opts, key, value)
    if bool(opts.ckpt) == (opts.recipe is not None):
        raise ConfigError(
            "arguments: " + ("both ckpt= and recipe=" if opts.ckpt else "ckpt=PATH or recipe=NAME missing")
            + "; valid: one of ckpt=PATH (a checkpoint of recipes.train) or recipe=NAME (its model at initialisation)"
        )  # fmt: skip
    return opts, overrides


# ----------------------------------------------------------------------------- building


def _compose(recipe: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    from .config import CONF_DIR

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=[f"recipe={recipe}", *overrides])
    except Exception as e:  # Hydra's errors (unknown recipe or option, a key not in the schema): one line
        raise ConfigError(config_error_line(e)) from e


@dataclasses.dataclass
class Target:
    """What is diagnosed: the task module (network loaded), its DataModule, where it came from."""

    module: Any
    dm: Any
    cfg: Any
    decision: Any
    label: str
    out: Path
    history: list[tuple[int, list[Any]]]


def build(opts: Options, overrides: list[str], ckpt: str | None = None) -> Target:
    """The target of ``ckpt`` (one of ``opts.ckpt``) or, without it, of ``opts.recipe`` at initialisation."""
    from omegaconf.errors import OmegaConfBaseException

    from resblocks import Residual

    from .build import build_data, build_module, check_network, check_task, check_values, fast_path_for, meta_net, plain
    from .build import typed

    state: dict[str, Any] | None = None
    if ckpt is not None:
        from .evaluate import open_for_evaluation

        state, stored = open_for_evaluation(ckpt)
        try:
            cfg = typed(stored, overrides)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{getattr(e, 'full_key', None) or 'override'}: {str(e).splitlines()[0]}") from e
        label = str(cfg.name)
        out = Path(opts.out) if opts.out else Path(str(ckpt) + ".diagnose")
    else:
        cfg = _compose(str(opts.recipe), overrides)
        label = f"{cfg.name} (initialisation)"
        out = Path(opts.out) if opts.out else Path(cfg.run_dir) / "diagnose-init"
    check_task(cfg)
    check_values(cfg)
    check_network(cfg)
    cfg.compile = False  # hooks added to a compiled graph would not run; a few batches need no compiler
    dm = build_data(cfg)
    meta = meta_net(cfg, dm)
    if not any(isinstance(m, Residual) for m in meta.modules()):
        raise ConfigError(
            f"model: {cfg.model.name!r} has no resblocks Residual sub-layers to diagnose; valid: a model built from "
            "resblocks blocks (e.g. cifar_resnet*, resnet*, vit*, gpt*)"
        )
    decision = fast_path_for(cfg, dm, meta)
    module = build_module(cfg, dm, decision)
    dm.prepare_data()
    dm.setup("fit")
    module.configure_model()
    history: list[tuple[int, list[Any]]] = []
    if state is not None:
        from .runs.plan import mismatch_message, weights_mismatch

        mismatch = weights_mismatch(state["state_dict"], module.state_dict())
        if mismatch:
            raise ConfigError(mismatch_message("ckpt", ckpt, mismatch, stored, plain(cfg)))
        module.load_state_dict(state["state_dict"])
        history = training_history(state)
    return Target(module, dm, cfg, decision, label, out, history)


def training_history(state: dict[str, Any]) -> list[tuple[int, list[Any]]]:
    """The :class:`~recipes.diagnostics.ResidualDiagnostics` history stored in a checkpoint (empty if none)."""
    from .diagnostics import records_from_dicts

    for key, value in (state.get("callbacks") or {}).items():
        if str(key).startswith("ResidualDiagnostics") and isinstance(value, dict):
            return [(int(h["step"]), records_from_dicts(h["records"])) for h in value.get("history", [])]
    return []


def device_of(decision: Any) -> Any:
    import torch

    return torch.device({"gpu": "cuda"}.get(decision.device, decision.device))


@contextlib.contextmanager
def precision(decision: Any) -> Iterator[None]:
    """The run's autocast (bf16-mixed, 16-mixed); nothing for full precision."""
    import torch

    p = str(decision.precision)
    dtype = torch.bfloat16 if p.startswith("bf16") else torch.float16 if p.startswith("16") else None
    with torch.autocast(device_of(decision).type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        yield


def batches(target: Target, split: str, n: int) -> Iterator[Any]:
    """The first ``n`` batches of a split, on the device, through the DataModule's on-device transform."""
    import itertools

    dm, device = target.dm, device_of(target.decision)
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    for batch in itertools.islice(loader, n):
        batch = tuple(t.to(device) for t in batch)
        if hasattr(dm, "transform_batch"):
            batch = dm.transform_batch(batch, train=split == "train")
        yield batch


def loss_and_correct(module: Any, batch: Any) -> tuple[Any, Any, int]:
    """``(mean loss, correct predictions or None, count)`` of a batch, as the task module scores it."""
    if hasattr(module, "split_batch"):  # classifiers: the module's criterion (label smoothing included)
        inputs, labels = module.split_batch(batch)
        logits = module.net(*inputs)
        return module.criterion(logits.float(), labels), (logits.argmax(-1) == labels).sum(), int(labels.numel())
    return module.loss(batch), None, int(batch[1].numel())  # language models: nats per token


# ----------------------------------------------------------------------------- the diagnosis


def probe(target: Target, opts: Options) -> list[list[Any]]:
    """One record list per batch: forward + backward under the probe, no optimiser step; buffers restored."""
    import torch

    from resblocks.diagnostics import ResidualProbe

    module = target.module
    module.train(opts.mode == "train")
    net = module.net
    saved = {k: v.clone() for k, v in net.state_dict().items()}  # BatchNorm statistics move in train mode
    probe = ResidualProbe(net, effective_rank=opts.effective_rank, rank_rows=opts.rank_rows)
    out = []
    try:
        for batch in batches(target, "train", opts.batches):
            net.zero_grad(set_to_none=True)
            with probe:
                with precision(target.decision):
                    loss, _, _ = loss_and_correct(module, batch)
                loss.backward()
                out.append(probe.collect())
    finally:
        net.zero_grad(set_to_none=True)
        with torch.no_grad():
            net.load_state_dict(saved)
    if not out:
        raise ConfigError("batches: the training split gave no batch; valid: data with at least one full batch")
    return out


def mean_records(per_batch: list[list[Any]]) -> list[Any]:
    """Every number averaged over the batches (NaN where a batch did not record it)."""
    from resblocks.diagnostics import QUANTITIES

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else math.nan

    out = []
    for rows in zip(*per_batch):
        first = rows[0]
        numbers = {q: mean([getattr(r, q) for r in rows]) for q in QUANTITIES}
        state = {k: mean([r.state.get(k, math.nan) for r in rows]) for k in first.state}
        out.append(dataclasses.replace(first, **numbers, state=state))
    return out


def run_lesion(target: Target, opts: Options) -> tuple[dict[str, float], list[Any]]:
    """Validation loss (and accuracy) intact and with each unit deleted, on fixed validation batches."""
    import torch

    from resblocks.diagnostics import lesion_study

    module = target.module
    module.eval()
    fixed = list(batches(target, "val", opts.lesion_batches))
    if not fixed:
        raise ConfigError("lesion_batches: the validation split gave no batch; valid: data with a validation split")

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        total, correct, count = 0.0, 0, 0
        with precision(target.decision):
            for batch in fixed:
                loss, right, n = loss_and_correct(module, batch)
                total += float(loss) * n
                correct += int(right) if right is not None else 0
                count += n
        metrics = {"loss": total / count}
        if hasattr(module, "split_batch"):
            metrics["acc"] = correct / count
        return metrics

    return lesion_study(module.net, evaluate, by=opts.lesion_by)


def table(records: Sequence[Any]) -> str:
    """The per-depth table (one row per residual sub-layer)."""
    cols = [("x_rms", "x rms"), ("f_rms", "F rms"), ("out_rms", "out rms"), ("update_ratio", "update"),
            ("cos_f_x", "cos(F,s)"), ("grad_rms", "dL/dx rms"), ("branch_grad_norm", "|dL/dW|"),
            ("effective_rank", "eff.rank")]  # fmt: skip
    cols = [(q, h) for q, h in cols if any(not math.isnan(getattr(r, q)) for r in records)]
    head = f"{'idx':>4} {'blk':>4} {'sub-layer':<26}" + "".join(f" {h:>10}" for _, h in cols) + "  state"
    lines = [head, "-" * len(head)]
    for r in records:
        name = r.name if len(r.name) <= 26 else "…" + r.name[-25:]
        values = "".join(f" {_num(getattr(r, q)):>10}" for q, _ in cols)
        state = " ".join(f"{k.removeprefix('shortcut.')}={v:.4g}" for k, v in r.state.items())
        lines.append(f"{r.index:>4} {r.block:>4} {name:<26}{values}  {state}")
    return "\n".join(lines)


def _num(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.4g}"


def lesion_table(baseline: dict[str, float], results: Sequence[Any]) -> str:
    metrics = list(baseline)
    head = f"{'deleted':>8} {'sub-layers':<12}" + "".join(f" {m:>9} {'change':>8}" for m in metrics)
    lines = [head, "-" * len(head), f"{'none':>8} {'':<12}" + "".join(f" {baseline[m]:>9.4f} {'':>8}" for m in metrics)]
    for r in results:
        subs = ",".join(map(str, r.indices))
        if r.skipped:
            lines.append(f"{r.unit:>8} {subs:<12} not deletable: the plain sub-layer changes the shape")
            continue
        lines.append(
            f"{r.unit:>8} {subs:<12}" + "".join(f" {r.get(m):>9.4f} {r.get(m) - baseline[m]:>+8.4f}" for m in metrics)
        )
    return "\n".join(lines)


def _clean(tree: Any) -> Any:
    if isinstance(tree, float):
        return tree if math.isfinite(tree) else None
    if isinstance(tree, dict):
        return {k: _clean(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_clean(v) for v in tree]
    return tree


@dataclasses.dataclass
class Diagnosis:
    """One target's result: the per-depth records (mean over the batches) and, with ``lesion``, the study."""

    label: str
    records: list[Any]
    lesion: tuple[dict[str, float], list[Any]] | None
    report: dict[str, Any]


def diagnose_one(opts: Options, overrides: list[str], ckpt: str | None, parent: Path | None = None) -> Diagnosis:
    """Diagnose one target into its ``out`` (``parent/<its name>`` when comparing several)."""
    import torch

    from .diagnostics import pictures

    target = build(opts, overrides, ckpt)
    out = parent / target.label.replace("/", "_") if parent is not None else target.out
    if target.cfg.threads:
        torch.set_num_threads(int(target.cfg.threads))  # as recipes.train (studies: one thread per job)
    target.module.to(device_of(target.decision))
    torch.manual_seed(int(target.cfg.seed))  # dropout and augmentation of the probed batches: reproducible
    records = mean_records(probe(target, opts))
    print(f"{target.label}: {len(records)} residual sub-layers, {opts.batches} batch(es), {opts.mode} mode, "
          f"{target.decision.precision}")  # fmt: skip
    print(table(records))
    out.mkdir(parents=True, exist_ok=True)
    name = target.label
    written = {
        "profile": pictures.profile({name: records}, out / "profile.png", f"{name}: per-depth profile"),
        "shortcut_state": pictures.shortcut_state([(0, records)], out / "shortcut_state.png", f"{name}: rule weights"),
    }
    if target.history:
        for key, path in pictures.write_pictures(target.history, out / "training", name).items():
            written[f"training/{key}"] = path
    report: dict[str, Any] = {
        "label": target.label, "source": ckpt or f"recipe={opts.recipe}", "overrides": overrides,
        "options": dataclasses.asdict(opts), "precision": str(target.decision.precision),
        "records": [r.as_dict() for r in records],
    }  # fmt: skip
    study = None
    if opts.lesion:
        study = run_lesion(target, opts)
        baseline, results = study
        print(f"\nlesion study (Veit et al. 2016): validation metrics on {opts.lesion_batches} fixed batch(es), "
              f"one {opts.lesion_by} deleted at a time")  # fmt: skip
        print(lesion_table(baseline, results))
        written["lesion"] = pictures.lesion({target.label: study}, out / "lesion.png")
        report["lesion"] = {
            "baseline": baseline,
            "results": [dataclasses.asdict(r) | {"metrics": dict(r.metrics)} for r in results],
        }
    report["pictures"] = {k: str(v) for k, v in written.items() if v is not None}
    (out / "diagnose.json").write_text(json.dumps(_clean(report), indent=1) + "\n")
    print(f"pictures and diagnose.json: {out}\n")
    return Diagnosis(target.label, records, study, report)


def diagnose(argv: Sequence[str]) -> list[Diagnosis]:
    """The whole command without the exit. Several ``ckpt=``: each into ``out/<its name>/``, then ``profile.png``
    (and ``lesion.png``) of all of them in ``out`` (default ``runs/diagnose/<name>-vs-<name>...``)."""
    from .diagnostics import pictures

    opts, overrides = parse(argv)
    if len(opts.ckpt) <= 1:
        return [diagnose_one(opts, overrides, opts.ckpt[0] if opts.ckpt else None)]
    out = Path(opts.out) if opts.out else None
    done = [diagnose_one(opts, overrides, ckpt, out) for ckpt in opts.ckpt]  # without out=: next to each checkpoint
    out = out or Path("runs") / "diagnose" / "-vs-".join(d.label.replace("/", "_") for d in done)
    out.mkdir(parents=True, exist_ok=True)
    pictures.profile({d.label: d.records for d in done}, out / "profile.png", "per-depth profile")
    if opts.lesion:
        pictures.lesion({d.label: d.lesion for d in done if d.lesion}, out / "lesion.png")
    print(f"comparison pictures: {out}")
    return done


def main(argv: Sequence[str] | None = None) -> None:
    from recipes.data import DataError, DataNotFoundError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip() + "\n\n" + USAGE)
        sys.exit(0 if args else CONFIG_EXIT)
    try:
        diagnose(args)
    except (ConfigError, DataNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(FAILURE_EXIT if isinstance(e, DataError) and not isinstance(e, DataNotFoundError) else CONFIG_EXIT)


if __name__ == "__main__":
    main()
