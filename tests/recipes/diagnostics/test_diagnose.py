"""``python -m recipes.diagnose``: per-depth table, pictures, lesion study, on a checkpoint or a recipe at init."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from recipe_helpers import run, tiny

import resblocks
from recipes.data import build_datamodule
from recipes.diagnose import main
from resblocks.diagnostics import lesion

# `trained` (tests/recipes/conftest.py): last.ckpt of a tiny GPT (depth 1, dim 32, 2 heads, val_batches 2), 4 steps.
FP32 = "trainer.precision=32-true"


def tiny_gpt(trained, tiny_data):
    dm = build_datamodule("shakespeare", path=str(tiny_data["plays"]), block_size=64, batch_size=2, val_batches=2)
    dm.setup("fit")
    sizes = {"vocab_size": dm.vocab_size, "block_size": 64, "depth": 1, "dim": 32, "heads": 2}
    net = resblocks.build_model("gpt_nano", **sizes, bias=False)
    state = torch.load(trained, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    return net.eval(), dm


def test_checkpoint_table_pictures_and_lesion_by_hand(trained, tiny_data, tmp_path, capsys):
    out = tmp_path / "d"
    main([f"ckpt={trained}", f"out={out}", "lesion=true", "lesion_batches=1", FP32])
    printed = capsys.readouterr().out
    assert "2 residual sub-layers" in printed and "dL/dx rms" in printed and "lesion study" in printed
    assert {p.name for p in out.iterdir()} >= {"profile.png", "lesion.png", "diagnose.json"}
    report = json.loads((out / "diagnose.json").read_text())
    assert [r["index"] for r in report["records"]] == [0, 1]
    assert all(r["grad_rms"] > 0 and r["update_ratio"] > 0 for r in report["records"])
    # The lesion numbers by hand: cross-entropy on the first validation batch, intact and with block 0 deleted.
    net, dm = tiny_gpt(trained, tiny_data)
    x, y = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        intact = F.cross_entropy(net(x).flatten(0, 1), y.flatten()).item()
        with lesion(net, [0, 1]):
            deleted = F.cross_entropy(net(x).flatten(0, 1), y.flatten()).item()
    study = report["lesion"]
    assert study["baseline"]["loss"] == pytest.approx(intact, rel=1e-5) and "acc" not in study["baseline"]
    assert [r["indices"] for r in study["results"]] == [[0, 1]]  # one block = its attention and MLP sub-layers
    assert study["results"][0]["metrics"]["loss"] == pytest.approx(deleted, rel=1e-5)


def test_recipe_at_initialisation_plain_net_skips_stage_changes(tiny_data, tmp_path, capsys):
    out = tmp_path / "init"
    args = tiny("fmnist_resnet20", tiny_data, tmp_path / "run", "shortcut=none", "data.batch_size=4")
    main(["recipe=fmnist_resnet20", *args[1:], f"out={out}", "lesion=true", "lesion_batches=1", "batches=2"])
    printed = capsys.readouterr().out
    assert "(initialisation): 9 residual sub-layers, 2 batch(es)" in printed
    report = json.loads((out / "diagnose.json").read_text())
    skipped = [r["unit"] for r in report["lesion"]["results"] if r["skipped"]]
    assert skipped == [3, 6]  # the plain net's stage changes cannot become their input
    assert set(report["lesion"]["baseline"]) == {"loss", "acc"}
    assert not (tmp_path / "run").exists()  # nothing trained, no run folder


def test_training_history_and_comparison(trained, tiny_data, tmp_path):
    """A checkpoint written with diagnostics on carries its history (heatmaps in training/); two checkpoints
    are compared in one profile and one lesion picture."""
    run_dir = tmp_path / "probed"
    gpt = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=2", "sample.tokens=0"]
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *gpt, "name=probed", "trainer.max_steps=3",
             "diagnostics.every_n_steps=1"))  # fmt: skip
    out = tmp_path / "cmp"
    main([f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", f"ckpt={trained}", f"out={out}", "lesion=true",
          "lesion_batches=1"])  # fmt: skip
    assert (out / "probed" / "training" / "grad_rms.png").exists()  # steps 0, 1, 2 of the training run
    assert (out / "profile.png").exists() and (out / "lesion.png").exists()
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize(
    "args, says",
    [
        (["ckpt=/nonexistent.ckpt"], "ckpt: '/nonexistent.ckpt' not found"),
        (["lesion=true"], "ckpt=PATH or recipe=NAME missing"),
        (["recipe=fmnist_resnet20", "lesoin=true"], "unknown option 'lesoin'"),
        (["recipe=fmnist_resnet20", "batches=0"], "batches: '0'; valid: an integer >= 1"),
        (["recipe=fmnist_resnet20", "mode=test"], "mode: 'test'; valid: train, eval"),
        (["recipe=nope"], "recipe: unknown option 'nope'"),
        (["recipe=fmnist_resnet20", "model=densenet_bc_100_12", "+model.in_chans=1"], "no resblocks Residual"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, says, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and says in err, err


def test_both_sources_refused(trained, capsys):
    with pytest.raises(SystemExit) as info:
        main([f"ckpt={trained}", "recipe=fmnist_resnet20"])
    assert info.value.code == 2 and "both ckpt= and recipe=" in capsys.readouterr().err
