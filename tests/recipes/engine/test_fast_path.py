"""The fast path (``recipes/engine/fast_path.py``): the decision rules, and that a recipe run really uses them.

The rules are checked on made-up machines (CPU with and without AVX512-BF16, a bf16 GPU, an old
GPU) by monkeypatching torch's capability checks; the runs check on this machine's CPU that
``auto`` trains under bf16 autocast (where the CPU has bf16), channels-last and a fused optimiser.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from recipe_helpers import compose, run, tiny
from reliability_helpers import Crash, CrashAt
from torch import nn

import resblocks
from benchmarks.loop import default_fast_path
from recipes.build import fast_path_for, validate
from recipes.engine.fast_path import FastPath, bf16_supported, decide, device_type, is_conv_net
from recipes.modules.optim import OptimizerSettings, build_optimizer
from recipes.engine.precision import BF16MixedPrecision, trainer_precision
from resblocks.errors import ConfigError

TINY_GPT = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=1", "sample.tokens=0"]
STEPS = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.val_check_interval=2", "test=false"]


# The recipe-level tests run the bf16 path: by `auto` on a CPU with native bf16 (this project's machines),
# explicitly elsewhere (oneDNN emulates it there), so they test the same path on any CPU.
BF16_HERE = [] if bf16_supported("cpu") else ["trainer.precision=bf16-mixed"]


@pytest.fixture
def cpu_bf16(monkeypatch):
    """``cpu_bf16(avx512_bf16, amx)``: pretend the CPU has (or lacks) these instructions."""

    def set_cpu(avx512_bf16: bool, amx: bool = False) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)

    return set_cpu


@pytest.fixture
def gpu(monkeypatch):
    """``gpu(major)``: pretend a CUDA GPU of compute capability ``major`` (8 = Ampere: native bf16) is present."""

    def set_gpu(major: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"major": major})())

    return set_gpu


# ----------------------------------------------------------------------------- the rules


def test_cpu_with_avx512_bf16_gets_bf16_channels_last_fused_no_compile(cpu_bf16):
    cpu_bf16(avx512_bf16=True)
    d = decide("cpu", conv_net=True, optimizer="sgd")
    assert (d.precision, d.path.bf16, d.path.channels_last, d.path.fused, d.path.compile) == (
        "bf16-mixed", True, True, True, False
    )  # fmt: skip
    assert d.line() == "fast path: bf16-mixed (CPU has AVX512-BF16), channels-last, fused SGD, no compile (CPU)"
    cpu_bf16(avx512_bf16=False, amx=True)
    assert decide("cpu", conv_net=False).why["precision"] == "CPU has AMX"


def test_cpu_without_bf16_stays_fp32(cpu_bf16):
    cpu_bf16(avx512_bf16=False, amx=False)
    d = decide("cpu", conv_net=False)
    assert d.precision == "32-true" and not d.path.bf16 and not d.path.channels_last and d.path.fused
    assert d.line() == "fast path: 32-true (CPU has no AVX512-BF16/AMX), fused AdamW, no compile (CPU)"
    assert not bf16_supported("cpu") and not default_fast_path(torch.device("cpu"), conv_net=True).bf16


def test_cuda_compiles_and_uses_bf16_only_where_native(gpu):
    gpu(major=9)
    d = decide("cuda", conv_net=True)
    assert d.precision == "bf16-mixed" and d.path.compile and d.path.fused and d.path.channels_last
    assert default_fast_path(torch.device("cuda"), conv_net=False) == FastPath(bf16=True, fused=True, compile=True)
    gpu(major=7)  # V100: bf16 only emulated, slower than fp32
    assert decide("cuda", conv_net=True).precision == "32-true"
    assert device_type("gpu") == device_type("auto") == "cuda" and device_type("cpu") == "cpu"


def test_explicit_values_win(cpu_bf16, gpu):
    cpu_bf16(avx512_bf16=True)
    d = decide("cpu", conv_net=True, precision="32-true", channels_last=False, fused=False, compile=True)
    assert d.precision == "32-true" and d.path == FastPath(compile=True)
    assert "32-true (trainer.precision)" in d.line() and "no channels-last (channels_last=false)" in d.line()
    gpu(major=9)
    d = decide("cuda", conv_net=False, precision="16-mixed", channels_last=True, compile=False)
    assert d.precision == "16-mixed" and not d.path.bf16 and d.path.channels_last and not d.path.compile


def test_16_mixed_with_clipping_cannot_fuse():
    """The fused step unscales 16-mixed gradients itself: Lightning cannot clip them first."""
    assert not decide("cpu", conv_net=False, precision="16-mixed", clip_gradients=True).path.fused
    assert decide("cpu", conv_net=False, precision="16-mixed").path.fused
    with pytest.raises(
        ConfigError, match=r"^optim\.fused: true with trainer\.precision=16-mixed and gradient clipping"
    ):
        decide("cpu", conv_net=False, precision="16-mixed", fused=True, clip_gradients=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("compile=maybe", r"^compile: 'maybe'; valid: auto, true, false$"),
        ("channels_last=yes", r"^channels_last: 'yes'; valid: auto, true, false$"),
        ("optim.fused=on", r"^optim\.fused: 'on'; valid: auto, true, false$"),
        ("trainer.precision=fast", r"^trainer\.precision: 'fast'; valid: auto, 64-true"),
    ],
)
def test_bad_switch_is_one_line(override, message):
    cfg = compose(["recipe=fmnist_resnet20", "trainer=cpu", "logger=none", override])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_conv_nets_are_told_from_a_vit_and_a_gpt():
    with torch.device("meta"):
        assert is_conv_net(resblocks.build_model("cifar_resnet20", num_classes=10))
        assert not is_conv_net(resblocks.build_model("vit_fmnist", num_classes=10))  # one conv: the patch embedding
        assert not is_conv_net(resblocks.build_model("gpt_nano", vocab_size=65))


# ----------------------------------------------------------------------------- the pieces


def test_optimizer_state_takes_its_parameters_layout():
    """Moments saved by a channels-last run, resumed into an NCHW net: without matching layouts the fused
    kernel pairs the wrong elements (checked against the unfused update, which is layout-safe)."""
    updated = {}
    for fused in (False, True):
        src = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        src.weight.data.copy_(torch.linspace(-1, 1, src.weight.numel()).view(4, 3, 3, 3))
        opt = build_optimizer(src, OptimizerSettings(name="sgd", lr=0.1, fused=fused))
        src.weight.grad = (
            torch.linspace(0, 1, src.weight.numel()).view(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
        )
        src.bias.grad = torch.ones(4)
        opt.step()
        dst = nn.Conv2d(3, 4, 3)
        dst.load_state_dict(src.state_dict())
        opt2 = build_optimizer(dst, OptimizerSettings(name="sgd", lr=0.1, fused=fused))
        opt2.load_state_dict(opt.state_dict())
        assert opt2.state[dst.weight]["momentum_buffer"].stride() == dst.weight.stride()
        dst.weight.grad, dst.bias.grad = torch.zeros_like(dst.weight), torch.zeros(4)
        opt2.step()  # momentum only: the update is -lr * buffer
        updated[fused] = dst.weight.detach().clone()
    torch.testing.assert_close(updated[True], updated[False], rtol=0, atol=1e-7)


def test_bf16_plugin_clips_a_fused_optimizer():
    """Lightning's own bf16-mixed plugin refuses (issue #21435); ours clips to the norm asked for."""
    from lightning.pytorch.plugins.precision import MixedPrecision
    from lightning.pytorch.utilities import GradClipAlgorithmType

    layer = nn.Linear(4, 4)
    opt = build_optimizer(layer, OptimizerSettings(fused=True))
    layer.weight.grad, layer.bias.grad = torch.full((4, 4), 10.0), torch.full((4,), 10.0)
    with pytest.raises(RuntimeError, match="fused"):
        MixedPrecision("bf16-mixed", "cpu").clip_gradients(opt, 1.0, GradClipAlgorithmType.NORM)
    BF16MixedPrecision("cpu").clip_gradients(opt, 1.0, GradClipAlgorithmType.NORM)
    norm = torch.linalg.vector_norm(torch.cat([layer.weight.grad.flatten(), layer.bias.grad]))
    assert norm == pytest.approx(1.0, rel=1e-5)
    assert trainer_precision("bf16-mixed", "cpu", "fsdp") == {"precision": "bf16-mixed"}  # FSDP brings its own


