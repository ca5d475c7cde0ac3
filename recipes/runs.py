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
from .cli_errors import describe

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
    """The checkpoint ``resume=auto`` continues from: ``last.ckpt`` (or a newer ``hpc_ckpt_*.ckpt``
    that Lightning wrote on a SLURM pre-emption signal), else the newest ``.ckpt``."""
    run_dir = Path(run_dir)
    last = [p for p in [run_dir / CKPT_DIR / LAST, *run_dir.glob("hpc_ckpt_*.ckpt")] if p.exists()]
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


def read_meta(ckpt: Path) -> dict[str, Any]:
    """``checkpoint["resblocks"]`` (config, run id) plus ``global_step``, without loading the tensors into memory."""
    path = Path(ckpt)
    if path.is_dir():  # a sharded (FSDP) checkpoint: non-tensor state lives in meta.pt
        path = path / "meta.pt"
    try:
        state = safe_load(path, mmap=True)
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # corrupt / truncated / not a checkpoint
        raise ConfigError(f"resume: cannot read checkpoint '{ckpt}' ({describe(e)})") from e
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
        meta = read_meta(ckpt)
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


def check_resumable(stored: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint into a different network (the weights would not fit, or worse, would)."""
    if not stored:
        return
    before = _flat({k: stored.get(k) for k in ARCHITECTURE})
    after = _flat({k: current.get(k) for k in ARCHITECTURE})
    changed = [
        f"{k}={before.get(k)!r}->{after.get(k)!r}"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]
    if changed:
        raise ConfigError(
            f"resume: the checkpoint's network differs ({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}); "
            "valid: the checkpoint's model/shortcut/norm settings, or a new run (name=... or overwrite=true)"
        )
