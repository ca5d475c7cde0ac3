"""The run directory: where a run's checkpoints, logs and id live, and what ``resume=`` means.

``runs/<name>/`` holds ``checkpoints/`` (``last.ckpt``, ``stepNNNNNNNN.ckpt``, ``best-stepNNNNNNNN.ckpt``),
``run_id`` (the W&B / TensorBoard run id, reused on resume), the loggers' folders and Hydra's
``.hydra/`` config. Nothing here imports Lightning: bad ``resume=`` values fail in a second.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resblocks.errors import ConfigError

from .atomic import remove_stale_temps
from ..errors import describe

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
RUN_ID_FILE = "run_id"
META_KEY = "resblocks"  # checkpoint["resblocks"] = {"config": ..., "run_id": ..., "run_dir": ...}


@dataclass(frozen=True)
class RunPlan:
    """What this invocation does: a fresh run, or a resume from ``ckpt_path`` keeping ``run_id``."""

    run_dir: Path
    run_id: str
    ckpt_path: Path | None = None
    stored_config: dict[str, Any] | None = None  # the resolved config saved in ckpt_path
    start_step: int = 0  # the global step training continues from (logs past it belong to a lost attempt)

    @property
    def resuming(self) -> bool:
        return self.ckpt_path is not None

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / CKPT_DIR


def launch_rank() -> int:
    """Global rank from the launcher's environment (torchrun, SLURM, Lightning's DDP relaunch), before any process group exists."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(var)
        if value not in (None, "", "0"):
            return int(value)
    return 0


def checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / CKPT_DIR
    return sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []


def find_latest(run_dir: Path) -> Path | None:
    """The checkpoint ``resume=auto`` continues from: the newest of ``last.ckpt``, its versions
    ``last-v<N>.ckpt`` (Lightning writes one when a ``last.ckpt`` it did not write is there, e.g. in a run
    folder that was moved or copied, as studies continued across sessions are) and the ``hpc_ckpt_*.ckpt``
    Lightning writes on a SLURM pre-emption signal; else the newest ``.ckpt``."""
    run_dir = Path(run_dir)
    versions = (run_dir / CKPT_DIR).glob(f"{Path(LAST).stem}-v*.ckpt")
    last = [p for p in [run_dir / CKPT_DIR / LAST, *versions, *run_dir.glob("hpc_ckpt_*.ckpt")] if p.exists()]
    if last:
        return max(last, key=lambda p: p.stat().st_mtime)
    found = checkpoints(run_dir)
    return found[-1] if found else None


class UnsafeCheckpointError(ConfigError):
    """A checkpoint whose unpickling needs more than tensors and plain containers (so could run code)."""


def safe_load(path: str | os.PathLike[str], map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, so loading runs no code.

    A file that needs anything else (a crafted pickle, a foreign checkpoint holding objects) raises a
    one-line :class:`UnsafeCheckpointError`; other errors (truncated, not a checkpoint) pass through.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(e))
        if unsafe is None:
            raise
        raise UnsafeCheckpointError(
            f"checkpoint: '{path}' refused: unpickling it needs the Python global '{unsafe.group(1)}', beyond "
            "tensors and plain containers, so loading it could run code; valid: checkpoints written by recipes.train"
        ) from e


# What Lightning needs to resume training from a checkpoint (beyond the weights), and what each holds.
RESUMABLE = {
    "state_dict": "the weights",
    "optimizer_states": "the optimiser state",
    "lr_schedulers": "the LR schedule",
    "loops": "the loop counters (step, epoch, batch)",
    "pytorch-lightning_version": "Lightning's version",
}
RESUMABLE_HOLDS = (
    "a resumable checkpoint holds the weights, the optimiser and LR-schedule states, the loop counters and the "
    "run's config (recipes.train writes one to runs/<name>/checkpoints/)"
)
WRITTEN_BY = "a .ckpt written by recipes.train (runs/<name>/checkpoints/)"


def is_bare_state_dict(state: Any) -> bool:
    """A plain ``{name: tensor}`` mapping (``torch.save(model.state_dict())``), not a training checkpoint."""
    import torch

    return isinstance(state, dict) and bool(state) and all(torch.is_tensor(v) for v in state.values())


