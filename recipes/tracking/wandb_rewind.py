"""W&B history after a resume: rewind the run to the checkpoint, so the steps a killed attempt logged past it
do not appear twice.

Lightning's ``WandbLogger`` logs with W&B's own auto-incrementing ``_step`` (``trainer/global_step`` is a
metric), so a run resumed from the checkpoint of step ``G`` would append its steps ``G, G+1, ...`` after
the killed attempt's rows for them. W&B (>= 0.17.1) can *rewind* a run: ``wandb.init(resume_from=
f"{id}?_step={N}")`` keeps the history up to ``_step`` ``N`` and logs on from ``N + 1``.

The ``_step`` to rewind to is only known once the checkpoint's own step is logged, after the checkpoint
was written, so it cannot live in the checkpoint: :class:`~recipes.runs.checkpoints.StepCheckpoint` records
``{global step: W&B position}`` in ``checkpoints/wandb_steps.json`` (rank 0, atomically) when the step
after a published checkpoint starts (or training ends). The position is W&B's next ``_step``
(``run.step``). On resume :func:`rewind_point` looks the checkpoint's step up and
:class:`RewindingWandbLogger` starts the run with ``resume_from``.

* Online: W&B truncates the run's history on the server (rewind is a W&B preview feature; where the
  server refuses it, one line says so and the run is continued as before, with the repeated steps).
* Offline: W&B writes a new ``offline-run-*`` folder whose steps continue from the rewind point; the
  server applies the rewind when that folder is synced, so sync the folders oldest first
  (``wandb sync runs/NAME/wandb/offline-run-*``). The older folder still holds the repeated rows locally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import WandbLogger

from ..runs.atomic import atomic_write_bytes
from ..errors import describe

POSITIONS = "wandb_steps.json"  # in the checkpoint folder: {"<global step>": <W&B _step of the next row>}


def read_positions(ckpt_dir: Path) -> dict[int, int]:
    """``{global step: W&B position}`` recorded for this run's checkpoints (empty if none or unreadable)."""
    try:
        return {int(k): int(v) for k, v in json.loads((Path(ckpt_dir) / POSITIONS).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def rewind_point(ckpt_dir: Path, global_step: int) -> int | None:
    """The W&B position recorded for the checkpoint of ``global_step``: a resume logs on from there."""
    return read_positions(ckpt_dir).get(global_step) if global_step > 0 else None


def log_position(logger: Any) -> int | None:
    """The W&B ``_step`` the next row of ``logger``'s run gets; None unless W&B is logging (not failed, started)."""
    if getattr(logger, "failure", None):  # a FallbackLogger that fell back to CSV
        return None
    logger = getattr(logger, "primary", logger)
    if not isinstance(logger, WandbLogger) or logger._experiment is None or not getattr(logger, "numbered", True):
        return None
    try:
        step = int(logger._experiment.step)
    except Exception:  # noqa: BLE001  (W&B's service gone, shared mode: no rewind point, nothing else lost)
        return None
    return max(step, getattr(logger, "start_position", 0))  # W&B says 0 until a rewound run logs its first row


def record_position(ckpt_dir: Path, global_step: int, logger: Any) -> None:
    """Note the W&B position of ``logger`` for the checkpoint of ``global_step`` (rank 0; no-op without W&B)."""
    position = log_position(logger)
    if position is None:
        return
    positions = read_positions(ckpt_dir) | {global_step: position}
    text = json.dumps({str(k): v for k, v in sorted(positions.items())}).encode()
    atomic_write_bytes(Path(ckpt_dir) / POSITIONS, text, "W&B step record")


class RewindingWandbLogger(WandbLogger):
    """``WandbLogger`` that, given ``rewind_to`` (a position from :func:`rewind_point`), starts the run rewound
    so its next row is ``_step == rewind_to``. Without it, or if W&B refuses the rewind, it resumes the run
    as ``WandbLogger`` does (``resume="allow"``).

    ``resumed``: this continues an earlier attempt. An offline run resumed without a rewind numbers its
    rows from 0 again (offline W&B cannot know the earlier rows), so its positions are not recorded.
    """

    def __init__(self, *, rewind_to: int | None = None, resumed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Lightning always passes ``anonymous`` (None when unset); W&B >= 0.19 warns that the setting has no
        # effect whenever it is passed at all, so an unset one is not passed.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self.rewind_to = rewind_to if rewind_to else None  # position 0: nothing logged, nothing to rewind
        self.start_position = 0
        self.numbered = not (resumed and self._wandb_init.get("mode") == "offline")  # _step continues the run's

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None and self.rewind_to is not None:
            options = dict(self._wandb_init)
            self._wandb_init.pop("resume", None)  # W&B takes resume or resume_from, not both
            self._wandb_init["resume_from"] = f"{self._id}?_step={self.rewind_to - 1}"
            try:
                run = super().experiment
                self.start_position, self.numbered = self.rewind_to, True
                return run
            except Exception as e:  # noqa: BLE001  (e.g. rewind not enabled for this W&B account)
                print(
                    f"W&B: could not rewind run {self._id} to its checkpoint ({describe(e)}); continuing it instead, "
                    "so the steps logged after that checkpoint appear twice there",
                    flush=True,
                )
                self._wandb_init = options
            finally:
                self.rewind_to = None
        return super().experiment
