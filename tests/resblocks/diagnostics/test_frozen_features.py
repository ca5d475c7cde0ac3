"""kNN and linear-probe accuracy on constructed features: known answers (100 % and chance), and the vote itself."""

from __future__ import annotations

import pytest
import torch

import resblocks
from resblocks.diagnostics import extract_features, knn_accuracy, linear_probe_accuracy


def clusters(n: int, classes: int, dim: int, seed: int, spread: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:classes] * 5.0  # orthogonal class directions: separable by angle and by a plane
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def test_separable_features_give_100_percent() -> None:
    x, y = clusters(600, 5, 16, seed=0)
    q, qy = clusters(200, 5, 16, seed=1)
    assert knn_accuracy(x, y, q, qy, k=20) == 1.0
    assert linear_probe_accuracy(x, y, q, qy) == 1.0


def test_features_unrelated_to_the_labels_give_chance() -> None:
    g = torch.Generator().manual_seed(0)
    x, q = torch.randn(3000, 16, generator=g), torch.randn(2000, 16, generator=g)
    y, qy = torch.randint(0, 4, (3000,), generator=g), torch.randint(0, 4, (2000,), generator=g)
    for acc in (knn_accuracy(x, y, q, qy, k=20), linear_probe_accuracy(x, y, q, qy)):
        assert abs(acc - 0.25) < 0.04  # chance for 4 classes, within ~3.5 standard errors at 2,000 queries


def test_the_knn_vote_is_temperature_weighted_by_cosine_similarity() -> None:
    # Two neighbours of class 0 at similarity 0.6, one of class 1 at 1.0: a plain majority says 0,
    # the weighted vote at T = 0.1 says 1 (e^10 > 2 e^6), at T = 10 says 0 (e^0.1 < 2 e^0.06).
    memory = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([1, 0, 0])
    query, qlabel = torch.tensor([[2.0, 0.0]]), torch.tensor([1])  # scale does not matter (cosine)
    assert knn_accuracy(memory, labels, query, qlabel, k=3, temperature=0.1) == 1.0
    assert knn_accuracy(memory, labels, query, qlabel, k=3, temperature=10.0) == 0.0
    assert knn_accuracy(memory, labels, query, qlabel, k=1) == 1.0
    with pytest.raises(ValueError, match="k: 4"):
        knn_accuracy(memory, labels, query, qlabel, k=4)


def test_features_are_the_models_pooled_pre_logits_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = resblocks.build_model("cifar_resnet20", num_classes=10, in_chans=1, width=4)
    model.train()
    images, labels = torch.randn(10, 1, 16, 16), torch.arange(10)
    feats, got = extract_features(model, [(images[:6], labels[:6]), (images[6:], labels[6:])], transform=lambda x: 2 * x)
    assert model.training  # given back in its mode
    model.eval()
    with torch.no_grad():
        want = model.forward_head(model.forward_features(2 * images), pre_logits=True)
    torch.testing.assert_close(feats, want)
    assert torch.equal(got, labels) and feats.shape == (10, model.num_features)