# ----------------------------------------------------------------------------- real runs on this CPU


class Observe(Callback):
    """Records, during training steps, the first linear/conv layer's input and output, and the optimiser."""

    def __init__(self, layer: type[nn.Module]) -> None:
        self.layer, self.seen = layer, []

    def on_train_start(self, trainer, pl_module):
        self.precision = trainer.precision_plugin
        self.optimizer = trainer.optimizers[0]
        first = next(m for m in pl_module.net.modules() if isinstance(m, self.layer))
        self.handle = first.register_forward_hook(lambda m, i, o: self.seen.append((i[0], o)) if m.training else None)

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()


@pytest.mark.skipif(not bf16_supported("cpu"), reason="this CPU has no AVX512-BF16/AMX: auto stays fp32")
def test_gpt_recipe_trains_under_bf16_autocast_with_fused_adamw_and_clipping(tiny_data, tmp_path, capsys):
    seen = Observe(nn.Linear)
    clip = "trainer.gradient_clip_val=1.0"  # nanoGPT's setting; the recipe ships without clipping
    summary = run(tiny("shakespeare_gpt", tiny_data, tmp_path, *TINY_GPT, *STEPS, *BF16_HERE, clip), callbacks=[seen])
    assert summary.steps == 2  # clipping with a fused AdamW under bf16-mixed: no Lightning error
    assert "fast path: bf16-mixed (" in capsys.readouterr().out
    assert isinstance(seen.precision, BF16MixedPrecision)
    assert seen.seen and all(out.dtype == torch.bfloat16 for _, out in seen.seen)
    assert seen.optimizer.defaults["fused"] is True and isinstance(seen.optimizer, torch.optim.AdamW)


