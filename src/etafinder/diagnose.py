"""The library entry point: λ₀ → probes → η_max → recommendation, as one :class:`Diagnosis`.

No I/O happens here: the CLI loads the problem (:mod:`etafinder.loading`) and writes the report
(:mod:`etafinder.report`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import phases
from .config import ProbeConfig, check_optimizer
from .curvature import Lambda0Estimate, estimate_lambda0
from .errors import InputError
from .losses import constant_loss
from .phases import THRESHOLDS, classify, is_collapsed
from .probe import PASSES_PER_MATVEC, ProbeContext, loss_and_grad, run_probes
from .problem import FunctionalModel, Problem
from .recommend import eta_max_bracket, geometric_points, grid_lrs, recommend, target_lr
from .types import Diagnosis, Phase, ProbeResult, ProbeTrace, Spread

Progress = Callable[[str, dict], None]

#: when no grid probe diverges, the grid is extended upwards by this factor, at most EXTEND_TIMES times
EXTEND_FACTOR = 2.0
EXTEND_TIMES = 2


class Interrupted(Exception):
    """Raised when a diagnosis is interrupted (Ctrl-C); ``partial`` holds what was measured so far.

    Args:
        partial: a diagnosis of the probes so far, or ``None`` when λ₀ was not finished.
    """

    def __init__(self, partial: Diagnosis | None) -> None:
        super().__init__("interrupted")
        self.partial = partial


def _quiet(_event: str, _info: dict) -> None:
    return None


def label(traces: Sequence[tuple[ProbeTrace, str]], ctx: ProbeContext) -> tuple[ProbeResult, ...]:
    """Label every probe (phase, reason) and flag collapsed ones against the smaller rates.

    Args:
        traces: ``(trace, source)`` pairs.
        ctx: the probe context (constant-predictor loss, trained start).

    Returns:
        The probes, sorted by lr.
    """
    ordered = sorted(traces, key=lambda ts: ts[0].lr)
    out = []
    for i, (trace, source) in enumerate(ordered):
        phase, reason = classify(trace, constant_loss=ctx.constant_loss, trained_start=ctx.trained_start)
        smaller = [t.losses[-1] for t, _ in ordered[:i] if t.lr < trace.lr]
        collapsed = is_collapsed(trace, smaller, ctx.constant_loss)
        if collapsed:
            dead = "" if trace.dead_fraction is None else f", {trace.dead_fraction:.0%} of ReLU units dead"
            reason = (f"collapsed: stuck at the constant predictor's loss {ctx.constant_loss:.4g} with a "
                      f"vanishing gradient{dead}; {reason}")
        out.append(ProbeResult(trace=trace, phase=phase, collapsed=collapsed, reason=reason,
                               source=source))
    return tuple(out)


def _context(problem: Problem, fm: FunctionalModel, est: Lambda0Estimate,
             config: ProbeConfig) -> ProbeContext:
    start, g0 = loss_and_grad(fm, fm.params0, problem.inputs, problem.targets, problem.loss,
                              config.chunk_size)
    if not math.isfinite(start):
        raise InputError(f"the start loss is {start}", "Check the model's initialisation and data.")
    const = constant_loss(problem.loss, problem.targets)
    trained = const is not None and start <= phases.TRAINED_START * const
    return ProbeContext(fm=fm, x=problem.inputs, y=problem.targets, loss=problem.loss,
                        lambda0=est.value, eigenvector=est.eigenvector, start_loss=start,
                        grad_norm_start=float(g0.norm()), constant_loss=const, trained_start=trained,
                        curvature=config.curvature)


def _spread(problem: Problem, fm: FunctionalModel, est: Lambda0Estimate, rest: tuple[Tensor, Tensor] | None,
            config: ProbeConfig) -> tuple[Spread | None, int]:
    """λ₀ on up to ``spread_subsets`` disjoint subsets of the left-out data, each of the probe set's size."""
    m = problem.samples
    if rest is None or config.spread_subsets <= 0 or rest[0].shape[0] < m:
        return None, 0
    k = min(config.spread_subsets, rest[0].shape[0] // m)
    values, passes = [], 0
    for i in range(k):
        xs, ys = rest[0][i * m : (i + 1) * m], rest[1][i * m : (i + 1) * m]
        e = estimate_lambda0(fm, xs, ys, problem.loss, curvature=config.curvature, tol=config.end_tol,
                             max_iter=config.max_iter, chunk_size=config.chunk_size,
                             memory_budget=config.memory_budget, seed=config.seed + 1 + i,
                             v0=est.eigenvector, trace=False)
        values.append(e.value)
        passes += m * (1 + PASSES_PER_MATVEC * e.matvecs)
    allv = torch.tensor([est.value, *values], dtype=torch.float64)
    std = float(allv.std(unbiased=True))
    return Spread(values=tuple(values), std=std, relative=std / est.value, subset_size=m), passes


def _assemble(est: Lambda0Estimate, spread: Spread | None, ctx: ProbeContext, probes: tuple[ProbeResult, ...],
              eta_max: float | None, bracket: tuple[float, float] | None, config: ProbeConfig,
              problem: Problem, fm: FunctionalModel, passes: dict, timings: dict) -> Diagnosis:
    eta_crit = 2.0 * (1.0 + config.momentum) / est.value
    lr, phase, reason = recommend(probes, eta_crit, eta_max)
    probe_passes = sum(p.trace.passes for p in probes)
    passes = {**passes, "probes": probe_passes}
    passes["total"] = sum(v for k, v in passes.items() if k != "total")
    return Diagnosis(
        lambda0=est, spread=spread, eta_crit=eta_crit, eta_max=eta_max, eta_max_bracket=bracket,
        recommended_lr=lr, recommended_phase=phase, recommendation_reason=reason, probes=probes,
        momentum=config.momentum, samples=problem.samples, num_params=fm.num_params,
        loss=problem.loss.name, start_loss=ctx.start_loss, constant_loss=ctx.constant_loss,
        trained_start=ctx.trained_start, thresholds=THRESHOLDS, passes=passes, timings=timings)


def diagnose(problem: Problem, config: ProbeConfig | None = None, *,
             rest: tuple[Tensor, Tensor] | None = None, progress: Progress | None = None) -> Diagnosis:
    """Estimate λ₀, probe candidate rates, measure η_max and recommend a rate.

    Args:
        problem: the model, probe set and loss (the model is never modified).
        config: the knobs (default :class:`ProbeConfig`).
        rest: data outside the probe set, for λ₀'s sampling-uncertainty figure.
        progress: ``progress(event, info)`` callback (events ``stage``, ``lambda0``, ``probe``).

    Returns:
        The :class:`Diagnosis`.

    Raises:
        InputError: for optimizer settings v1 refuses or a start where λ₀ ≤ 0.
        Interrupted: on KeyboardInterrupt, with the partial diagnosis.
    """
    config = config or ProbeConfig()
    check_optimizer(momentum=config.momentum)
    progress = progress or _quiet
    timings: dict[str, float] = {}
    passes: dict[str, int] = {}
    state: dict = {}
    t0 = time.perf_counter()
    try:
        progress("stage", {"name": "lambda0"})
        fm = FunctionalModel(problem)
        m = problem.samples
        est = estimate_lambda0(
            fm, problem.inputs, problem.targets, problem.loss, curvature=config.curvature,
            tol=config.tol, max_iter=config.max_iter, chunk_size=config.chunk_size,
            memory_budget=config.memory_budget, seed=config.seed,
            callback=lambda i, v: progress("lambda0", {"iteration": i, "value": v,
                                                       "max_iter": config.max_iter}))
        if not (math.isfinite(est.value) and est.value > 0):
            raise InputError(f"λ₀ = {est.value:.3g} at the starting weights: the loss has no positive "
                             "curvature there", "Check that the loss depends on the model output.")
        passes["lambda0"] = m * (1 + PASSES_PER_MATVEC * est.matvecs)
        timings["lambda0_s"] = time.perf_counter() - t0
        progress("stage", {"name": "spread"})
        spread, passes["spread"] = _spread(problem, fm, est, rest, config)
        timings["spread_s"] = time.perf_counter() - t0 - timings["lambda0_s"]
        ctx = _context(problem, fm, est, config)
        eta_crit = 2.0 * (1.0 + config.momentum) / est.value
        traces: list[tuple[ProbeTrace, str]] = []
        state.update(est=est, spread=spread, ctx=ctx, fm=fm, traces=traces)

        def run(lrs: Sequence[float], source: str, total: int | None) -> tuple[ProbeResult, ...]:
            new = run_probes(ctx, lrs, config)
            traces.extend((tr, source) for tr in new)
            labelled = label(traces, ctx)  # once per batch: collapse depends on the other probes
            phase = {id(p.trace): p.phase.value for p in labelled}
            for i, tr in enumerate(new):
                progress("probe", {"done": len(traces) - len(new) + i + 1, "total": total,
                                   "lr": tr.lr, "phase": phase[id(tr)]})
            return labelled

        t1 = time.perf_counter()
        progress("stage", {"name": "grid"})
        grid = list(config.lrs) if config.lrs else grid_lrs(eta_crit, config.grid)
        probes = run(grid, "grid", len(grid))
        if not config.lrs:
            top = max(grid)
            for _ in range(EXTEND_TIMES):
                if any(p.phase is Phase.DIVERGENT for p in probes):
                    break
                top *= EXTEND_FACTOR
                probes = run([top], "grid", None)
        progress("stage", {"name": "bisection"})
        bracket = eta_max_bracket(probes)
        k = config.bisect_points or (1 if problem.inputs.device.type == "cpu" else 3)
        while bracket is not None and bracket[1] / bracket[0] - 1.0 > config.bisect_tol:
            probes = run(geometric_points(*bracket, k), "bisection", None)
            bracket = eta_max_bracket(probes)
        eta_max = None if bracket is None else math.sqrt(bracket[0] * bracket[1])
        target = target_lr(probes, eta_max)
        # probe the target unless a probe sits at most 5% below it (recommend() takes none above it)
        if target is not None and not any(target / 1.05 <= p.lr <= target * (1.0 + 1e-9) for p in probes):
            probes = run([target], "recommendation", None)
        state.update(eta_max=eta_max, bracket=bracket)
        timings["probes_s"] = time.perf_counter() - t1
        timings["total_s"] = time.perf_counter() - t0
        progress("stage", {"name": "done"})
        return _assemble(est, spread, ctx, probes, eta_max, bracket, config, problem, fm, passes,
                         timings)
    except KeyboardInterrupt:
        if "ctx" not in state:
            raise Interrupted(None) from None
        probes = label(state["traces"], state["ctx"])
        timings["total_s"] = time.perf_counter() - t0
        partial = _assemble(state["est"], state["spread"], state["ctx"], probes, state.get("eta_max"),
                            state.get("bracket"), config, problem, state["fm"], passes, timings)
        raise Interrupted(partial) from None


def probe_rate(problem: Problem, diagnosis: Diagnosis, lr: float, config: ProbeConfig | None = None, *,
               progress: Progress | None = None) -> Diagnosis:
    """Add a probe at ``lr`` (source ``"requested"``) to a diagnosis of the same problem.

    η_max and the recommendation are kept; every probe is relabelled (collapse depends on the others).

    Args:
        problem: the same problem the diagnosis was made for.
        diagnosis: the diagnosis.
        lr: the rate to probe.
        config: the same config.
        progress: progress callback.

    Returns:
        A new :class:`Diagnosis` that includes the probe.
    """
    config = config or ProbeConfig()
    progress = progress or _quiet
    fm = FunctionalModel(problem)
    ctx = _context(problem, fm, diagnosis.lambda0, config)
    (trace,) = run_probes(ctx, [lr], config)
    traces = [(p.trace, p.source) for p in diagnosis.probes] + [(trace, "requested")]
    probes = label(traces, ctx)
    progress("probe", {"done": len(probes), "total": None, "lr": lr,
                       "phase": next(p for p in probes if p.trace is trace).phase.value})
    passes = {k: v for k, v in diagnosis.passes.items() if k not in ("probes", "total")}
    d = _assemble(diagnosis.lambda0, diagnosis.spread, ctx, probes, diagnosis.eta_max,
                  diagnosis.eta_max_bracket, config, problem, fm, passes, dict(diagnosis.timings))
    # the recommendation stays what the diagnosis found
    return Diagnosis(**{**d.__dict__, "recommended_lr": diagnosis.recommended_lr,
                        "recommended_phase": diagnosis.recommended_phase,
                        "recommendation_reason": diagnosis.recommendation_reason})
