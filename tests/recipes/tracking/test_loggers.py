"""W&B mode decision (never a prompt), and the logger each `logger=` option builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from recipes.config import LoggerConfig
from recipes.tracking.loggers import build_logger, check_logger, finish, wandb_key_configured, wandb_mode
from resblocks.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment with an empty home: no netrc, no W&B settings, no key."""
    (tmp_path / "home").mkdir()
    return {"HOME": str(tmp_path / "home"), "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}


def test_no_key_means_offline_with_a_reason(home):
    assert not wandb_key_configured(home)
    mode, reason = wandb_mode(None, home)
    assert mode == "offline" and "no API key" in reason


def test_api_key_in_env_means_online(home):
    assert wandb_mode(None, {**home, "WANDB_API_KEY": "x" * 40}) == ("online", None)


def test_netrc_entry_means_online(home):
    Path(home["HOME"], ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert wandb_key_configured(home)
    assert wandb_mode(None, home) == ("online", None)
    # A netrc entry for another host (a private server) is not a key for api.wandb.ai ...
    assert not wandb_key_configured({**home, "WANDB_BASE_URL": "https://wandb.example.org"})


def test_settings_file_key_means_online(home):
    Path(home["WANDB_CONFIG_DIR"]).mkdir()
    Path(home["WANDB_CONFIG_DIR"], "settings").write_text("[default]\napi_key = " + "s" * 40 + "\n")
    assert wandb_key_configured(home)


def test_explicit_modes(home):
    assert wandb_mode("disabled", home) == ("disabled", None)
    assert wandb_mode(None, {**home, "WANDB_MODE": "dryrun"}) == ("offline", None)
    assert wandb_mode("offline", {**home, "WANDB_API_KEY": "x"}) == ("offline", None)
    with pytest.raises(ConfigError, match=r"^logger\.mode: online, but no W&B API key is configured"):
        wandb_mode("online", home)
    with pytest.raises(ConfigError, match=r"^logger\.mode: unknown W&B mode 'sometimes'"):
        wandb_mode("sometimes", home)


def test_unknown_or_unavailable_logger():
    with pytest.raises(ConfigError, match=r"^logger: unknown logger 'mlflow'; valid: wandb, csv, tensorboard, none$"):
        check_logger("mlflow")
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        with pytest.raises(ConfigError, match=r"pip install tensorboard"):
            check_logger("tensorboard")


def test_wandb_offline_logger_writes_under_the_run_dir_and_says_so_once(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no netrc: the automatic choice is offline
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = build_logger(LoggerConfig(name="wandb", project="tests"), tmp_path, "abc12345", "tiny")
    try:
        logger.log_hyperparams({"model": {"name": "gpt", "depth": 2}})
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and out[0].startswith("W&B: no API key configured") and "offline" in out[0]
        assert logger.experiment.id == "abc12345"
        runs = list((tmp_path / "wandb").glob("offline-run-*-abc12345"))
        assert len(runs) == 1
    finally:
        finish(logger)


def test_csv_and_none_loggers(tmp_path):
    assert build_logger(LoggerConfig(name="none"), tmp_path, "id", "x") is False
    csv = build_logger(LoggerConfig(name="csv"), tmp_path, "id", "x")
    assert Path(csv.log_dir).parent == tmp_path / "csv"


def test_tensorboard_logger_writes_events_in_the_run_dir(tmp_path, tiny_data):
    pytest.importorskip("tensorboard")
    from recipe_helpers import run, tiny

    run(tiny("shakespeare_gpt", tiny_data, tmp_path / "run", "logger=tensorboard", "trainer.max_steps=2"))
    events = list((tmp_path / "run" / "tensorboard").glob("*/events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