def test_recipe_decision_follows_the_accelerator(tiny_data, cpu_bf16):
    cfg = compose(tiny("fmnist_resnet20", tiny_data, "unused"))
    dm = validate(cfg)
    cpu_bf16(avx512_bf16=False)
    d = fast_path_for(cfg, dm)
    assert (d.device, d.precision, d.path.channels_last, d.path.compile) == ("cpu", "32-true", True, False)
    cfg = compose(tiny("fmnist_vit", tiny_data, "unused", "compile=true"))
    d = fast_path_for(cfg, validate(cfg))
    assert not d.path.channels_last and d.path.compile  # a ViT is not a conv net; explicit compile wins


def test_resnet_runs_channels_last_resumes_exactly_and_evaluates_either_way(tiny_data, tmp_path, capsys):
    """bf16 autocast, channels-last activations and fused SGD; deterministic across a resume (optimiser state
    included); the checkpoint does not depend on the layout."""
    from recipes.evaluate import evaluate

    steps = ["trainer.max_steps=4", "checkpoint.every_n_steps=2", "trainer.limit_val_batches=1", "test=false"]

    def args(run_dir, *extra):
        return tiny(
            "fmnist_resnet20", tiny_data, run_dir, *steps, "data.batch_size=4", "trainer.deterministic=true",
            *BF16_HERE, *extra,
        )  # fmt: skip

    seen = Observe(nn.Conv2d)
    run(args(tmp_path / "straight"), callbacks=[seen])
    assert "channels-last, fused SGD" in capsys.readouterr().out
    x, out = seen.seen[0]
    assert out.shape[1] > 1 and out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert seen.optimizer.defaults["fused"] is True and isinstance(seen.optimizer, torch.optim.SGD)

    with pytest.raises(Crash):
        run(args(tmp_path / "resumed"), callbacks=[CrashAt(3)])
    run(args(tmp_path / "resumed", "resume=auto"))
    resumed, straight = (
        torch.load(tmp_path / r / "checkpoints" / "last.ckpt", weights_only=True) for r in ("resumed", "straight")
    )
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
    stored = straight["resblocks"]["config"]["trainer"]["precision"]
    assert stored == ("bf16-mixed" if BF16_HERE else "auto")  # the stored config keeps the setting

    fp32 = ["trainer.precision=32-true"]
    ckpt = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    nchw, nhwc = evaluate(ckpt, [*fp32, "channels_last=false"]), evaluate(ckpt, [*fp32, "channels_last=true"])
    assert nchw["test/loss"] == pytest.approx(nhwc["test/loss"], rel=1e-4)
