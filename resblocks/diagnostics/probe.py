"""``ResidualProbe``: per-sub-layer statistics of any model made of resblocks ``Residual`` sub-layers.

Every residual sub-layer of the library is one :class:`~resblocks.blocks.residual.Residual`, so one set
of hooks on that wrapper sees every model and every rule: the stream entering it (a forward pre-hook),
the branch output after the branch norm (a forward hook on ``branch_norm``, only where modifiers follow
it), ``F`` and the shortcut input ``s`` as the rule receives them (a forward pre-hook on the rule), what
leaves it (a forward hook) and ``dL/dx`` (a tensor hook on its input). What each number is:
:class:`~resblocks.diagnostics.record.SubLayerStats`.

The questions are the papers': Pre-LN streams grow with depth while Post-LN's are normalised (Xiong et
al. 2020, "On Layer Normalization in the Transformer Architecture", arXiv 2002.04745, Lemma 1); plain
deep nets propagate gradients badly where residual ones do not (He et al. 2016, arXiv 1512.03385,
Sec. 4.1; Balduzzi et al. 2017, "The Shattered Gradients Problem", arXiv 1702.08591); learned residual
weights drift (LAuReL, arXiv 2411.07501; Zhang et al. 2024, arXiv 2404.10947); the shortcut shapes the
features' effective rank (Zhang et al. 2024, after Roy & Vetterli 2007).

Contract:

* **Off unless attached.** ``attach()`` / ``detach()`` or ``with ResidualProbe(model) as probe:``;
  ``detach`` removes every module hook and every tensor hook still pending, so a detached model runs
  exactly the code it ran before, with no hook left.
* **Exact.** The hooks only read: no tensor is changed, nothing is saved for autograd, no random number
  is drawn, so outputs, gradients and buffers are bit-identical with and without the probe (tested,
  also with activation checkpointing: a recomputed sub-layer is not recorded twice).
* **No host sync in forward or backward.** Statistics are 0-dim float32 tensors on the model's device
  (float32 also under bf16 autocast); :meth:`ResidualProbe.collect` moves them to the host, once.
* **One step per collect.** The probe records the first forward of each sub-layer after ``attach()`` or
  the last ``collect()``, and that forward's backward; later forwards (gradient-accumulation micro-
  batches, a checkpoint's recomputation) are not recorded. Call ``collect()`` after ``backward()`` and
  before the gradients are zeroed (branch gradient norms are read from ``.grad`` then; they include
  accumulation over micro-batches and, under a ``GradScaler``, the loss scale, as ``dL/dx`` does).
* **Data parallel (DDP).** Every number is the rank's own (its local batch); parameter-gradient norms
  are the same on every rank after DDP's all-reduce. ``reduce=True`` replaces each number by its mean
  over ranks (one ``all_reduce`` in ``collect()``, which every rank must then call); without an
  initialised process group it changes nothing. Sharded parameters (FSDP) give each rank its shard's norm.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..blocks.residual import Residual
from ..errors import ConfigError
from . import stats
from .effective_rank import effective_rank as erank_of
from .effective_rank import feature_rows
from .record import QUANTITIES, SubLayerStats
from .reduce import mean_over_ranks

# Wrappers that insert a level into module names without being part of the model's structure.
_WRAPPER_NAMES = frozenset({"_checkpoint_wrapped_module", "_orig_mod", "_fsdp_wrapped_module"})


def _clean(name: str) -> str:
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_NAMES)


class ResidualProbe:
    """Records :class:`SubLayerStats` for every ``Residual`` in ``model``, in network (module) order.

    >>> probe = ResidualProbe(model)
    >>> with probe:
    ...     loss_fn(model(x), y).backward()
    ...     records = probe.collect()        # list[SubLayerStats], one per residual sub-layer

    Args:
        model: any module containing ``resblocks`` ``Residual`` sub-layers (wrapped by DDP or activation
            checkpointing or not).
        effective_rank: also record the effective rank of each sub-layer's output features (Roy &
            Vetterli 2007) on ``rank_rows`` rows; off by default (it keeps those rows until ``collect()``
            and runs one SVD per sub-layer there).
        rank_rows: the bound on the rows of that sample (tokens, or spatial positions of all samples).
        reduce: average every number over data-parallel ranks in ``collect()`` (see the module docs).
    """

    def __init__(
        self, model: nn.Module, *, effective_rank: bool = False, rank_rows: int = 1024, reduce: bool = False
    ) -> None:
        self.sublayers: list[tuple[str, Residual]] = [
            (_clean(name), m) for name, m in model.named_modules() if isinstance(m, Residual)
        ]
        if not self.sublayers:
            raise ConfigError(
                f"diagnostics: {type(model).__name__} has no resblocks Residual sub-layers; "
                "valid: a model built from resblocks blocks"
            )
        if not (isinstance(rank_rows, int) and rank_rows >= 1):
            raise ConfigError(f"diagnostics.rank_rows: {rank_rows!r}; valid: an integer >= 1")
        self.effective_rank = bool(effective_rank)
        self.rank_rows = rank_rows
        self.reduce = bool(reduce)
        self._module_handles: list[RemovableHandle] = []
        self._tensor_handles: list[RemovableHandle] = []
        self._clear()

    # -- attaching -------------------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        return bool(self._module_handles)

    def attach(self) -> ResidualProbe:
        """Install the hooks; the next forward (and its backward) is recorded."""
        if self.attached:
            raise RuntimeError("ResidualProbe.attach: already attached; detach() first")
        self._clear()
        for i, (_, r) in enumerate(self.sublayers):
            self._module_handles += [
                r.register_forward_pre_hook(partial(self._on_input, i), with_kwargs=True),
                r.shortcut.register_forward_pre_hook(partial(self._on_merge, i)),
                r.register_forward_hook(partial(self._on_output, i)),
            ]
            if not isinstance(r.branch_out, nn.Identity):  # otherwise F is the branch-norm output itself
                self._module_handles.append(r.branch_norm.register_forward_hook(partial(self._on_branch, i)))
        return self

    def detach(self) -> None:
        """Remove every hook (module and tensor hooks). What was recorded stays until :meth:`collect`."""
        for h in self._module_handles + self._tensor_handles:
            h.remove()
        self._module_handles, self._tensor_handles = [], []
        self._active.clear()
        self._stream_in.clear()

    def __enter__(self) -> ResidualProbe:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # -- hooks: device work only, no host sync ----------------------------------------------------------

    def _clear(self) -> None:
        for h in self._tensor_handles:
            h.remove()
        self._tensor_handles = []
        n = len(self.sublayers)
        self._values: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        self._state: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        self._rows: list[torch.Tensor | None] = [None] * n
        self._seen: set[int] = set()  # sub-layers recorded since the last collect (first forward wins)
        self._active: set[int] = set()  # sub-layers inside the forward being recorded
        self._stream_in: dict[int, torch.Tensor] = {}  # s, from the rule's pre-hook to the output hook
        self._backward_seen = False

    def _on_input(self, i: int, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if i in self._seen:  # a later forward, or a checkpoint recomputing this one: not recorded
            return
        self._seen.add(i)
        self._active.add(i)
        x = args[0] if args else kwargs["x"]
        with torch.no_grad():
            self._values[i]["x_rms"] = stats.rms(x)
        if x.requires_grad:  # also under a reentrant checkpoint's no-grad forward: its input still gets dL/dx
            self._tensor_handles.append(x.register_hook(partial(self._on_grad, i)))

    def _on_grad(self, i: int, grad: torch.Tensor) -> None:
        with torch.no_grad():
            self._values[i]["grad_rms"] = stats.rms(grad)
        self._backward_seen = True

    def _on_branch(self, i: int, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        if i in self._active:
            with torch.no_grad():
                self._values[i]["branch_rms"] = stats.rms(output)

    def _on_merge(self, i: int, rule: nn.Module, args: tuple[Any, ...]) -> None:
        if i not in self._active:
            return
        fx, s = args[0], args[1]
        r, v = self.sublayers[i][1], self._values[i]
        with torch.no_grad():
            # One float32 copy of each and one norm each, shared by every statistic that needs them (under bf16
            # autocast the copies and norms are most of what a probed step costs).
            fx32, s32 = stats.as_f32(fx), stats.as_f32(s)
            nf, ns = stats.norm(fx32), stats.norm(s32)
            v["f_rms"] = nf / math.sqrt(max(fx.numel(), 1))
            if isinstance(r.branch_out, nn.Identity):
                v["branch_rms"] = v["f_rms"]
            if fx.shape == s.shape:
                v["cos_f_x"] = torch.sum(fx32 * s32) / (nf * ns)
            # Each rule reports its own state (under the forward's autocast, as highway's gate runs there).
            state = {f"shortcut.{k}": t for k, t in rule.state(s).items()}
            for m in r.branch_out.modules():
                if m is not r.branch_out and callable(getattr(m, "state", None)):
                    state |= {f"branch_out.{k}": t for k, t in m.state().items()}
            self._state[i] = {k: t.detach().to(torch.float32) for k, t in state.items()}
        self._stream_in[i] = (s32, ns)

    def _on_output(self, i: int, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        if i not in self._active:
            return
        self._active.discard(i)
        s, v = self._stream_in.pop(i, (None, None)), self._values[i]
        with torch.no_grad():
            out32 = stats.as_f32(output)
            v["out_rms"] = stats.norm(out32) / math.sqrt(max(output.numel(), 1))
            s32, ns = s
            if s32 is not None and s32.shape == output.shape:
                v["update_ratio"] = stats.norm(out32 - s32) / ns  # ||out - s|| / ||s||
            if self.effective_rank:
                self._rows[i] = feature_rows(output, self.sublayers[i][1].site.layout, self.rank_rows)

    # -- reading ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def collect(self) -> list[SubLayerStats]:
        """The recorded step, one :class:`SubLayerStats` per sub-layer in module order; then forget it.

        Reads the branches' parameter gradients now (call it before they are zeroed), computes the
        effective ranks if asked for, averages over ranks if ``reduce``, and moves everything to the host
        in one transfer. Values not recorded (no forward since the last collect, no backward) are NaN.
        """
        for i, (_, r) in enumerate(self.sublayers):
            if self._backward_seen:
                g = stats.grad_norm(r.branch.parameters())
                if g is not None:
                    self._values[i]["branch_grad_norm"] = g
            rows = self._rows[i]
            if rows is not None:
                self._values[i]["effective_rank"] = erank_of(rows)
        # One fixed layout (every quantity of every sub-layer, then its state) so that all ranks
        # all-reduce tensors of the same shape, whatever each recorded.
        per_layer = [
            [self._values[i].get(q) for q in QUANTITIES] + list(self._state[i].values())
            for i in range(len(self.sublayers))
        ]
        tensors = [t for layer in per_layer for t in layer]
        device = next((t.device for t in tensors if t is not None), torch.device("cpu"))
        nan = torch.full((), math.nan, device=device)
        flat = torch.stack([nan if t is None else t.to(device) for t in tensors])
        if self.reduce:
            flat = mean_over_ranks(flat)
        values = iter(flat.tolist())  # the one host sync
        records = []
        # A model of several stacks (an MAE's encoder and decoder) numbers each stack's sites from 0: then the
        # records are numbered in network (module) order instead, so every sub-layer keeps its own depth.
        sites = [r.site.index for _, r in self.sublayers]
        own = len(set(sites)) == len(sites)
        for position, ((name, r), state) in enumerate(zip(self.sublayers, self._state)):
            site = r.site
            numbers = {q: next(values) for q in QUANTITIES}
            records.append(
                SubLayerStats(
                    name=name,
                    index=site.index if own else position,
                    total=site.total if own else len(sites),
                    block=site.block,
                    blocks=site.blocks,
                    per_block=site.per_block,
                    state={k: next(values) for k in state},
                    **numbers,
                )
            )
        self._clear()
        return records


__all__ = ["ResidualProbe"]