def open_checkpoint(ckpt: str | os.PathLike[str], key: str = "resume") -> dict[str, Any]:
    """Open a checkpoint (memory-mapped, :func:`safe_load`) or raise one ``ConfigError`` line labelled ``key``
    (the entry point's own option: ``resume`` for training, ``ckpt`` for evaluation) saying why it is not one.

    A folder is a sharded (FSDP) checkpoint, whose non-tensor state is ``meta.pt``. Not a checkpoint: a
    missing ``meta.pt``, an empty file, a file that is not the zip archive ``torch.save`` writes (random bytes,
    torch's legacy format), or one whose content cannot be read; torch's own messages about those (``mmap can
    only be used with files saved with ...``) do not say what is wrong.
    """
    import zipfile

    path = Path(ckpt)
    if path.is_dir():
        path = path / "meta.pt"
        if not path.is_file():
            raise ConfigError(f"{key}: '{ckpt}' is a folder without meta.pt: not a checkpoint; valid: {WRITTEN_BY}")
    not_one = f"{key}: '{ckpt}' is not a checkpoint"
    try:
        size = path.stat().st_size
        is_zip = zipfile.is_zipfile(path)
    except OSError as e:
        raise ConfigError(f"{not_one} that can be read ({describe(e)}); valid: {WRITTEN_BY}") from e
    if size == 0:
        raise ConfigError(f"{not_one} (an empty file); valid: {WRITTEN_BY}")
    if not is_zip:
        raise ConfigError(
            f"{not_one} (not the zip archive torch.save writes: random bytes, a truncated file or torch's legacy "
            f"format); valid: {WRITTEN_BY}"
        )
    try:
        state = safe_load(path, mmap=True)
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # a corrupt or truncated archive
        raise ConfigError(f"{not_one} that can be read ({describe(e)}); valid: {WRITTEN_BY}") from e
    if not isinstance(state, dict):
        raise ConfigError(f"{not_one} (it holds a {type(state).__name__}, not a dict); valid: {WRITTEN_BY}")
    return state


def check_training_state(state: dict[str, Any], ckpt: str | os.PathLike[str], folder: bool = False) -> None:
    """One ``resume:`` line unless ``state`` holds what Lightning needs to continue training (a sharded
    ``folder``'s ``meta.pt`` holds everything but the weights and optimiser state)."""
    how = (
        f"valid: {WRITTEN_BY}, or use these weights alone: net.load_state_dict(torch.load('{ckpt}', "
        "weights_only=True)) in Python, or python -m recipes.evaluate for a checkpoint written by recipes.train"
    )
    if is_bare_state_dict(state):
        first = next(iter(state))
        raise ConfigError(
            f"resume: '{ckpt}' is a bare state_dict ({len(state)} tensors, e.g. '{first}'), not a resumable "
            f"checkpoint; {RESUMABLE_HOLDS}; {how}"
        )
    needed = [k for k in RESUMABLE if not (folder and k in ("state_dict", "optimizer_states"))]
    missing = [k for k in needed if k not in state]
    if missing:
        lacks = ", ".join(RESUMABLE[k] for k in missing)
        raise ConfigError(f"resume: '{ckpt}' lacks {lacks}: not a resumable checkpoint; {RESUMABLE_HOLDS}; {how}")


