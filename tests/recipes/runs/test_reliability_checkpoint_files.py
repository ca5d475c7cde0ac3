"""Reliability 6b: a file given as a checkpoint (``resume=PATH`` to train, ``ckpt=PATH`` to evaluate) that is not
one, or whose weights do not fit, is one line labelled with the entry point's own key and exit status 2: never a
traceback, never torch's own words (``mmap can only be used with files saved with ...``)."""

from __future__ import annotations

import pytest
import torch
from recipe_helpers import tiny
from reliability_helpers import TINY_GPT, call_main

from recipes.evaluate import main as evaluate_main

EMBED = "net.embed.wte.weight"
# `trained` (conftest.py): last.ckpt of a tiny GPT (depth 1, dim 32, 2 heads) trained 4 steps; resumed here with
# TINY_GPT, the same network.


def _legacy(path, state):
    torch.save(state, path, _use_new_zipfile_serialization=False)


@pytest.fixture
def bad_files(trained, tmp_path):
    """``{kind: path}`` of files that are not (usable) checkpoints, each built from the real one."""
    state = torch.load(trained, weights_only=True)
    files = {}
    files["empty"] = tmp_path / "empty.ckpt"
    files["empty"].write_bytes(b"")
    files["random"] = tmp_path / "random.ckpt"
    files["random"].write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    files["legacy"] = tmp_path / "legacy.ckpt"
    _legacy(files["legacy"], state)
    files["bare"] = tmp_path / "bare.ckpt"
    torch.save(state["state_dict"], files["bare"])
    files["weights_only"] = tmp_path / "weights_only.ckpt"
    weights_only = {k: v for k, v in state.items() if k not in ("optimizer_states", "lr_schedulers")}
    torch.save(weights_only, files["weights_only"])
    reshaped = {**state, "state_dict": dict(state["state_dict"])}
    vocab = state["state_dict"][EMBED].shape[0]
    reshaped["state_dict"][EMBED] = torch.zeros(vocab, 48)  # right config, wrongly shaped weights
    files["shapes"] = tmp_path / "shapes.ckpt"
    torch.save(reshaped, files["shapes"])
    return files, vocab


NOT_A_CHECKPOINT = {
    "empty": "is not a checkpoint (an empty file); valid: a .ckpt written by recipes.train",
    "random": "is not a checkpoint (not the zip archive torch.save writes: random bytes, a truncated file or torch's",
    "legacy": "is not a checkpoint (not the zip archive torch.save writes: random bytes, a truncated file or torch's",
}


def one_error(code, err):
    errors = [line for line in err if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and not any("Traceback" in line for line in err), (code, err)
    return errors[0].removeprefix("error: ")


def resume(monkeypatch, capsys, tiny_data, run_dir, path):
    return one_error(*call_main(monkeypatch, capsys, *tiny("shakespeare_gpt", tiny_data, run_dir, *TINY_GPT,
                                                           "trainer.max_steps=6", f"resume={path}")))  # fmt: skip


def evaluate(capsys, *args):
    with pytest.raises(SystemExit) as info:
        evaluate_main(list(args))
    return one_error(info.value.code, capsys.readouterr().err.splitlines())


@pytest.mark.parametrize("kind", sorted(NOT_A_CHECKPOINT))
def test_a_file_that_is_not_a_checkpoint(kind, bad_files, tiny_data, tmp_path, monkeypatch, capsys):
    files, _ = bad_files
    path = files[kind]
    line = resume(monkeypatch, capsys, tiny_data, tmp_path / "r", path)
    assert line.startswith(f"resume: '{path}' {NOT_A_CHECKPOINT[kind]}"), line
    assert evaluate(capsys, f"ckpt={path}").startswith(f"ckpt: '{path}' {NOT_A_CHECKPOINT[kind]}")
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_a_bare_state_dict_says_what_a_checkpoint_holds(bad_files, tiny_data, tmp_path, monkeypatch, capsys):
    files, _ = bad_files
    path = files["bare"]
    line = resume(monkeypatch, capsys, tiny_data, tmp_path / "r", path)
    assert line.startswith(f"resume: '{path}' is a bare state_dict (")
    assert f"e.g. '{EMBED}'), not a resumable checkpoint; a resumable checkpoint holds the weights, the " in line
    assert f"net.load_state_dict(torch.load('{path}', weights_only=True))" in line  # how to load the weights alone
    line = evaluate(capsys, f"ckpt={path}")
    assert line.startswith(f"ckpt: '{path}' is a bare state_dict (") and "load_state_dict(torch.load(" in line


def test_a_checkpoint_without_training_state_cannot_be_resumed(bad_files, tiny_data, tmp_path, monkeypatch, capsys):
    files, _ = bad_files
    line = resume(monkeypatch, capsys, tiny_data, tmp_path / "r", files["weights_only"])
    assert line.startswith(f"resume: '{files['weights_only']}' lacks the optimiser state, the LR schedule: not a ")


def test_wrongly_shaped_weights_name_the_tensor_and_the_config(bad_files, tiny_data, tmp_path, monkeypatch, capsys):
    files, vocab = bad_files
    path = files["shapes"]
    line = resume(monkeypatch, capsys, tiny_data, tmp_path / "r", path)
    mismatch = f"'{EMBED}' is [{vocab}, 48] in the checkpoint but [{vocab}, 32] in this network"
    assert line.startswith(f"resume: the weights of '{path}' do not fit the network: {mismatch}; its config (")
    assert "model.dim=32" in line and ") is this one, so the weights were not made by it; valid: " in line
    line = evaluate(capsys, f"ckpt={path}")
    assert line.startswith(f"ckpt: the weights of '{path}' do not fit the network: {mismatch}; its config (")


def test_evaluate_with_overrides_that_change_the_network(trained, capsys):
    vocab = torch.load(trained, weights_only=True)["state_dict"][EMBED].shape[0]
    line = evaluate(capsys, f"ckpt={trained}", "model.dim=64")
    assert line.startswith(
        f"ckpt: the weights of '{trained}' do not fit the network: '{EMBED}' is [{vocab}, 32] in the checkpoint but "
        f"[{vocab}, 64] in this network; the checkpoint's config was model.name=gpt_nano, "
    )
    assert "this one changes model.dim=32->64" in line


def test_evaluate_one_line_errors(trained, tmp_path, capsys):
    assert evaluate(capsys, "ckpt=") == "ckpt: empty; valid: ckpt=PATH of a .ckpt written by recipes.train " \
                                        "(runs/<name>/checkpoints/)"  # fmt: skip
    assert evaluate(capsys, f"ckpt={tmp_path}").startswith(f"ckpt: '{tmp_path}' is a folder")
    line = evaluate(capsys, f"ckpt={trained}", "data.path=/nonexistent")
    assert "/nonexistent" in line and line.startswith("shakespeare")  # the data layer's own line, as in training
    assert evaluate(capsys, f"ckpt={trained}", "data.batch_size=abc") == "data.batch_size: 'abc'; valid: an integer"
