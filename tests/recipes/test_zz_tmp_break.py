import pytest
import recipes.tracking, recipes.train, recipes.fallback_logger
from test_reliability_tracking import *  # noqa

def test_break_redaction(tiny_data, tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(recipes.tracking, "redact_secrets", lambda tree, env=None: tree)
    monkeypatch.setattr(recipes.train, "redact_secrets", lambda tree, env=None: tree)
    test_secrets_never_reach_logged_configs_or_files(tiny_data, tmp_path, monkeypatch, None)

def test_break_fallback(tiny_data, tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setattr(recipes.fallback_logger, "FallbackLogger", lambda primary, fallback, label: primary)
    test_wandb_failing_mid_run_falls_back_to_csv(tiny_data, tmp_path, monkeypatch, capsys, None)
