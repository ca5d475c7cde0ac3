"""Data-parallel reduction of the probe's numbers: the mean over ranks, when a process group is running."""

from __future__ import annotations

import torch


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over the ranks of the default process group (one ``all_reduce``).

    Without an initialised ``torch.distributed`` group (one process), ``values`` unchanged. Every rank must
    call it with the same shape (the same model). The mean of per-rank RMS values is not the RMS of the
    global batch; parameter-gradient norms are already equal on every rank after DDP's all-reduce.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


__all__ = ["mean_over_ranks"]
