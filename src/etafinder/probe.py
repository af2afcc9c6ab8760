"""Probe runs: short full-batch gradient descent (optionally heavy-ball momentum) at candidate rates.

Every probe starts from the **same** starting parameters (so probes are comparable) and runs on a private
copy of the model (see :mod:`etafinder.problem`); the user's model is never touched. Several rates run
together with ``torch.func.vmap`` over stacked parameter copies when memory allows, one at a time
otherwise; both give the same losses.

The update is ``torch.optim.SGD(momentum=β, dampening=0, nesterov=False)``:
``b ← β b + g`` (``b = g`` on the first step), ``θ ← θ − η b``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from .config import ProbeConfig
from .curvature import _saved_bytes, estimate_lambda0
from .losses import Loss
from .phases import EDGE_SLACK, SETTLE_WINDOW, stability_edge, stop_reason
from .problem import FunctionalModel, chunks
from .types import ProbeTrace

#: sample passes one GGN-vector product costs, counted as a forward plus a backward (jvp + vjp)
PASSES_PER_MATVEC = 2


@dataclass(frozen=True)
class ProbeContext:
    """What every probe of one diagnosis shares.

    Attributes:
        fm: the functional model.
        x: probe-set inputs.
        y: probe-set targets.
        loss: the loss.
        lambda0: the start curvature.
        eigenvector: its eigenvector (warm start of the end-curvature solves).
        start_loss: the loss at the starting parameters.
        grad_norm_start: ‖∇L‖ there.
        constant_loss: the best constant predictor's loss (``None`` when unknown).
        trained_start: whether the start is trained.
        curvature: ``"ggn"`` or ``"hessian"``, as for λ₀.
    """

    fm: FunctionalModel
    x: Tensor
    y: Tensor
    loss: Loss
    lambda0: float
    eigenvector: Tensor
    start_loss: float
    grad_norm_start: float
    constant_loss: float | None
    trained_start: bool
    curvature: str = "ggn"


def loss_fn(fm: FunctionalModel, x: Tensor, y: Tensor, loss: Loss,
            chunk_size: int | None) -> Callable[[Tensor], Tensor]:
    """The probe-set loss as a function of the flat parameters."""

    def f(flat: Tensor) -> Tensor:
        return fm.loss(flat, x, y, loss, chunk_size)

    return f


def loss_and_grad(fm: FunctionalModel, params: Tensor, x: Tensor, y: Tensor, loss: Loss,
                  chunk_size: int | None) -> tuple[float, Tensor]:
    """Loss and gradient at ``params``, chunk by chunk (one chunk's activations alive at once)."""
    total, g = 0.0, torch.zeros_like(params)
    for xc, yc, w in chunks(x, y, chunk_size):
        gc, lc = grad_and_value(lambda p, xc=xc, yc=yc, w=w: w * loss(fm(p, xc), yc))(params)
        total += float(lc)
        g += gc
    return total, g


def dead_fraction(fm: FunctionalModel, params: Tensor, x: Tensor) -> float | None:
    """Fraction of ``nn.ReLU`` units that are zero on every probe sample (``None`` without ``nn.ReLU``)."""
    relus = [m for m in fm.module.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        return None
    alive: dict[int, Tensor] = {}

    def hook(mod: nn.Module, _args: tuple, out: Tensor) -> None:
        active = (out > 0).reshape(out.shape[0], -1).any(dim=0)
        alive[id(mod)] = active if id(mod) not in alive else alive[id(mod)] | active

    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        with torch.no_grad():
            fm(params, x)
    finally:
        for h in handles:
            h.remove()
    units = sum(int(a.numel()) for a in alive.values())
    if units == 0:
        return None
    return 1.0 - sum(int(a.sum()) for a in alive.values()) / units


class _Runs:
    """The state of several probes stepping together."""

    def __init__(self, ctx: ProbeContext, lrs: Sequence[float]) -> None:
        n = len(lrs)
        self.lrs = list(lrs)
        self.params = ctx.fm.params0.detach().unsqueeze(0).repeat(n, 1)
        self.losses: list[list[float]] = [[ctx.start_loss] for _ in range(n)]
        self.decided: list[str | None] = [None] * n
        self.grad_end = [math.nan] * n
        self.curvature: list[tuple[float, bool] | None] = [None] * n  # (value, converged) at the end
        self.matvecs = [0] * n
        self.next_check = [0] * n


def _batched_grad(ctx: ProbeContext, config: ProbeConfig, use_vmap: bool):
    f = loss_fn(ctx.fm, ctx.x, ctx.y, ctx.loss, config.chunk_size)
    if use_vmap:
        return vmap(grad_and_value(f))

    def one_by_one(P: Tensor) -> tuple[Tensor, Tensor]:
        out = [loss_and_grad(ctx.fm, p, ctx.x, ctx.y, ctx.loss, config.chunk_size) for p in P]
        return torch.stack([g for _, g in out]), torch.tensor([v for v, _ in out], dtype=torch.float64)

    return one_by_one


def _step_all(ctx: ProbeContext, lrs: Sequence[float], config: ProbeConfig, use_vmap: bool,
              on_step: Callable[[], None] | None = None) -> _Runs:
    runs = _Runs(ctx, lrs)
    beta = config.momentum
    active = list(range(len(lrs)))
    gfn = _batched_grad(ctx, config, use_vmap)
    lr_t = torch.tensor(runs.lrs, dtype=runs.params.dtype, device=runs.params.device)
    buf = torch.zeros_like(runs.params)
    for step in range(config.max_steps + 1):
        idx = torch.tensor(active, device=runs.params.device)
        g, vals = gfn(runs.params[idx])
        vals = vals.tolist()
        still = []
        for row, i in enumerate(active):
            if step > 0:
                runs.losses[i].append(float(vals[row]))
            gn = float(g[row].norm())
            runs.grad_end[i] = gn if math.isfinite(gn) else math.nan
            reason = stop_reason(runs.losses[i], runs.lrs[i], ctx.lambda0, beta,
                                 constant_loss=ctx.constant_loss, trained_start=ctx.trained_start,
                                 min_steps=config.min_steps, grad_norm=gn,
                                 grad_norm_start=ctx.grad_norm_start)
            if reason == "recovered":  # back down: stop only if the curvature is below the edge too
                if step < runs.next_check[i]:
                    reason = None
                else:
                    value, conv, mv = _curvature(ctx, runs.params[i], config)
                    runs.matvecs[i] += mv
                    runs.curvature[i] = (value, conv)
                    if value > (1.0 + EDGE_SLACK) * stability_edge(runs.lrs[i], beta):
                        # re-check on a doubling schedule: each check costs a Lanczos solve
                        runs.next_check[i] = max(step + SETTLE_WINDOW, 2 * step)
                        reason = None
            if reason is not None or step == config.max_steps:
                runs.decided[i] = reason
                if reason != "recovered":
                    runs.curvature[i] = None  # measured at the end instead
            else:
                still.append(row)
        if not still:
            break
        keep = idx[still]
        gk = g[still]
        bk = gk if step == 0 else beta * buf[keep] + gk
        buf[keep] = bk
        runs.params[keep] = runs.params[keep] - lr_t[keep, None] * bk
        active = [active[r] for r in still]
        if on_step is not None:
            on_step()
    return runs


def run_probes(ctx: ProbeContext, lrs: Sequence[float], config: ProbeConfig, *,
               use_vmap: bool | None = None) -> list[ProbeTrace]:
    """Run one probe per learning rate from the starting parameters.

    Args:
        ctx: the shared probe context.
        lrs: learning rates.
        config: steps, momentum, tolerances, chunking, vmap switch.
        use_vmap: force vmap on or off (default: ``config.vmap``, if the batch fits the memory budget;
            falls back to one at a time if the model cannot be vmapped).

    Returns:
        One :class:`ProbeTrace` per rate, in the order given.
    """
    if not lrs:
        return []
    if use_vmap is None:
        use_vmap = config.vmap and len(lrs) > 1 and _fits(ctx, len(lrs), config)
    try:
        runs = _step_all(ctx, lrs, config, use_vmap)
    except Exception:
        if not use_vmap:
            raise
        runs = _step_all(ctx, lrs, config, False)  # some models cannot be vmapped: one at a time
    return [_finish(ctx, runs, i, config) for i in range(len(lrs))]


def _fits(ctx: ProbeContext, n: int, config: ProbeConfig) -> bool:
    x0 = next(chunks(ctx.x, ctx.y, config.chunk_size))[0]
    p = ctx.fm.params0.detach().requires_grad_(True)
    return n * _saved_bytes(lambda: ctx.fm(p, x0)) <= config.memory_budget


def _curvature(ctx: ProbeContext, params: Tensor, config: ProbeConfig) -> tuple[float, bool, int]:
    """Top curvature at ``params``, warm-started from λ₀'s eigenvector, to ``config.end_tol``."""
    est = estimate_lambda0(ctx.fm, ctx.x, ctx.y, ctx.loss, params=params, tol=config.end_tol,
                           curvature=ctx.curvature, max_iter=config.max_iter,
                           chunk_size=config.chunk_size, memory_budget=config.memory_budget,
                           seed=config.seed, v0=ctx.eigenvector, trace=False)
    return est.value, est.converged, est.matvecs


def _finish(ctx: ProbeContext, runs: _Runs, i: int, config: ProbeConfig) -> ProbeTrace:
    losses = runs.losses[i]
    params = runs.params[i]
    steps = len(losses) - 1
    m = ctx.x.shape[0]
    finite = all(math.isfinite(v) for v in losses) and bool(torch.isfinite(params).all())
    curvature_end, converged, dead = None, False, None
    matvecs = runs.matvecs[i]
    if finite and runs.decided[i] != "divergent":
        if runs.curvature[i] is not None:
            curvature_end, converged = runs.curvature[i]
        else:
            curvature_end, converged, mv = _curvature(ctx, params, config)
            matvecs += mv
        dead = dead_fraction(ctx.fm, params, ctx.x)
    return ProbeTrace(
        lr=float(runs.lrs[i]), momentum=config.momentum, losses=tuple(losses),
        grad_norm_start=ctx.grad_norm_start, grad_norm_end=runs.grad_end[i],
        curvature_start=ctx.lambda0, curvature_end=curvature_end,
        curvature_end_converged=converged, steps=steps, settled=runs.decided[i] is not None,
        dead_fraction=dead, passes=m * (steps + 1) + PASSES_PER_MATVEC * m * matvecs,
    )
