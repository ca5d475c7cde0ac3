"""Frozen-feature quality of an encoder: weighted kNN and linear-probe accuracy on its pooled features.

The two evaluations self-supervised papers report (MAE, He et al. 2021, arXiv 2111.06377, Sec. 4 and A.2;
the decayed-identity paper, Zhang et al. 2024, arXiv 2404.10947, Table 1): the encoder is frozen, every
image becomes one feature vector (``model.forward_head(model.forward_features(x), pre_logits=True)``, the
timm interface every image model of the library has), and

* **kNN** (Wu et al. 2018, arXiv 1805.01978, the weighted vote DINO uses): cosine similarity of each query
  to every memory feature, the ``k`` nearest vote for their label with weight ``exp(sim / temperature)``;
* **linear probe**: a linear classifier on the frozen features, standardised by the memory's mean and
  standard deviation (MAE's probe puts a ``BatchNorm`` without affine before its linear layer: at eval time
  the same thing), trained to convergence by full-batch L-BFGS on the cross-entropy with a small L2 penalty.
  (MAE trains it with LARS for 90 epochs; on features of this size L-BFGS reaches the same optimum in seconds.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Batches,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32, labels [N])`` of ``(images, labels)`` batches through the frozen ``model``.

    ``transform``: applied to each image batch on ``device`` (e.g. the DataModule's normalisation);
    ``autocast``: a context for the forward (e.g. the trainer's precision). The model is put in eval mode
    for the pass and given back in the mode it was in.
    """
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for x, y in batches:
            x = x.to(device) if device is not None else x
            if transform is not None:
                x = transform(x)
            with autocast() if autocast is not None else nullcontext():
                f = model.forward_head(model.forward_features(x), pre_logits=True)
            feats.append(f.float().flatten(1).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def knn_accuracy(
    memory: torch.Tensor,
    memory_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk: int = 512,
) -> float:
    """Top-1 accuracy of the temperature-weighted kNN vote (cosine similarity, ``k`` neighbours).

    DINO's ``knn_classifier`` (Caron et al. 2021, arXiv 2104.14294; k=20, T=0.07 are its defaults).
    """
    if not 1 <= k <= len(memory):
        raise ValueError(f"k: {k}; valid: 1 <= k <= {len(memory)} (the memory's size)")
    num_classes = num_classes or int(max(memory_labels.max(), query_labels.max())) + 1
    memory = F.normalize(memory.float(), dim=1)
    correct = 0
    for start in range(0, len(queries), chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sim, idx = (q @ memory.T).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, memory_labels[idx], (sim / temperature).exp())
        correct += int((votes.argmax(dim=1) == query_labels[start : start + chunk]).sum())
    return correct / len(queries)


def linear_probe_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    weight_decay: float = 1e-4,
    max_iter: int = 300,
) -> float:
    """Top-1 test accuracy of a linear classifier trained on the standardised frozen ``train`` features."""
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    train, test = train.double(), test.double()
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    train, test = (train - mean) / std, (test - mean) / std
    generator = torch.Generator().manual_seed(0)
    head = nn.Linear(train.shape[1], num_classes, dtype=torch.float64)
    nn.init.normal_(head.weight, std=0.01, generator=generator)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(train), train_labels) + weight_decay / 2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float((head(test).argmax(dim=1) == test_labels).double().mean())


__all__ = ["extract_features", "knn_accuracy", "linear_probe_accuracy"]
