"""``init_from=PATH``: start a run from the weights of another run (fine-tuning), not from its training state.

The checkpoint holds either the same network (``net.*``; a new head is fine) or a masked autoencoder, whose
encoder (``net.encoder.*``) is a ViT without a head (:class:`resblocks.models.mae.MaskedAutoencoder`), so an
MAE pre-trained with ``recipe=fmnist_mae`` fine-tunes with ``recipe=fmnist_vit init_from=...``. Everything
else (optimiser, schedule, step) starts afresh; ``resume`` is the option that continues a run.
"""

from __future__ import annotations

from pathlib import Path
import torch
from torch import nn

from resblocks.errors import ConfigError

from .plan import WRITTEN_BY, is_bare_state_dict, open_checkpoint

KEY = "init_from"


def check_init_from(path: str | None) -> None:
    """Before anything is built: the file exists (its content is checked when the network is built)."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{KEY}: '{path}' not found; valid: null, or {WRITTEN_BY}")


def initial_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """``(network state dict, what it is)`` from a recipes.train checkpoint or a bare state dict."""
    state = open_checkpoint(path, KEY)
    sd = state if is_bare_state_dict(state) else state.get("state_dict")
    if not sd:
        raise ConfigError(f"{KEY}: '{path}' has no weights (state_dict); valid: {WRITTEN_BY}")
    sd = {k.removeprefix("net."): v for k, v in sd.items()}
    if any(k.startswith("encoder.") for k in sd) and any(k.startswith("decoder") for k in sd):
        return {k.removeprefix("encoder."): v for k, v in sd.items() if k.startswith("encoder.")}, "an MAE's encoder"
    return sd, "a network"


def head_names(net: nn.Module) -> set[str]:
    """The classifier's parameter names (timm interface: ``get_classifier``), which may differ in shape."""
    get = getattr(net, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module):
        return set()
    prefix = next((n for n, m in net.named_modules() if m is head), None)
    return {f"{prefix}.{n}" for n, _ in head.named_parameters()} if prefix else set()


def load_initial_weights(net: nn.Module, path: str | Path) -> str:
    """Load ``path``'s weights into ``net`` (every tensor but the head must match by name and shape);
    returns one line saying what was loaded."""
    sd, what = initial_weights(path)
    own, head = net.state_dict(), head_names(net)
    unexpected = sorted(k for k in sd if k not in own and k not in head)
    shape = sorted(k for k in sd if k in own and k not in head and sd[k].shape != own[k].shape)
    missing = sorted(k for k in own if k not in sd and k not in head)
    for problem, names in (("has tensors the network lacks", unexpected), ("differs in shape", shape),
                           ("lacks tensors of the network", missing)):  # fmt: skip
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise ConfigError(
                f"{KEY}: '{path}' ({what}) {problem}: {names[0]}{more}; valid: a checkpoint of the same network, "
                "or an MAE whose encoder has this ViT's sizes and pooling (image_size, patch_size, depth, dim, heads, mlp_ratio, pool)"
            )
    keep = {k: v for k, v in sd.items() if k in own and (k not in head or v.shape == own[k].shape)}
    net.load_state_dict(keep, strict=False)
    fresh = sorted(head - keep.keys())
    return f"{KEY}: {len(keep)} tensors of {what} from {path}" + (f"; new {', '.join(fresh)}" if fresh else "")


__all__ = ["check_init_from", "initial_weights", "load_initial_weights"]
