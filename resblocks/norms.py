"""Normalisation layers chosen by name: ``layernorm`` or ``rmsnorm`` (tokens), ``batchnorm`` (images)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .registry import Registry

NormFactory = Callable[[int], nn.Module]
NORMS: Registry[NormFactory] = Registry("norm_layer")


@NORMS.register("layernorm")
def layer_norm(dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    return nn.LayerNorm(dim, eps=eps, bias=bias)


@NORMS.register("rmsnorm")
def rms_norm(dim: int, eps: float = 1e-6) -> nn.Module:
    # torch's fused RMSNorm (Zhang & Sennrich 2019): x / rms(x) * g, no bias.
    return nn.RMSNorm(dim, eps=eps)


@NORMS.register("batchnorm")
def batch_norm(dim: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm2d(dim, eps=eps, momentum=momentum)


def norm_factory(name: str, **options: float | bool) -> NormFactory:
    """``norm_factory("rmsnorm")(256)`` -> ``nn.RMSNorm(256)``; the name is checked now, not at first use."""
    NORMS.check_options(name, options)
    fn = NORMS.get(name)
    return lambda dim: fn(dim, **options)


def is_norm(module: nn.Module) -> bool:
    """Norm layers are excluded from weight decay by the training recipes."""
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm))


__all__ = ["NORMS", "NormFactory", "norm_factory", "is_norm"]
