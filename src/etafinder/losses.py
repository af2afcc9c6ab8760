"""Loss specifications and their output-space curvature.

A loss is ``"mse"`` (``F.mse_loss``, mean over all entries), ``"cross_entropy"`` (``F.cross_entropy``,
mean over samples; targets are class indices or probabilities shaped like the outputs) or a callable
``(output, target) -> scalar`` that is a mean over samples (contract §1).

λ₀ is the top eigenvalue of ``G = Jᵀ H_out J`` where ``H_out`` is the Hessian of the loss with respect to
the model outputs, so the normalisation of ``H_out`` *is* the normalisation of λ₀:

* mse:  ``H_out = 2/(m·k) · I`` (m samples, k outputs each, no ½);
* cross_entropy: ``H_out = blockdiag(diag p_i − p_i p_iᵀ) / m`` with ``p_i = softmax(f_i)``;
* callable: an autograd Hessian-vector product on the outputs (no square root: it need not be PSD).

For chunked data every chunk of ``c`` samples is weighted by its share ``c/m`` of the probe set, which is
exactly what the mean over the whole set gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError

BUILTIN_LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class Loss:
    """A resolved loss.

    Attributes:
        name: ``"mse"``, ``"cross_entropy"`` or ``"custom"``.
        fn: ``(output, target) -> scalar``, the mean loss of a batch.
    """

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]

    @property
    def builtin(self) -> bool:
        """Whether ``H_out`` is known in closed form (and has a square-root factor)."""
        return self.name in BUILTIN_LOSSES

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss of a batch."""
        return self.fn(output, target)


def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target)


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output, target)


def resolve_loss(spec: str | Callable[[Tensor, Tensor], Tensor] | None) -> Loss:
    """Turn a user's loss specification into a :class:`Loss`.

    Args:
        spec: ``None`` (mse), ``"mse"``, ``"cross_entropy"`` or a callable.

    Returns:
        The resolved loss.

    Raises:
        InputError: for an unknown name or a non-callable object.
    """
    if spec is None or spec == "mse":
        return Loss("mse", _mse)
    if spec == "cross_entropy":
        return Loss("cross_entropy", _cross_entropy)
    if isinstance(spec, str):
        raise InputError(
            f"unknown loss {spec!r}; expected 'mse' or 'cross_entropy'",
            "Or define `loss` in the model file as a callable (output, target) -> mean scalar.",
        )
    if callable(spec):
        return Loss("custom", spec)
    raise InputError(
        f"loss must be 'mse', 'cross_entropy' or a callable, got {type(spec).__name__}",
        "Define `loss = \"mse\"` or a function (output, target) -> scalar tensor.",
    )


def _class_last(output: Tensor) -> Tensor:
    """Logits shaped ``(N, K, d1, ...)`` as ``(N·d1·..., K)`` (cross_entropy's class dim is 1)."""
    if output.ndim == 1:
        return output.unsqueeze(0)
    return output.movedim(1, -1).reshape(-1, output.shape[1])


def _terms(loss: Loss, output: Tensor) -> int:
    """How many terms the batch mean averages over (the ``m·k`` or ``m`` of the docstring)."""
    if loss.name == "mse":
        return output.numel()
    return _class_last(output).shape[0]


def sqrt_factor(loss: Loss, output: Tensor, weight: float):
    """Square-root factor ``B`` of the output Hessian (``BᵀB = weight · ∇²_out loss``), built-in losses only.

    Args:
        loss: a built-in loss.
        output: the model output of one chunk, detached.
        weight: the chunk's share ``c/m`` of the probe set.

    Returns:
        ``(apply_B, apply_Bt)``: functions on tensors shaped like ``output``.
    """
    n = _terms(loss, output)
    if loss.name == "mse":
        s = (2.0 * weight / n) ** 0.5

        def scale(u: Tensor) -> Tensor:
            return s * u

        return scale, scale
    if loss.name != "cross_entropy":
        raise ValueError(f"no square-root factor for loss {loss.name!r}")
    shape = output.shape
    p = torch.softmax(_class_last(output), dim=-1)
    sp = p.sqrt()
    s = (weight / n) ** 0.5

    def to_rows(u: Tensor) -> Tensor:
        return _class_last(u)

    def from_rows(r: Tensor) -> Tensor:
        if len(shape) == 1:
            return r.reshape(shape)
        moved = (shape[0], *shape[2:], shape[1])
        return r.reshape(moved).movedim(-1, 1)

    def apply_b(u: Tensor) -> Tensor:  # B = diag(√p) − √p pᵀ
        r = to_rows(u)
        return from_rows(s * (sp * r - sp * (p * r).sum(-1, keepdim=True)))

    def apply_bt(u: Tensor) -> Tensor:  # Bᵀ = diag(√p) − p √pᵀ
        r = to_rows(u)
        return from_rows(s * (sp * r - p * (sp * r).sum(-1, keepdim=True)))

    return apply_b, apply_bt


def output_hvp(loss: Loss, output: Tensor, target: Tensor, u: Tensor, weight: float) -> Tensor:
    """``weight · ∇²_out loss(output, target) · u``.

    Built-in losses use the closed form (forward-over-reverse AD of ``F.mse_loss`` hits
    pytorch/pytorch#123996 in torch 2.13); callables use reverse-over-reverse autograd.

    Args:
        loss: the loss.
        output: one chunk's output, detached.
        target: its targets.
        u: a tensor shaped like ``output``.
        weight: the chunk's share ``c/m`` of the probe set.

    Returns:
        A tensor shaped like ``output``.
    """
    if loss.builtin:
        apply_b, apply_bt = sqrt_factor(loss, output, weight)
        return apply_bt(apply_b(u))
    with torch.enable_grad():
        out = output.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(out, target), out, create_graph=True)
        if not g.requires_grad:  # the loss is linear in the output: its gradient is a constant
            return torch.zeros_like(u)
        (hu,) = torch.autograd.grad(g, out, u, allow_unused=True)
    if hu is None:  # the gradient does not depend on the output
        return torch.zeros_like(u)
    return weight * hu


def constant_loss(loss: Loss, targets: Tensor) -> float | None:
    """The loss of the best constant predictor: the trivial solution a collapsed run ends at.

    Args:
        loss: the loss.
        targets: all probe-set targets.

    Returns:
        mse: the targets' per-output variance, averaged over outputs; cross_entropy: the entropy of the
        mean label distribution (log K for balanced classes); ``None`` for a callable loss.
    """
    if loss.name == "mse":
        t = targets.to(torch.float64)
        return float(t.var(dim=0, unbiased=False).mean()) if t.ndim > 0 else 0.0
    if loss.name == "cross_entropy":
        if targets.is_floating_point():  # probabilities shaped like the outputs, class dim 1
            p = _class_last(targets.to(torch.float64)).mean(0)
        else:
            flat = targets.reshape(-1)
            p = torch.bincount(flat).to(torch.float64) / flat.numel()
        p = p[p > 0]
        return float(-(p * p.log()).sum())
    return None
