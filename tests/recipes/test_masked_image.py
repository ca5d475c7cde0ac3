"""The MAE recipe: pre-training logs reconstruction and frozen-feature metrics, resumes exactly, fine-tunes a ViT,
and ``recipes.evaluate eval=knn,linear_probe`` measures any image checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import Callback
from recipe_helpers import run, tiny

from resblocks.errors import ConfigError

STEPS = ["trainer.max_steps=4", "trainer.limit_val_batches=2", "trainer.log_every_n_steps=1",
         "checkpoint.every_n_steps=2", "frozen.every_n_epochs=1", "diagnostics.every_n_steps=2"]  # fmt: skip


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_pretraining_logs_reconstruction_and_frozen_features(tiny_data, tmp_path, capsys):
    summary = run(tiny("fmnist_mae", tiny_data, tmp_path, *STEPS))
    assert "frozen: knn_acc " in capsys.readouterr().out  # the console summary shows them
    m = summary.metrics
    assert {"val/loss", "test/loss", "frozen/knn_acc", "frozen/linear_acc"} <= m.keys(), m
    assert 0.0 <= m["frozen/knn_acc"] <= 1.0 and 0.0 <= m["frozen/linear_acc"] <= 1.0
    assert (tmp_path / "reconstructions.png").stat().st_size > 100
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["metrics"]["frozen/knn_acc"] == m["frozen/knn_acc"]
    # the per-depth diagnostics number the encoder's and the decoder's sub-layers apart (12 + 8)
    rows = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "residual/f_rms/19" in rows and "residual/f_rms/20" not in rows


def test_pretraining_resumes_exactly(tiny_data, tmp_path):
    with pytest.raises(Crash):
        run(tiny("fmnist_mae", tiny_data, tmp_path / "a", *STEPS, "trainer.max_steps=6"), callbacks=[CrashAt(3)])
    run(tiny("fmnist_mae", tiny_data, tmp_path / "a", *STEPS, "trainer.max_steps=6", "resume=auto"))
    run(tiny("fmnist_mae", tiny_data, tmp_path / "b", *STEPS, "trainer.max_steps=6"))
    resumed, straight = (load(tmp_path / r / "checkpoints" / "last.ckpt")["state_dict"] for r in "ab")
    assert resumed.keys() == straight.keys()
    for key in straight:  # the masks, crops and batch order of the resumed steps are the straight run's
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)


def test_a_vit_fine_tunes_from_the_maes_encoder(tiny_data, tmp_path, capsys):
    run(tiny("fmnist_mae", tiny_data, tmp_path / "mae", *STEPS))
    ckpt = tmp_path / "mae" / "checkpoints" / "last.ckpt"
    encoder = {k.removeprefix("net.encoder."): v for k, v in load(ckpt)["state_dict"].items() if ".encoder." in k}
    seen = {}

    class Look(Callback):
        def on_fit_start(self, trainer, pl_module):
            seen.update({k: v.clone() for k, v in pl_module.net.state_dict().items()})

    # the MAE's encoder reads a class token; the recipe's ViT mean-pools without one unless told
    run(tiny("fmnist_vit", tiny_data, tmp_path / "vit", "trainer.max_steps=1", "model.pool=cls", f"init_from={ckpt}"), callbacks=[Look()])
    assert "init_from: " in capsys.readouterr().out
    for key, value in encoder.items():
        torch.testing.assert_close(seen[key], value, rtol=0, atol=0, msg=key)
    assert {"head.weight", "head.bias"} <= seen.keys() - encoder.keys()
    # an encoder of another shape: one line naming the first mismatched tensor
    with pytest.raises(ConfigError, match=r"^init_from: .* differs in shape: cls_token .*valid: "):
        run(tiny("fmnist_vit", tiny_data, tmp_path / "bad", "trainer.max_steps=1", "model.pool=cls", "+model.dim=32", f"init_from={ckpt}"))
    # the recipe's own mean-pooled ViT has no class token to take the MAE's: one line naming it and model.pool
    with pytest.raises(ConfigError, match=r"^init_from: .* network lacks: cls_token; valid: .*\bpool\)$"):
        run(tiny("fmnist_vit", tiny_data, tmp_path / "bad3", "trainer.max_steps=1", f"init_from={ckpt}"))
    with pytest.raises(ConfigError, match=r"^init_from: .* not found"):
        run(tiny("fmnist_vit", tiny_data, tmp_path / "bad2", f"init_from={tmp_path / 'nope.ckpt'}"))


def test_evaluate_measures_frozen_features_of_any_image_checkpoint(tiny_data, tmp_path):
    from recipes.evaluate import evaluate, parse_evals

    run(tiny("fmnist_resnet20", tiny_data, tmp_path, "trainer.max_steps=2"))
    metrics = evaluate(tmp_path / "checkpoints" / "last.ckpt", ["frozen.max_memory=16"], ["knn", "linear_probe"])
    assert set(metrics) == {"frozen/knn_acc", "frozen/linear_acc"}
    only = evaluate(tmp_path / "checkpoints" / "last.ckpt", ["frozen.max_memory=16"], ["linear_probe"])
    assert set(only) == {"frozen/linear_acc"} and only["frozen/linear_acc"] == metrics["frozen/linear_acc"]
    with pytest.raises(ConfigError, match=r"^eval: 'knm'; valid: .*test, knn, linear_probe"):
        parse_evals("test,knm")


def test_frozen_evaluation_needs_image_data(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"^frozen.every_n_epochs: 1, but data 'shakespeare' is not images"):
        run(tiny("shakespeare_gpt", tiny_data, tmp_path, "frozen.every_n_epochs=1"))


def test_the_frozen_evaluation_runs_every_n_epochs_and_at_the_end():
    from types import SimpleNamespace

    from recipes.diagnostics.frozen import FrozenFeatureEval

    cb = FrozenFeatureEval(every_n_epochs=5)

    def at(epoch, step, fn="fit", max_steps=1000, sanity=False):
        trainer = SimpleNamespace(sanity_checking=sanity, state=SimpleNamespace(fn=fn), max_steps=max_steps,
                                  max_epochs=None, current_epoch=epoch, global_step=step)  # fmt: skip
        due = cb.due(trainer)
        if due:
            cb._evaluated.add((epoch, step))
        return due

    # validation in every epoch of a 1000-step run, 100 steps per epoch: epochs 5 and 10 (its last step)
    assert [e + 1 for e in range(10) if at(e, 100 * (e + 1))] == [5, 10]
    assert not at(4, 500, sanity=True)
    assert at(9, 1000, fn="validate") is False  # already measured at this step: not twice
    assert at(9, 1001, fn="validate")  # a standalone validation of other weights
