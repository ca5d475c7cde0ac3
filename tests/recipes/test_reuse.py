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
