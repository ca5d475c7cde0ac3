"""What the recipes keep out of a run's output: Lightning's adverts (the Trainer's other lines stay)."""

from __future__ import annotations

import logging

LIGHTNING_LOG = "lightning.pytorch.utilities.rank_zero"  # the logger of Lightning's rank_zero_info lines


class _NoLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines (two per Trainer since 2.6):
    advertisements for its hosted services, not information about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


NO_LIGHTNING_TIPS = _NoLightningTips()


def drop_lightning_tips() -> None:
    """Install :data:`NO_LIGHTNING_TIPS` on Lightning's logger (``addFilter`` keeps one copy, so calls repeat freely)."""
    logging.getLogger(LIGHTNING_LOG).addFilter(NO_LIGHTNING_TIPS)
