"""The library must import with torch alone: no Lightning, Hydra, OmegaConf or W&B."""

import subprocess
import sys

BLOCKED = ["lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb"]


def test_import_without_training_stack() -> None:
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # makes 'import name' raise ImportError\n"
        "import resblocks\n"
        "resblocks.build_model('cifar_resnet20', num_classes=3, shortcut='laurel_rw_lr')\n"
        "resblocks.build_model('gpt_nano', vocab_size=11, block_size=8, shortcut='decayed')\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{BLOCKED!r} and sys.modules[n] is not None)\n"
        "assert not loaded, loaded\n"
        "print('ok', len(resblocks.list_models()), len(resblocks.list_shortcuts()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