def read_meta(ckpt: Path, key: str = "resume") -> dict[str, Any]:
    """``checkpoint["resblocks"]`` (config, run id) plus ``global_step``, without loading the tensors into memory;
    for ``key="resume"`` the checkpoint must also be resumable (:func:`check_training_state`)."""
    state = open_checkpoint(ckpt, key)
    if key == "resume":
        check_training_state(state, ckpt, folder=Path(ckpt).is_dir())
    return {**(state.get(META_KEY) or {}), "global_step": state.get("global_step")}


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def plan_run(
    run_dir: str | os.PathLike[str], resume: str | None, overwrite: bool = False, rank: int | None = None
) -> RunPlan:
    """Resolve ``resume`` (``None`` | ``"auto"`` | a checkpoint path) against ``run_dir``.

    * ``None``: a new run; refused if ``run_dir`` already has checkpoints unless ``overwrite``
      (which deletes them), so a finished run is never clobbered by re-running its command.
    * ``"auto"``: continue from :func:`find_latest` if there is one, else start a new run.
    * a path: continue from that checkpoint (its run id comes with it).

    Only rank 0 touches the filesystem (``rank`` defaults to :func:`launch_rank`).
    """
    run_dir = Path(run_dir)
    rank = launch_rank() if rank is None else rank
    ckpt: Path | None = None
    if resume in (None, "", "null", "none"):
        existing = checkpoints(run_dir)
        if existing and not overwrite:
            raise ConfigError(
                f"resume: run_dir '{run_dir}' already holds {len(existing)} checkpoint(s); valid: resume=auto to "
                "continue that run, overwrite=true to start over (deletes them), or name=NEW for another run"
            )
        if existing and rank == 0:
            shutil.rmtree(run_dir / CKPT_DIR)
            (run_dir / RUN_ID_FILE).unlink(missing_ok=True)
    elif resume == "auto":
        ckpt = find_latest(run_dir)
        if ckpt is None and rank == 0:
            print(f"resume=auto: no checkpoint in {run_dir / CKPT_DIR}; starting a new run", flush=True)
    else:
        ckpt = Path(resume).expanduser()
        if not ckpt.exists():
            found = find_latest(run_dir)
            hint = f" (newest here: {found})" if found else ""
            raise ConfigError(f"resume: checkpoint '{resume}' not found{hint}; valid: auto, null or a .ckpt path")
    run_id, stored, start_step = None, None, 0
    if ckpt is not None:
        meta = read_meta(ckpt, "resume")
        run_id, stored, start_step = meta.get("run_id"), meta.get("config"), int(meta.get("global_step") or 0)
        id_file = run_dir / RUN_ID_FILE
        if run_id is None and id_file.exists():
            run_id = id_file.read_text().strip() or None
    run_id = run_id or new_run_id()
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_ID_FILE).write_text(run_id + "\n")
        remove_stale_temps(run_dir / CKPT_DIR)  # left by a process killed while writing a checkpoint
    return RunPlan(run_dir=run_dir, run_id=run_id, ckpt_path=ckpt, stored_config=stored, start_step=start_step)


ARCHITECTURE = ("model", "shortcut", "norm")  # must match to resume; the rest (steps, lr, data path...) may change


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def network_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key=before->after`` for every network setting (model, shortcut, norm) that differs."""
    before = _flat({k: stored.get(k) for k in ARCHITECTURE})
    after = _flat({k: current.get(k) for k in ARCHITECTURE})
    return [
        f"{k}={before.get(k)!r}->{after.get(k)!r}"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]


def network_of(config: dict[str, Any]) -> str:
    """The network settings of a config on one line: ``model.name=gpt_nano, model.dim=32, ..., norm.placement=...``."""
    flat = _flat({k: config.get(k) for k in ARCHITECTURE})
    return ", ".join(f"{k}={v}" for k, v in flat.items() if v is not None)


def check_resumable(stored: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint into a different network (the weights would not fit, or worse, would)."""
    if not stored:
        return
    changed = network_changes(stored, current)
    if changed:
        raise ConfigError(
            f"resume: the checkpoint's network differs ({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}); "
            "valid: the checkpoint's model/shortcut/norm settings, or a new run (name=... or overwrite=true)"
        )


class WeightsMismatch(ConfigError):
    """A checkpoint's weights do not fit the network (names or shapes); the entry point adds its key and the configs."""


def weights_mismatch(found: Any, expected: Any) -> str | None:
    """The first difference between a checkpoint's ``state_dict`` and the network's (both ``{name: tensor}``),
    on one line; None when every name and shape matches."""
    for name, tensor in expected.items():
        if name not in found:
            return f"'{name}' is not in the checkpoint"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return f"'{name}' is {list(found[name].shape)} in the checkpoint but {list(tensor.shape)} in this network"
    extra = [name for name in found if name not in expected]
    if extra:
        return f"the checkpoint has '{extra[0]}' ({len(extra)} tensor(s) in all) that this network lacks"
    return None


def mismatch_message(key: str, ckpt: Any, mismatch: str, stored: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """The one line for weights that do not fit: the first mismatched tensor and the configs that made them."""
    if not stored:
        made = "the checkpoint holds no config"
    elif changed := network_changes(stored, current):
        made = f"the checkpoint's config was {network_of(stored)}; this one changes {', '.join(changed[:4])}"
    else:
        made = f"its config ({network_of(stored)}) is this one, so the weights were not made by it"
    return (
        f"{key}: the weights of '{ckpt}' do not fit the network: {mismatch}; {made}; valid: the network settings "
        "the checkpoint was trained with (model/shortcut/norm), or a checkpoint written by that config"
    )
