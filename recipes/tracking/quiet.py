"""What the recipes keep out of a run's output: Lightning's adverts and one deprecation warning that Lightning
itself triggers (the Trainer's other lines and every other warning stay)."""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOG = "lightning.pytorch.utilities.rank_zero"  # the logger of Lightning's rank_zero_info lines


class _NoLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines (two per Trainer since 2.6):
    advertisements for its hosted services, not information about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


NO_LIGHTNING_TIPS = _NoLightningTips()


# Lightning 2.6's own pytree helper builds ``LeafSpec()``, which torch 2.14 deprecates with a FutureWarning printed
# once per run: about Lightning's code, nothing a user of the recipes can act on.
LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


def quiet_lightning() -> None:
    """Install :data:`NO_LIGHTNING_TIPS` on Lightning's logger and ignore :data:`LEAFSPEC_WARNING` (both
    idempotent: ``addFilter`` and ``filterwarnings`` keep one copy, so calls repeat freely)."""
    logging.getLogger(LIGHTNING_LOG).addFilter(NO_LIGHTNING_TIPS)
    warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
