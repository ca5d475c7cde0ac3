"""Batched augmentation: shapes, dtypes, exact crop/flip semantics, determinism, normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recipes.data.augment import STATS, augment, normalize, random_crop, random_hflip


def batch(b: int = 6, c: int = 3, h: int = 5, w: int = 7) -> torch.Tensor:
    # Distinct, non-zero values so every crop/flip position is identifiable (and differs from padding).
    return (torch.arange(b * c * h * w) % 250 + 1).to(torch.uint8).view(b, c, h, w)


def test_crop_is_a_window_of_the_padded_image():
    x, p = batch(), 2
    out = random_crop(x, p, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (p, p, p, p))
    offsets = []
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + x.shape[2], dx : dx + x.shape[3]])
        ]
        assert len(hits) == 1, i
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # offsets are per sample, not one per batch


def test_crop_hand_made():
    x = torch.tensor([[[[1, 2], [3, 4]]]], dtype=torch.uint8)
    outs = {tuple(random_crop(x, 1, torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(60)}
    # 9 offsets of a 2x2 window in the zero-padded 4x4 image.
    assert outs == {
        (0, 0, 0, 1),
        (0, 0, 1, 2),
        (0, 0, 2, 0),
        (0, 1, 0, 3),
        (1, 2, 3, 4),
        (2, 0, 4, 0),
        (0, 3, 0, 0),
        (3, 4, 0, 0),
        (4, 0, 0, 0),
    }
    assert torch.equal(random_crop(x, 0), x)


def test_flip():
    x = batch()
    out = random_hflip(x, 0.5, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    assert torch.equal(random_hflip(x, 1.0), x.flip(-1)) and torch.equal(random_hflip(x, 0.0), x)
    hand = torch.tensor([[[[1, 2, 3]]]], dtype=torch.uint8)
    assert random_hflip(hand, 1.0).flatten().tolist() == [3, 2, 1]


def test_deterministic_given_generator():
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    a = augment(x, 4, True, torch.Generator().manual_seed(7))
    b = augment(x, 4, True, torch.Generator().manual_seed(7))
    c = augment(x, 4, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape


def test_normalize():
    x = torch.full((2, 1, 3, 3), 255, dtype=torch.uint8)
    mean, std = STATS["fmnist"]
    assert (mean, std) == ((0.2860,), (0.3530,))
    y = normalize(x, mean, std)
    assert y.dtype == torch.float32 and torch.allclose(y, torch.full_like(y, (1 - 0.2860) / 0.3530))
    rgb = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    m, s = STATS["cifar10"]
    assert torch.allclose(normalize(rgb, m, s)[0, :, 0, 0], -torch.tensor(m) / torch.tensor(s))
    with pytest.raises(ValueError, match="3 channels but 1"):
        normalize(rgb, mean, std)
    with pytest.raises(ValueError, match="uint8 batch"):
        augment(rgb.float())
