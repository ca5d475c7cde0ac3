"""weighted_sum: the fused ``sum_j w_j t_j`` behind LAuReL's RW and PA terms equals the plain expression, gradients included."""

from __future__ import annotations

import pytest
import torch

from resblocks.shortcuts.weighted_sum import weighted_sum


def _plain_and_fused(terms_fn, weights: torch.Tensor):
    """Forward and backward of the plain expression and of weighted_sum, on independent leaf copies."""
    out = []
    for fused in (False, True):
        w = weights.clone().requires_grad_(True)
        terms = [t.detach().clone().requires_grad_(True) for t in terms_fn()]  # clone keeps strides (preserve_format)
        y = weighted_sum(w, terms) if fused else sum(w[j] * t for j, t in enumerate(terms))
        grad = torch.arange(y.numel(), dtype=torch.float32).reshape(y.shape).sin().to(y.dtype)
        y.backward(grad)
        out.append((y, w.grad, [t.grad for t in terms]))
    return out


@pytest.mark.parametrize("shape", [(2, 5, 8), (3, 4, 6, 6)])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_matches_plain_expression_and_its_gradients(shape, n) -> None:
    torch.manual_seed(0)
    terms = [torch.randn(shape) for _ in range(n)]
    (y0, gw0, gt0), (y1, gw1, gt1) = _plain_and_fused(lambda: terms, torch.randn(n))
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(gw1, gw0)
    for a, b in zip(gt1, gt0):
        torch.testing.assert_close(a, b)


def test_non_contiguous_and_channels_last_terms() -> None:
    torch.manual_seed(1)
    a = torch.randn(2, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    b = torch.randn(2, 5, 5, 6).permute(0, 3, 1, 2)  # non-contiguous

    def terms():  # clone() keeps each layout
        return [a, b]

    (y0, gw0, gt0), (y1, gw1, gt1) = _plain_and_fused(terms, torch.tensor([0.3, -1.2]))
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(gw1, gw0)
    assert y1.is_contiguous(memory_format=torch.channels_last)  # the first term's layout


def test_mixed_precision_promotes_like_the_plain_sum() -> None:
    torch.manual_seed(2)
    fx, x = torch.randn(2, 4, 8).bfloat16(), torch.randn(2, 4, 8)  # bf16 branch output, fp32 stream (autocast)
    (y0, gw0, gt0), (y1, gw1, gt1) = _plain_and_fused(lambda: [fx, x], torch.tensor([0.7, 1.1]))
    assert y1.dtype == y0.dtype == torch.float32
    assert gt1[0].dtype == torch.bfloat16 and gt1[1].dtype == torch.float32
    # The plain sum rounds w_0 * fx to bf16 first; the fused one forms it in the fp32 result.
    torch.testing.assert_close(y1, torch.tensor(0.7) * fx.float() + torch.tensor(1.1) * x)
    torch.testing.assert_close(y1, y0, rtol=1.6e-2, atol=1e-2)
    torch.testing.assert_close(gw1, gw0, rtol=1e-2, atol=1e-2)  # bf16 products
    torch.testing.assert_close(gt1[0], gt0[0])


def test_unit_weights_are_exactly_the_plain_sum() -> None:
    a, b = torch.randn(3, 7), torch.randn(3, 7)
    assert torch.equal(weighted_sum(torch.ones(2), [a, b]), a + b)


def test_one_weight_per_term() -> None:
    with pytest.raises(ValueError, match="one scalar per term"):
        weighted_sum(torch.ones(3), [torch.randn(2), torch.randn(2)])


def test_fixed_weights_still_give_term_gradients() -> None:
    a, b = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    w = torch.tensor([0.5, -2.0])  # no gradient wanted: the terms are not kept for backward
    weighted_sum(w, [a, b]).sum().backward()
    torch.testing.assert_close((a.grad, b.grad), (torch.full((3, 5), 0.5), torch.full((3, 5), -2.0)))


def test_all_bf16_terms() -> None:
    torch.manual_seed(3)
    terms = [torch.randn(4, 6, 8).bfloat16() for _ in range(3)]
    (y0, gw0, gt0), (y1, gw1, gt1) = _plain_and_fused(lambda: terms, torch.tensor([0.5, -0.25, 2.0]))
    assert y1.dtype == torch.bfloat16 and gw1.dtype == torch.float32
    torch.testing.assert_close(y1, y0, rtol=1.6e-2, atol=2e-2)
    torch.testing.assert_close(gw1, gw0, rtol=2e-2, atol=5e-2)
    for a, b in zip(gt1, gt0):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("base_dtype", [torch.float32, torch.bfloat16])
def test_base_is_a_unit_weight_term(base_dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    base = torch.randn(2, 3, 4, 4).to(base_dtype).requires_grad_(True)
    terms = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(2)]
    w = torch.tensor([0.4, -1.5], requires_grad=True)
    y = weighted_sum(w, terms, base=base)
    expected = base.float() + w[0] * terms[0] + w[1] * terms[1]
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(y)
    got, want = (torch.autograd.grad(t, (w, base, *terms), grad) for t in (y, expected))
    assert got[1].dtype == base_dtype
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
