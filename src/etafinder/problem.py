"""The problem etafinder answers for, and the model as a pure function of its parameters.

Evaluation policy (shared by λ₀ and every probe, so that chunking never changes a result):

* the user's module is deep-copied; the copy is what etafinder evaluates, the original is never touched;
* dropout and every other train/eval switch are **off** (the copy is in ``eval()`` mode);
* BatchNorm normalises with the batch statistics of the **whole probe set at the starting weights**,
  computed once in one no-grad pass and then held fixed (the biased variance, as training mode uses);
  layers built with ``track_running_stats=False`` are given such fixed statistics too;
* frozen parameters (``requires_grad=False``) and buffers are constants; only trainable parameters move.

Under this policy the model is a fixed function ``f(θ, x)`` applied sample by sample, so the loss of the
probe set is exactly the weighted sum of its chunks' losses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .losses import Loss

EVAL_POLICY = (
    "eval mode (dropout off); BatchNorm uses the whole probe set's batch statistics at the starting "
    "weights, computed once and held fixed; frozen parameters and buffers are constants"
)


@dataclass(frozen=True)
class Problem:
    """What a diagnosis is about: a model, its probe set and its loss.

    Attributes:
        model: the user's module (never modified).
        inputs: probe-set inputs, first dimension = samples.
        targets: probe-set targets, first dimension = samples.
        loss: the resolved loss.
        forward: optional ``forward(model, x) -> output`` hook (default ``model(x)``).
    """

    model: nn.Module
    inputs: Tensor
    targets: Tensor
    loss: Loss
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None

    @property
    def samples(self) -> int:
        """Number of samples in the probe set."""
        return int(self.inputs.shape[0])


class _Hooked(nn.Module):
    """Wraps a module so that ``functional_call`` goes through the user's ``forward(model, x)``."""

    def __init__(self, inner: nn.Module, forward: Callable[[nn.Module, Tensor], Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self._fwd = forward

    def forward(self, x: Tensor) -> Tensor:
        return self._fwd(self.inner, x)


def chunks(x: Tensor, y: Tensor, size: int | None) -> Iterator[tuple[Tensor, Tensor, float]]:
    """Split a probe set into chunks of at most ``size`` samples.

    Args:
        x: inputs.
        y: targets.
        size: chunk size, or ``None`` for one chunk.

    Yields:
        ``(x_c, y_c, weight)`` with ``weight = c/m``, the chunk's share of the probe set.
    """
    m = x.shape[0]
    size = m if size is None or size >= m else max(1, int(size))
    for start in range(0, m, size):
        xc, yc = x[start : start + size], y[start : start + size]
        yield xc, yc, xc.shape[0] / m


def _fix_batchnorm(module: nn.Module, x: Tensor) -> None:
    """Replace BatchNorm statistics by the whole probe set's, at the current weights (in place, on a copy)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        if not bn.track_running_stats:
            bn.track_running_stats = True
            shape = (bn.num_features,)
            p = next(iter(module.parameters()), x)
            bn.register_buffer("running_mean", torch.zeros(shape, dtype=p.dtype, device=p.device))
            bn.register_buffer("running_var", torch.ones(shape, dtype=p.dtype, device=p.device))
            bn.register_buffer("num_batches_tracked", torch.tensor(0, device=p.device))
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch -> exactly its statistics
    counts: dict[nn.Module, int] = {}

    def count(mod: nn.Module, args: tuple, _out: Tensor) -> None:
        inp = args[0]
        counts[mod] = inp.numel() // inp.shape[1]

    handles = [bn.register_forward_hook(count) for bn in bns]
    module.eval()
    for bn in bns:
        bn.train()
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
        module.eval()
    for bn in bns:
        n = counts.get(bn, 0)
        if n > 1:  # train mode normalises with the biased variance; the buffer holds the unbiased one
            bn.running_var.mul_((n - 1) / n)


class FunctionalModel:
    """A private copy of the user's model as a pure function ``f(θ_flat, x)`` (see the module policy).

    Args:
        problem: the problem; its model is deep-copied, never modified.

    Attributes:
        params0: the starting trainable parameters, flattened (a detached copy).
        names, shapes: the trainable parameters' names and shapes, in order.
    """

    def __init__(self, problem: Problem) -> None:
        inner = copy.deepcopy(problem.model)
        module: nn.Module = inner if problem.forward is None else _Hooked(inner, problem.forward)
        _fix_batchnorm(module, problem.inputs)
        module.eval()
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.module = module
        self.names = tuple(n for n, _ in named)
        self.shapes = tuple(p.shape for _, p in named)
        self.numels = tuple(p.numel() for _, p in named)
        trainable = set(self.names)
        self.constants: dict[str, Tensor] = {
            n: p.detach() for n, p in module.named_parameters() if n not in trainable
        }
        self.constants.update({n: b for n, b in module.named_buffers()})
        for p in module.parameters():
            p.requires_grad_(False)
        if named:
            self.params0 = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        else:
            self.params0 = torch.zeros(0)

    @property
    def num_params(self) -> int:
        """Number of trainable parameters ``P``."""
        return int(self.params0.numel())

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into named parameter tensors (views)."""
        parts = torch.split(flat, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        """The model output at parameters ``flat`` on inputs ``x``."""
        return functional_call(self.module, {**self.unflatten(flat), **self.constants}, (x,))

    def loss(self, flat: Tensor, x: Tensor, y: Tensor, loss: Loss, chunk_size: int | None) -> Tensor:
        """The probe-set loss at ``flat``, summed chunk by chunk with weights ``c/m``."""
        total = flat.new_zeros(())
        for xc, yc, w in chunks(x, y, chunk_size):
            total = total + w * loss(self(flat, xc), yc)
        return total
