"""Experiment tracking: which logger, and whether W&B runs online or offline.

W&B runs **online iff an API key is configured** (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``,
a netrc entry written by ``wandb login``, or ``api_key`` in W&B's settings file); otherwise it runs
offline under ``<run_dir>/wandb`` and one line says so. ``WANDB_MODE`` or ``logger.mode`` choose
explicitly. W&B is never asked to prompt for a login, and no credential is read beyond the
yes/no of whether one exists.
"""

from __future__ import annotations

import configparser
import importlib.util
import inspect
import netrc
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from resblocks.errors import ConfigError

from ..errors import describe

LOGGERS = ("wandb", "csv", "tensorboard", "none")
WANDB_MODES = ("online", "offline", "disabled")
DEFAULT_WANDB_HOST = "https://api.wandb.ai"


def _netrc_path(env: Mapping[str, str]) -> Path:
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    home = Path(env.get("HOME") or Path.home())
    return home / ".netrc" if (home / ".netrc").exists() or os.name != "nt" else home / "_netrc"


def _settings_api_key(env: Mapping[str, str]) -> bool:
    config_dir = env.get("WANDB_CONFIG_DIR") or str(Path(env.get("HOME") or Path.home()) / ".config" / "wandb")
    parser = configparser.ConfigParser()
    try:
        parser.read(Path(config_dir) / "settings")
    except configparser.Error:
        return False
    return bool(parser.get("default", "api_key", fallback=""))


