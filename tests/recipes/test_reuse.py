"""A resblocks block and model dropped into a plain user LightningModule that is not ours (docs/reuse.md)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import resblocks


class UserTokenClassifier(L.LightningModule):
    """What a user writes: their own module, one resblocks block in the middle."""

    def __init__(self, vocab: int = 16, dim: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.block = resblocks.build_block(
            "transformer", dim, 4, norm="peri_ln", shortcut={"name": "laurel_rw_lr", "rank": 8}
        )
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(ids)).mean(1))

    def training_step(self, batch, _):
        ids, y = batch
        loss = F.cross_entropy(self(ids), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class UserImageModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = resblocks.build_model("cifar_resnet20", num_classes=2, in_chans=1, shortcut="decayed")

    def training_step(self, batch, _):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def fit(module: L.LightningModule, data: TensorDataset, steps: int) -> None:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(data, batch_size=16, shuffle=True))


def test_block_in_user_lightning_module_learns() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 16, (64, 12))
    y = (ids == 3).any(1).long()  # a learnable rule: does token 3 occur?
    module = UserTokenClassifier()
    before = F.cross_entropy(module(ids), y).item()
    fit(module, TensorDataset(ids, y), steps=60)
    after = F.cross_entropy(module(ids), y).item()
    assert after < 0.5 * before


def test_model_in_user_lightning_module_trains() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 2, (32,))
    module = UserImageModule()
    w0 = [p.detach().clone() for p in module.parameters()]
    fit(module, TensorDataset(x, y), steps=3)
    assert module.trainer.global_step == 3
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(w0, module.parameters()))


# --- lightning-hydra-template: its model config with `net: {_target_: resblocks.build_model, ...}` (docs/reuse.md)


class TemplateModule(L.LightningModule):
    """lightning-hydra-template's MNISTLitModule, reduced to what checkpoints see: the same constructor and
    ``save_hyperparameters`` call (``ignore`` as the docs' fix 1 says, or as the template has it)."""

    ignore: list[str] | None = ["net"]

    def __init__(self, net: nn.Module, optimizer, scheduler, compile: bool) -> None:  # noqa: A002
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=self.ignore)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def test_step(self, batch, _):
        x, y = batch
        self.log("test/loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=self.trainer.model.parameters())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.hparams.scheduler(optimizer=optimizer),
                                                         "monitor": "train/loss", "interval": "epoch"}}


class TemplateAsShipped(TemplateModule):
    ignore = None  # the template's own `self.save_hyperparameters(logger=False)`


def template_config(module: type) -> "DictConfig":  # noqa: F821
    import re
    from pathlib import Path

    from omegaconf import OmegaConf

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reuse.md").read_text()
    section = doc[doc.index("## A model in lightning-hydra-template"):]
    cfg = OmegaConf.create(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    cfg._target_ = f"{__name__}.{module.__name__}"
    return cfg


def test_lightning_hydra_template_swap_and_its_checkpoint_pitfalls(tmp_path) -> None:
    import pytest
    from hydra.utils import instantiate

    data = DataLoader(TensorDataset(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))), batch_size=8)

    def fit(module: L.LightningModule, root: str) -> tuple[L.Trainer, str]:
        trainer = L.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(tmp_path / root))
        trainer.fit(module, data)
        return trainer, trainer.checkpoint_callback.best_model_path

    torch.manual_seed(0)
    shipped = instantiate(template_config(TemplateAsShipped))
    assert type(shipped.net.stages[0][0].shortcut).__name__ == "LaurelRWLR" and shipped.net.in_chans == 1
    trainer, ckpt = fit(shipped, "shipped")
    with pytest.raises(Exception, match="Weights only load failed"):  # pitfall 1: the pickled nn.Module
        trainer.test(shipped, data, ckpt_path=ckpt, verbose=False)

    model = instantiate(template_config(TemplateModule))  # fix 1: save_hyperparameters(ignore=["net"])
    trainer, ckpt = fit(model, "fixed")
    with pytest.raises(Exception, match="Weights only load failed"):  # pitfall 2: the optimizer's partial
        trainer.test(model, data, ckpt_path=ckpt, verbose=False)
    trainer.test(model, data, ckpt_path=ckpt, verbose=False, weights_only=False)  # fix 2, a trusted file
    net = instantiate(template_config(TemplateModule).net)
    loaded = TemplateModule.load_from_checkpoint(ckpt, net=net, weights_only=False)
    for a, b in zip(loaded.net.state_dict().values(), model.net.state_dict().values()):
        torch.testing.assert_close(a, b)

    import importlib

    names = torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)  # fix 2, allow-listed
    assert not any(n.startswith("resblocks") for n in names)
    allowed = [getattr(importlib.import_module(n.rpartition(".")[0]), n.rpartition(".")[2]) for n in names]
    with torch.serialization.safe_globals(allowed):
        TemplateModule.load_from_checkpoint(ckpt, net=instantiate(template_config(TemplateModule).net))
