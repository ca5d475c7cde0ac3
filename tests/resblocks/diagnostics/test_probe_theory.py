"""The probe reproduces what theory says about library models at initialisation.

* Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture" (arXiv 2002.04745), Lemma 1:
  in a Pre-LN Transformer the stream's expected squared norm grows (linearly) with the layer index, while
  Post-LN normalises the stream after every sub-layer, so its scale is the same at every depth.
* He et al. 2016 (arXiv 1512.03385, Sec. 4.1) and Balduzzi et al. 2017 ("The Shattered Gradients Problem",
  arXiv 1702.08591): without shortcuts, the gradient reaching a layer changes by orders of magnitude with
  its depth (with BatchNorm it grows geometrically towards the input: Yang et al. 2019, arXiv 1902.08129);
  identity shortcuts keep it within about one order of magnitude.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import resblocks
from resblocks.diagnostics import ResidualProbe, SubLayerStats


def gpt_at_init(norm: str) -> list[SubLayerStats]:
    torch.manual_seed(0)
    model = resblocks.build_model("gpt", vocab_size=64, block_size=32, depth=8, dim=64, heads=4, norm=norm)
    idx = torch.randint(0, 64, (8, 32), generator=torch.Generator().manual_seed(0))
    with ResidualProbe(model) as probe:
        logits = model(idx)
        F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
        return probe.collect()


def test_pre_ln_stream_grows_post_ln_stays_flat() -> None:
    pre, post = gpt_at_init("pre_ln"), gpt_at_init("post_ln")
    assert len(pre) == len(post) == 16
    pre_rms = [r.x_rms for r in pre] + [pre[-1].out_rms]
    assert all(b > a for a, b in zip(pre_rms, pre_rms[1:])), pre_rms  # grows at every sub-layer
    assert pre_rms[-1] / pre_rms[0] > 1.15
    # Xiong et al.'s E||x_l||^2 grows by a positive amount per sub-layer: squared RMS increments all > 0.
    sq = [v * v for v in pre_rms]
    assert min(b - a for a, b in zip(sq, sq[1:])) > 0
    # Post-LN: every sub-layer's output is a LayerNorm output (unit RMS at gain 1, bias 0), at every depth.
    post_rms = [r.out_rms for r in post]
    assert max(post_rms) / min(post_rms) < 1.01 and abs(post_rms[0] - 1) < 0.01, post_rms
    assert max(r.x_rms for r in post[1:]) / min(r.x_rms for r in post[1:]) < 1.01


def decades_of_grad_rms(shortcut: str) -> float:
    torch.manual_seed(0)
    model = resblocks.build_model("cifar_resnet", depth=56, shortcut=shortcut, num_classes=10)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
    with ResidualProbe(model) as probe:
        F.cross_entropy(model(x), y).backward()
        grads = [r.grad_rms for r in probe.collect()]
    assert len(grads) == 27 and all(v > 0 for v in grads)
    return math.log10(max(grads) / min(grads))


def test_plain_net_gradients_span_orders_of_magnitude_more() -> None:
    plain, residual = decades_of_grad_rms("none"), decades_of_grad_rms("identity")
    assert plain > 3 and residual < 1.5 and plain - residual > 2, (plain, residual)