def wandb_key_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether W&B would find credentials without prompting (the key itself is never kept)."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(env.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST).netloc
    try:
        entry = netrc.netrc(_netrc_path(env)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        entry = None
    return bool(entry and entry[2]) or _settings_api_key(env)


def wandb_mode(requested: str | None, env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """``(mode, reason)``: ``logger.mode`` if set, else ``WANDB_MODE``, else online iff a key is configured.

    ``reason`` is set when the mode was chosen for the user (no key -> offline).
    """
    env = os.environ if env is None else env
    mode = requested or env.get("WANDB_MODE") or None
    if mode == "dryrun":
        mode = "offline"
    if mode is not None and mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode: unknown W&B mode {mode!r}; valid: {', '.join(WANDB_MODES)} (or null: auto)")
    if mode is None:
        if wandb_key_configured(env):
            return "online", None
        return "offline", "no API key configured (WANDB_API_KEY or `wandb login`)"
    if mode == "online" and not wandb_key_configured(env):
        raise ConfigError(
            "logger.mode: online, but no W&B API key is configured; valid: run `wandb login` or set WANDB_API_KEY, "
            "or use logger.mode=offline"
        )
    return mode, None


@contextmanager
def quick_getmodule() -> Iterator[None]:
    """``inspect.getmodule`` memoised per source file for frames, while this context lasts (W&B's start).

    W&B's settings are pydantic models that read their attribute docstrings; pydantic finds each class's source
    by walking the stack with ``inspect.getmodule(frame)``, which scans all of ``sys.modules`` per call: with
    torch, Lightning and Hydra loaded (~4,000 modules) that made ``wandb.init`` (offline) cost 0.6-1.2 s of CPU
    here, 0.3 s with this. A frame's module depends only on its code's file, so the memo is exact.
    """
    original = inspect.getmodule
    memo: dict[str, Any] = {}

    def getmodule(obj: Any, _filename: str | None = None) -> Any:
        if _filename is None and inspect.isframe(obj):
            key = obj.f_code.co_filename
            if key not in memo:
                memo[key] = original(obj)
            return memo[key]
        return original(obj, _filename)

    inspect.getmodule = getmodule  # type: ignore[assignment]
    try:
        yield
    finally:
        inspect.getmodule = original


def check_logger(name: str) -> None:
    """Fail before any work when the logger is unknown or its package is missing."""
    if name not in LOGGERS:
        raise ConfigError(f"logger: unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
    need = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX")}.get(name, ())
    if need and not any(importlib.util.find_spec(pkg) for pkg in need):
        raise ConfigError(
            f"logger: {name!r} needs the {need[0]} package; valid: `pip install {need[0]}`, or logger=csv"
        )


def build_logger(
    cfg: Any, run_dir: Path, run_id: str, run_name: str, announce: bool = True, start_step: int = 0
) -> Any:
    """The Lightning logger for ``cfg`` (a ``LoggerConfig``), or ``False`` for ``logger=none``.

    Every logger writes under ``run_dir``; W&B and TensorBoard reuse ``run_id`` so a resumed run
    continues the same curves. ``announce`` prints the one line about an automatic offline mode.
    ``start_step``: the step training resumes from; TensorBoard hides what a killed attempt logged
    past it (CSV: :func:`rewind_logs`), W&B rewinds the run to it where the checkpoint's W&B position
    was recorded (:mod:`recipes.tracking.wandb_rewind`). W&B is wrapped in a
    :class:`~recipes.tracking.fallback.FallbackLogger`: if it fails, training goes on logging to CSV.
    """
    check_logger(cfg.name)
    if cfg.name == "none":
        return False
    from lightning.pytorch.loggers import CSVLogger

    from .csv_log import StepCSVLogger

    def csv_logger() -> CSVLogger:
        # CSVLogger clears an existing metrics.csv, so each invocation gets its own version_N folder;
        # StepCSVLogger writes one row per step (a validation's metrics join the step's training row).
        return StepCSVLogger(save_dir=run_dir, name="csv")

    if cfg.name == "csv":
        return csv_logger()
    if cfg.name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(
            save_dir=run_dir, name="tensorboard", version=run_id, default_hp_metric=False, purge_step=start_step or None
        )
    import wandb

    from .fallback import FallbackLogger
    from ..runs.plan import CKPT_DIR
    from .wandb_rewind import RewindingWandbLogger, rewind_point

    mode, reason = wandb_mode(cfg.mode)
    if reason and announce:
        print(f"W&B: {reason}; logging offline to {run_dir / 'wandb'} (upload later with `wandb sync`)", flush=True)
    wandb_logger = RewindingWandbLogger(
        rewind_to=rewind_point(run_dir / CKPT_DIR, start_step),
        resumed=start_step > 0,
        name=redact_secrets(run_name),
        project=redact_secrets(cfg.project),
        entity=redact_secrets(cfg.entity),
        group=redact_secrets(cfg.group),
        tags=redact_secrets(list(cfg.tags)) or None,
        id=run_id,
        save_dir=str(run_dir),
        mode=mode,
        # Our own summary prints the URL / offline folder; W&B's banner would repeat it in 5 lines.
        settings=wandb.Settings(silent=True),
    )
    return FallbackLogger(wandb_logger, csv_logger, label="W&B")


def finish(logger: Any) -> None:
    """Close the W&B run so the next run in this process starts a new one (never raises)."""
    from lightning.pytorch.loggers import WandbLogger

    logger = getattr(logger, "primary", logger)  # a FallbackLogger's W&B logger
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        try:
            logger._experiment.finish()
        except Exception as e:  # noqa: BLE001  (the files are local already; a failed upload must not fail the run)
            print(f"W&B: could not finish the run ({describe(e)})", flush=True)


# ----------------------------------------------------------------------------- resumed logs


def rewind_logs(run_dir: Path, step: int) -> int:
    """Drop the rows logged at ``step`` or later from the CSV logs of earlier invocations in ``run_dir``.

    A run killed after its last checkpoint logged steps that the run resuming from that checkpoint
    logs again; without them the combined log has no repeats (and, as checkpoints are published
    only once their step is logged, no gaps). ``step=0`` (a fresh start) drops every earlier row.
    Files are rewritten atomically. Returns the number of rows dropped.
    """
    import csv
    import io

    from ..runs.atomic import atomic_write_bytes

    dropped = 0
    for path in sorted(Path(run_dir).glob("csv/version_*/metrics.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if not (r.get("step") or "").strip() or int(float(r["step"])) < step]
        if len(keep) == len(rows):
            continue
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(keep)
        atomic_write_bytes(path, text.getvalue().encode(), "metrics log")
        dropped += len(rows) - len(keep)
    return dropped


# ----------------------------------------------------------------------------- secrets

# Environment variables whose values are credentials: never written to a logged config or a file.
SECRET_ENV = re.compile(r"(^|_)(API_KEY|ACCESS_KEY|SECRET|SECRET_KEY|TOKEN|PASSWORD)$")


def secret_values(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{value: variable}`` of the credentials in ``env`` (``WANDB_API_KEY``, ``HF_TOKEN``, ...)."""
    env = os.environ if env is None else env
    return {v: k for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= 8}


def redact_secrets(tree: Any, env: Mapping[str, str] | None = None) -> Any:
    """``tree`` (a config: dicts, lists, strings, numbers) with every credential value replaced by ``<NAME>``.

    A config can pick a secret up through an interpolation (``${oc.env:WANDB_API_KEY}``); what
    goes to W&B, CSV/TensorBoard hparams, checkpoints and summaries passes through here first.
    """
    secrets = secret_values(env)
    if not secrets:
        return tree

    def clean(node: Any) -> Any:
        if isinstance(node, str):
            for value, name in secrets.items():
                node = node.replace(value, f"<{name}>")
            return node
        if isinstance(node, Mapping):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(clean(v) for v in node)
        return node

    return clean(tree)
