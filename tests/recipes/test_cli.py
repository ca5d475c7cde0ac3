"""The command line: --help, exit status 2 for bad configs (one line, no traceback), multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recipe_helpers import RECIPES, ROOT


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "recipes.train", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_recipes_and_groups(tmp_path):
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for group in ("recipe", "model", "shortcut", "norm", "data", "trainer", "logger"):
        assert f"\n{group}: " in proc.stdout, group
    assert all(r in proc.stdout for r in RECIPES)
    assert "laurel_rw_lr" in proc.stdout and "post_ln" in proc.stdout


def test_bad_configs_exit_2_without_traceback(tmp_path):
    ours = cli("+model.depht=3", cwd=tmp_path)  # caught by our validation (registry options)
    assert ours.returncode == 2
    assert ours.stderr.strip().splitlines() == ["error: " + ours.stderr.strip()[7:]]  # exactly one line
    assert "model.depht: unknown option for model 'gpt_nano'" in ours.stderr and "Traceback" not in ours.stderr
    hydra = cli("shortcut=lauerl_rw", cwd=tmp_path)  # caught by Hydra at composition
    assert hydra.returncode == 2 and "Traceback" not in hydra.stderr
    assert "lauerl_rw" in hydra.stderr and "laurel_rw_lr" in hydra.stderr  # the bad name and the valid ones
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))


def test_multirun_refuses_several_devices(tmp_path):
    proc = cli("-m", "shortcut=identity,rezero", "trainer.accelerator=cpu", "trainer.devices=2", cwd=tmp_path)
    assert proc.returncode == 2
    assert "under multirun (-m); valid: trainer.devices=1" in proc.stderr and "Traceback" not in proc.stderr


def test_multirun_sweep_on_one_device(tiny_data, tmp_path):
    proc = cli(
        "-m", "recipe=fmnist_resnet20", "shortcut=identity,rezero", f"data.path={tiny_data['fmnist']}",
        "data.batch_size=4", "trainer.accelerator=cpu", "trainer.fast_dev_run=1", "logger=csv",
        "trainer.enable_progress_bar=false", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = sorted((tmp_path / "runs" / "fmnist_resnet20-multirun").glob("*/summary.json"))
    assert [p.parent.name for p in summaries] == ["0", "1"]
    assert all(json.loads(p.read_text())["steps"] == 1 for p in summaries)
    swept = [(p.parent / ".hydra" / "overrides.yaml").read_text() for p in summaries]
    assert "shortcut=identity" in swept[0] and "shortcut=rezero" in swept[1]
    assert "Tip:" not in proc.stdout + proc.stderr  # Lightning's litlogger/litmodels adverts are filtered
    assert "LeafSpec" not in proc.stderr  # and the deprecation warning its pytree helper triggers


def test_lightning_tips_are_filtered_from_a_real_trainer():
    import logging

    import lightning.pytorch as pl

    from recipes.tracking.quiet import LIGHTNING_LOG, NO_LIGHTNING_TIPS

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger(LIGHTNING_LOG)
    level = log.level
    log.setLevel(logging.INFO)  # setLevel, not .level =: it also clears the loggers' cached isEnabledFor answers
    log.addHandler(handler)
    kwargs = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    try:
        log.removeFilter(NO_LIGHTNING_TIPS)
        pl.Trainer(**kwargs)
        assert any(m.startswith("💡 Tip:") for m in seen), seen  # Lightning prints them: the filter has work to do
        seen.clear()
        log.addFilter(NO_LIGHTNING_TIPS)
        pl.Trainer(**kwargs)
        assert seen and not any("Tip:" in m for m in seen), seen  # its other lines still come through
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def test_lightnings_leafspec_deprecation_warning_is_ignored():
    import warnings

    from lightning.pytorch.utilities._pytree import _tree_flatten

    from recipes.tracking.quiet import quiet_lightning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _tree_flatten({"loss": 1.0})  # what Lightning's logger connector calls on each logged value
        assert any("LeafSpec" in str(w.message) for w in seen)  # Lightning still triggers it: the filter has work
        seen.clear()
        quiet_lightning()
        _tree_flatten({"loss": 1.0})
        warnings.warn("another FutureWarning", FutureWarning)
        assert [str(w.message) for w in seen] == ["another FutureWarning"]  # only that one is ignored
