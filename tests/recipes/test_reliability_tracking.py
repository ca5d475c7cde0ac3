"""Reliability 8: experiment tracking never stops or hangs training. No W&B key means offline logging (one
line says so); a W&B failure at start or mid-run means CSV logging from then on (one line says so); secrets
such as WANDB_API_KEY never reach a logged config or any file of the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import WandbLogger
from recipe_helpers import compose, csv_rows, tiny
from reliability_helpers import TINY_GPT, one_thread  # noqa: F401  (autouse: one torch thread)

from recipes.config import LoggerConfig
from recipes.tracking import build_logger, finish, redact_secrets

STEPS = [
    "trainer.max_steps=6",
    "trainer.val_check_interval=6",
    "trainer.log_every_n_steps=1",
    "checkpoint.monitor=null",
]


def run(tiny_data, run_dir, *extra):
    from recipes.train import train

    return train(compose(tiny("shakespeare_gpt", tiny_data, run_dir, *TINY_GPT, *STEPS, "logger=wandb", *extra)))


def test_no_key_logs_offline_and_says_so_once(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no netrc, no W&B settings file
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    logger = build_logger(LoggerConfig(name="wandb"), tmp_path, "run12345", "tiny")
    try:
        assert logger.experiment.settings.mode == "offline"
    finally:
        finish(logger)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("W&B")] == [
        (
            f"W&B: no API key configured (WANDB_API_KEY or `wandb login`); logging offline to {tmp_path / 'wandb'} "
            "(upload later with `wandb sync`)"
        )
    ]


def test_wandb_failing_mid_run_falls_back_to_csv(tiny_data, tmp_path, monkeypatch, capsys):
    calls = []

    def flaky(self, metrics, step=None):
        calls.append(step)
        if len(calls) > 2:  # W&B's service died, its network went away, ...
            raise ConnectionError("simulated W&B failure")
        return original(self, metrics, step)

    original = WandbLogger.log_metrics
    monkeypatch.setattr(WandbLogger, "log_metrics", flaky)
    summary = run(tiny_data, tmp_path)
    assert summary.steps == 6  # training went on
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("W&B failed")]
    assert len(said) == 1 and "simulated W&B failure" in said[0] and str(tmp_path / "csv") in said[0], said
    steps = [int(r["step"]) for r in csv_rows(tmp_path) if r.get("train/loss")]
    assert steps == [2, 3, 4, 5]  # every step after the failure, in the CSV fallback
    assert "W&B failed" in summary.tracker and "metrics.csv" in summary.tracker


def test_wandb_failing_at_start_falls_back_to_csv(tiny_data, tmp_path, monkeypatch, capsys):
    import wandb

    def down(*args, **kwargs):
        raise wandb.errors.CommError("simulated: could not reach api.wandb.ai")

    monkeypatch.setattr(wandb, "init", down)
    summary = run(tiny_data, tmp_path)
    assert summary.steps == 6
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("W&B failed")]
    assert len(said) == 1 and "CommError: simulated: could not reach api.wandb.ai" in said[0], said
    assert [int(r["step"]) for r in csv_rows(tmp_path) if r.get("train/loss")] == list(range(6))
    hparams = (next((tmp_path / "csv").glob("version_*")) / "hparams.yaml").read_text()
    assert "max_steps: 6" in hparams  # the config logged before the failure was replayed


def test_secrets_never_reach_logged_configs_or_files(tiny_data, tmp_path, monkeypatch):
    secret = "wandb-secret-" + "7" * 28
    monkeypatch.setenv("WANDB_API_KEY", secret)
    # A config that picks the key up through an interpolation, in a field that is logged and sent to W&B.
    summary = run(tiny_data, tmp_path, "logger.mode=offline", "+logger.tags=[${oc.env:WANDB_API_KEY}]",
                  "logger.group=g-${oc.env:WANDB_API_KEY}")  # fmt: skip
    assert summary.steps == 6
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    wandb_dir = Path(__import__("os").environ["WANDB_DIR"])
    files += [p for p in wandb_dir.rglob("*") if p.is_file()] if wandb_dir.is_dir() else []
    assert len(files) >= 8 and any(p.suffix == ".ckpt" for p in files) and any(p.suffix == ".wandb" for p in files)
    leaks = [p for p in files if secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert redact_secrets({"group": f"g-{secret}"}) == {"group": "g-<WANDB_API_KEY>"}


@pytest.mark.parametrize("value", ["short", ""])
def test_short_or_empty_values_are_not_treated_as_secrets(value):
    assert redact_secrets({"a": "short text"}, {"SOME_TOKEN": value}) == {"a": "short text"}
