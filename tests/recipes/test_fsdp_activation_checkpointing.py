"""``fsdp.activation_checkpointing=true`` with a rule that reads earlier activations (LAuReL-PA) trains on the CPU.

FSDP itself needs CUDA here, so this drives the very code the recipes' FSDP strategy runs: our
``AtomicFSDPStrategy`` built with ``activation_checkpointing_policy={Residual}`` (as ``recipes.train`` does),
and Lightning's ``_setup_activation_checkpointing`` applying its kwargs to the recipe's network. The
checkpointed network must train to the same weights as the plain one.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from lightning.fabric.strategies.fsdp import _setup_activation_checkpointing
from recipe_helpers import compose
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

import resblocks
from recipes.build import model_spec
from recipes.runs.checkpoints import AtomicFSDPStrategy


@pytest.mark.parametrize("rule", ["laurel_rw_lr_pa", "laurel_pa", "identity"])
def test_recipe_network_trains_the_same_under_the_fsdp_checkpointing_policy(rule: str) -> None:
    cfg = compose(["fsdp.activation_checkpointing=true", f"shortcut={rule}", "residual.drop_path_rate=0.1",
                   "+model.depth=2", "+model.dim=32", "+model.heads=2"])  # fmt: skip
    name, opts = model_spec(cfg)
    torch.manual_seed(0)
    plain = resblocks.build_model(name, vocab_size=65, **opts).train()
    strategy = AtomicFSDPStrategy(activation_checkpointing_policy={resblocks.Residual})
    ckpt = copy.deepcopy(plain)
    _setup_activation_checkpointing(ckpt, strategy._activation_checkpointing_kwargs)
    assert sum(isinstance(m, CheckpointWrapper) for m in ckpt.modules()) == 2 * 2
    idx = torch.randint(0, 65, (4, 16), generator=torch.Generator().manual_seed(1))
    for model in (plain, ckpt):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        torch.manual_seed(2)  # the same stochastic-depth masks in both
        for _ in range(3):
            opt.zero_grad()
            logits = model(idx[:, :-1])
            F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).backward()
            opt.step()
    for (n, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=n)
