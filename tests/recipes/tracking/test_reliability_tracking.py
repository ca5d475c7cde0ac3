"""Reliability 8: experiment tracking never stops or hangs training. No W&B key means offline logging (one
line says so); a W&B failure at start or mid-run means CSV logging from then on (one line says so); secrets
such as WANDB_API_KEY never reach a logged config or any file of the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import WandbLogger
from recipe_helpers import compose, csv_rows, tiny
from reliability_helpers import TINY_GPT, Crash, CrashAt, one_thread  # noqa: F401  (autouse: one torch thread)

from recipes.config import LoggerConfig
from recipes.tracking.loggers import build_logger, finish, redact_secrets

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
        if step is not None and step >= 2:  # W&B's service died, its network went away, ... (from step 2 on)
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


# ----------------------------------------------------------------------------- W&B history after a resume


class FakeWandb:
    """``wandb.init`` against an in-memory server with W&B's step semantics: a run's rows get ``_step`` 0, 1, ...;
    ``resume="allow"`` appends after the last row; ``resume_from="ID?_step=N"`` keeps the rows up to ``N`` and logs
    on from ``N + 1`` (wandb-core's rewind sets the starting step to N + 1)."""

    def __init__(self, refuse_rewind: bool = False) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.inits: list[dict] = []
        self.refuse_rewind = refuse_rewind

    def init(self, **kwargs):
        import wandb

        self.inits.append(kwargs)
        assert not (kwargs.get("resume") and kwargs.get("resume_from")), "W&B refuses both"
        if kwargs.get("resume_from"):
            if self.refuse_rewind:
                raise wandb.errors.CommError("simulated: rewind is not enabled for this entity")
            run_id, n = kwargs["resume_from"].split("?_step=")
            self.rows[run_id] = [r for r in self.rows[run_id] if r["_step"] <= int(n)]
            return FakeRun(self.rows[run_id], run_id, int(n) + 1)
        rows = self.rows.setdefault(kwargs["id"], [])
        return FakeRun(rows, kwargs["id"], rows[-1]["_step"] + 1 if rows else 0)


class FakeRun:
    def __init__(self, rows: list[dict], run_id: str, start: int) -> None:
        from types import SimpleNamespace

        self.rows, self.id, self.step = rows, run_id, start
        self.config = SimpleNamespace(update=lambda *a, **k: None)
        self.settings, self.url = SimpleNamespace(mode="online"), None

    def log(self, data: dict) -> None:
        self.rows.append({**data, "_step": self.step})
        self.step += 1

    def finish(self) -> None:
        pass


def crash_then_resume(tiny_data, run_dir):
    from recipes.train import train

    ckpt = ["trainer.max_steps=9", "checkpoint.every_n_steps=3"]
    with pytest.raises(Crash):
        train(compose(tiny("shakespeare_gpt", tiny_data, run_dir, *TINY_GPT, *STEPS, "logger=wandb", *ckpt)),
              callbacks=[CrashAt(8)])  # fmt: skip
    return run(tiny_data, run_dir, *ckpt, "resume=auto")


def train_steps(rows: list[dict]) -> list[int]:
    return [r["trainer/global_step"] for r in rows if "train/loss" in r]


def test_resume_rewinds_the_wandb_run_to_the_checkpoint(tiny_data, tmp_path, monkeypatch):
    import wandb

    from recipes.tracking.wandb_rewind import read_positions

    server = FakeWandb()
    monkeypatch.setattr(wandb, "init", server.init)
    summary = crash_then_resume(tiny_data, tmp_path)
    assert summary.steps == 9
    (run_id, rows), = server.rows.items()  # fmt: skip
    assert train_steps(rows) == list(range(9))  # every step once: no repeats, no gaps
    assert [r["_step"] for r in rows] == list(range(len(rows)))
    # The crashed attempt logged steps 0-6; its last checkpoint was step 6, so the resume rewound past step 5's rows.
    position = read_positions(tmp_path / "checkpoints")[6]
    assert server.inits[-1]["resume_from"] == f"{run_id}?_step={position - 1}" and "resume" not in server.inits[-1]
    assert [r["trainer/global_step"] for r in rows if "val/loss" in r] == [5, 9]  # the crashed run's, the final one


def test_a_refused_rewind_continues_the_run_and_says_so(tiny_data, tmp_path, monkeypatch, capsys):
    import wandb

    server = FakeWandb(refuse_rewind=True)
    monkeypatch.setattr(wandb, "init", server.init)
    summary = crash_then_resume(tiny_data, tmp_path)
    assert summary.steps == 9 and "W&B failed" not in (summary.tracker or "")  # still logging to W&B
    said = [line for line in capsys.readouterr().out.splitlines() if "could not rewind" in line]
    assert len(said) == 1 and "rewind is not enabled" in said[0] and "appear twice" in said[0], said
    assert server.inits[-1]["resume"] == "allow" and "resume_from" not in server.inits[-1]
    (rows,) = server.rows.values()
    assert train_steps(rows) == [*range(7), 6, 7, 8]  # the old behaviour: step 6 twice, said above


def test_offline_resume_starts_the_new_segment_at_the_checkpoint_position(tmp_path):
    """Real W&B (offline): the rewound run's first row gets the recorded position as its _step."""
    from recipes.tracking.wandb_rewind import POSITIONS, log_position

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / POSITIONS).write_text('{"6": 9}')
    logger = build_logger(LoggerConfig(name="wandb", mode="offline"), tmp_path, "rw123456", "tiny", start_step=6)
    try:
        assert logger.experiment.settings.resume_from.value == 8 and log_position(logger) == 9
        logger.log_metrics({"train/loss": 1.0}, step=6)
        assert log_position(logger) == 10  # that row was _step 9
    finally:
        finish(logger)
