"""Reliability 6: opening a checkpoint or a config cannot run code, and configs cannot name import paths.

The crafted checkpoint is a real exploit: loaded with ``weights_only=False`` it writes a marker file
(checked first). Every way the framework opens checkpoints must refuse it without writing the marker.
"""

from __future__ import annotations

import sys

import pytest
import torch
from recipe_helpers import compose, tiny
from reliability_helpers import TINY_GPT

from recipes.build import validate
from recipes.runs.checkpoints import AtomicCheckpointIO
from recipes.runs.plan import UnsafeCheckpointError
from resblocks.errors import ConfigError


class Payload:
    """Unpickling this calls ``exec``: arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


@pytest.fixture
def crafted(tmp_path):
    """``(path of a checkpoint whose unpickling runs code, the marker file that code writes)``."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "global_step": 1, "resblocks": {"run_id": "x"}, "hook": Payload(marker)}, path)
    torch.load(path, weights_only=False)  # the payload is live ...
    assert marker.exists()
    marker.unlink()  # ... and every test below proves it does not run
    return path, marker


def test_the_checkpoint_io_refuses_it_whatever_lightning_asks(crafted):
    path, marker = crafted
    for weights_only in (None, False, True):
        with pytest.raises(
            UnsafeCheckpointError,
            match=r"^checkpoint: '.*last\.ckpt' refused: unpickling it needs the Python global 'exec'",
        ):
            AtomicCheckpointIO().load_checkpoint(path, weights_only=weights_only)
    assert not marker.exists()


@pytest.mark.parametrize("resume", ["auto", "path"])
def test_resume_refuses_it_before_anything_is_built(crafted, tiny_data, resume):
    from recipes.train import train

    path, marker = crafted
    overrides = tiny(
        "shakespeare_gpt", tiny_data, path.parents[1], *TINY_GPT, f"resume={path if resume == 'path' else 'auto'}"
    )
    with pytest.raises(UnsafeCheckpointError) as info:
        train(compose(overrides))
    assert "\n" not in str(info.value) and "loading it could run code" in str(info.value)
    assert not marker.exists()


def test_evaluate_refuses_it(crafted, capsys):
    from recipes.evaluate import main

    path, marker = crafted
    with pytest.raises(SystemExit) as info:
        main([f"ckpt={path}"])
    assert info.value.code == 2 and "refused" in capsys.readouterr().err and not marker.exists()


def test_yaml_is_loaded_safely(tmp_path):
    """A recipe whose YAML asks for a Python object is refused while composing, and its code does not run."""
    marker = tmp_path / "PWNED"
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "evil.yaml").write_text(
        f"# @package _global_\nname: !!python/object/apply:builtins.exec [\"open('{marker}', 'w').write('x')\"]\n"
    )
    with pytest.raises(Exception, match="could not determine a constructor for the tag"):
        compose([f"hydra.searchpath=[file://{tmp_path}]", "recipe=evil"])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.name=evil_module.Net"], r"^model: unknown name 'evil_module\.Net'; valid: "),
        (["+model._target_=evil_module.Net"], r"^model\._target_: unknown option for model 'gpt_nano'"),
        (["shortcut.name=evil_module.rule"], r"^shortcut: unknown name 'evil_module\.rule'; valid: "),
        (["+shortcut._target_=evil_module.rule"], r"^shortcut\._target_: unknown option for shortcut 'identity'"),
        (["norm.layer=evil_module.Norm"], r"^norm_layer: unknown name 'evil_module\.Norm'; valid: "),
        (["data.name=evil_module.Data"], r"^data: unknown dataset 'evil_module\.Data'; valid: "),
    ],
)
def test_configs_cannot_name_import_paths(tmp_path, monkeypatch, overrides, message):
    """Models, blocks, shortcuts, norms and data are chosen by registry name; an import path is an unknown name,
    and the module it names is never imported."""
    (tmp_path / "evil_module.py").write_text(f"open({str(tmp_path / 'IMPORTED')!r}, 'w').write('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))
    assert "evil_module" not in sys.modules and not (tmp_path / "IMPORTED").exists()
