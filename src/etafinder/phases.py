"""Phase labels for probe runs: lazy, catapult, divergent (Lewkowycz et al. 2020, arXiv:2003.02218).

For (S)GD the top NTK/Gauss–Newton eigenvalue λ₀ at the start sets three phases (with heavy-ball momentum β
every threshold scales by 1+β):

* **lazy**, η < 2(1+β)/λ₀: the loss falls, the curvature stays put;
* **catapult**, 2(1+β)/λ₀ < η < η_max: the loss first grows while the curvature falls, then the run
  converges once λ < 2(1+β)/η, in a flatter region;
* **divergent**, η > η_max: the loss (and curvature) blow up.

The labels are read off the loss trace **and** the curvature (a loss spike alone is not a catapult). Every
number behind "significant", "well above" and "converges" is a named constant below; they are written into
every report and decide ``etafinder check``'s exit code. They are ratios of losses, never absolute values,
so they hold for cross-entropy (whose loss grows slowly) as for mse.
"""

from __future__ import annotations

import math

from .types import Phase, ProbeTrace

#: The loss "rises well above its start" when its peak exceeds (1 + RISE) × the start loss. Below that a
#: run has no significant rise. One constant for both, so no run falls between the definitions.
RISE = 0.1
#: A run "grows without bound" once its loss exceeds DIVERGE × max(start loss, constant-predictor loss).
#: A catapult's peak grows with width (≈ n·(ηλ₀ − 2) in the solvable model), so this is generous.
DIVERGE = 1e6
#: The end curvature is "at or below the stability edge" 2(1+β)/η when it is ≤ (1 + EDGE_SLACK) × edge.
#: Gradient descent at the edge of stability hovers at and somewhat above 2/η while the loss still
#: falls (Cohen et al. 2021): on the digits MLP (benchmarks/) runs at 3.5–4.5·η_crit sat at
#: 1.09–1.21× the edge with the loss at 0.03–0.07× its start, and trained to 99% accuracy.
EDGE_SLACK = 0.25
#: From a fresh start a run "converges" when its final loss is ≤ CONVERGE × its start loss.
CONVERGE = 1.0
#: A start is "trained" when its loss is ≤ TRAINED_START × the best constant predictor's loss; there a
#: catapult cannot end below its start, so converging means settling back near it: to within
#: RECOVER × the constant predictor's loss above the start loss (98% of the way back from trivial).
TRAINED_START = 0.25
RECOVER = 0.02
#: Collapsed: final loss within COLLAPSE_BAND (relative) of the constant predictor's loss, gradient norm
#: ≤ COLLAPSE_GRAD × its start value, while a smaller rate ended ≤ (1 − LEARNED_MARGIN) × that loss.
COLLAPSE_BAND = 0.05
COLLAPSE_GRAD = 1e-2
LEARNED_MARGIN = 0.1
#: A run with no rise is "settled lazy" after the minimum steps when ηλ₀ ≤ LAZY_MARGIN × 2(1+β): the top
#: mode contracts from the start. Closer to the edge a catapult can take long to start, so it runs on.
LAZY_MARGIN = 0.95
#: Above the edge, a run with no rise is settled lazy once the linearly unstable top mode would have
#: amplified the loss AMPLIFY-fold (r^(2t) ≥ AMPLIFY, r the spectral radius of the GD/heavy-ball
#: iteration at ηλ₀): the nonlinearity has tamed it without a catapult (curvature fell to the edge).
AMPLIFY = 1e6
#: A run that rose may stop once every loss of the last SETTLE_WINDOW steps is back at its settling
#: target and its curvature is at or below the edge (else it runs on, re-checked on a doubling schedule).
SETTLE_WINDOW = 5

THRESHOLDS = {
    "rise": {"value": RISE, "description": "peak loss > (1+rise)·start loss: a significant rise"},
    "diverge": {"value": DIVERGE,
                "description": "loss > diverge·max(start, constant-predictor loss), or non-finite: divergent"},
    "edge_slack": {"value": EDGE_SLACK,
                   "description": "end curvature ≤ (1+edge_slack)·2(1+β)/η: at or below the stability edge"},
    "converge": {"value": CONVERGE, "description": "final loss ≤ converge·start loss: converged (fresh start)"},
    "trained_start": {"value": TRAINED_START,
                      "description": "start loss ≤ trained_start·constant-predictor loss: a trained start"},
    "recover": {"value": RECOVER,
                "description": "trained start: final ≤ start + recover·constant-predictor loss: converged"},
    "collapse_band": {"value": COLLAPSE_BAND,
                      "description": "|final − constant-predictor loss| ≤ collapse_band·it: at the trivial loss"},
    "collapse_grad": {"value": COLLAPSE_GRAD,
                      "description": "‖∇L‖ at the end ≤ collapse_grad·start: a vanishing gradient"},
    "learned_margin": {"value": LEARNED_MARGIN,
                       "description": "a smaller rate ended ≤ (1−learned_margin)·constant-predictor loss"},
    "lazy_margin": {"value": LAZY_MARGIN,
                    "description": "no rise and ηλ₀ ≤ lazy_margin·2(1+β): lazy run settled early"},
    "amplify": {"value": AMPLIFY,
                "description": "no rise although the top mode would have grown amplify-fold: settled"},
    "settle_window": {"value": SETTLE_WINDOW,
                      "description": "steps back at the convergence target after a rise: run settled"},
}


def stability_edge(lr: float, momentum: float) -> float:
    """The curvature above which gradient descent at ``lr`` is linearly unstable: ``2(1+β)/η``."""
    return 2.0 * (1.0 + momentum) / lr


def convergence_target(start_loss: float, trained_start: bool, constant_loss: float | None) -> float:
    """The loss a run must end at or below to count as converged."""
    if trained_start and constant_loss:
        return start_loss + RECOVER * constant_loss
    return CONVERGE * start_loss


def settling_target(start_loss: float, trained_start: bool, constant_loss: float | None) -> float:
    """The loss a run that rose must be back at before it may stop early.

    Stricter than :func:`convergence_target` from a fresh start near the trivial loss (cross-entropy
    starts at ≈ log K): there "below the start" is also where a collapsed run ends, so a run stops
    early only once it is clearly below the constant predictor's loss (or stuck at it).
    """
    target = convergence_target(start_loss, trained_start, constant_loss)
    if not trained_start and constant_loss:
        target = min(target, (1.0 - LEARNED_MARGIN) * constant_loss)
    return target


def divergence_level(start_loss: float, constant_loss: float | None) -> float:
    """The loss beyond which a run is divergent."""
    return DIVERGE * max(start_loss, constant_loss or 0.0)


def spectral_radius(lr: float, curvature: float, momentum: float) -> float:
    """Per-step contraction/growth factor of GD (β = 0) or heavy ball on a quadratic of that curvature.

    The iteration ``θ_{t+1} = θ_t − η g + β(θ_t − θ_{t−1})`` has characteristic polynomial
    ``z² − (1 + β − ηλ) z + β``; its largest root in modulus is returned.
    """
    b = 1.0 + momentum - lr * curvature
    disc = b * b - 4.0 * momentum
    if disc < 0:
        return math.sqrt(momentum)
    return max(abs(b + math.sqrt(disc)), abs(b - math.sqrt(disc))) / 2.0


def stop_reason(losses: list[float], lr: float, lambda0: float, momentum: float, *,
                constant_loss: float | None, trained_start: bool, min_steps: int,
                grad_norm: float = math.nan, grad_norm_start: float = math.nan) -> str | None:
    """The on-line stopping rule of a probe, checked after each recorded loss.

    Args:
        losses: the losses so far, ``losses[0]`` at the start.
        lr: the learning rate.
        lambda0: the start curvature.
        momentum: heavy-ball β.
        constant_loss: the best constant predictor's loss, if known.
        trained_start: whether the start is trained.
        min_steps: steps a quiet run takes before it may be called settled.
        grad_norm: ‖∇L‖ now.
        grad_norm_start: ‖∇L‖ at the start.

    Returns:
        ``"divergent"``; ``"lazy"`` (a quiet run that cannot catapult any more); ``"stuck"`` (at the
        constant predictor's loss with a vanished gradient); ``"recovered"`` (it rose and is back at
        the settling target for a whole window: the caller checks the curvature before stopping);
        or ``None`` to go on.
    """
    last, start = losses[-1], losses[0]
    if not math.isfinite(last) or last > divergence_level(start, constant_loss):
        return "divergent"
    steps = len(losses) - 1
    if (constant_loss and abs(last - constant_loss) <= COLLAPSE_BAND * constant_loss
            and grad_norm <= COLLAPSE_GRAD * grad_norm_start):
        return "stuck"
    peak = max(losses)
    rose = peak > (1.0 + RISE) * start
    if not rose:
        if steps < min_steps:
            return None
        if lr * lambda0 <= LAZY_MARGIN * 2.0 * (1.0 + momentum):
            return "lazy"
        r = spectral_radius(lr, lambda0, momentum)
        return "lazy" if r > 1.0 and 2.0 * steps * math.log(r) >= math.log(AMPLIFY) else None
    target = settling_target(start, trained_start, constant_loss)
    tail = losses[-SETTLE_WINDOW:]
    # back at the target for a whole window after the peak (momentum runs oscillate: no monotonicity)
    if losses.index(peak) < len(losses) - SETTLE_WINDOW and max(tail) <= target:
        return "recovered"
    return None


def classify(trace: ProbeTrace, *, constant_loss: float | None, trained_start: bool) -> tuple[Phase, str]:
    """Label one probe run.

    Args:
        trace: the run.
        constant_loss: the best constant predictor's loss, if known.
        trained_start: whether the start loss is already small.

    Returns:
        ``(phase, reason)``, the reason one line with the numbers.
    """
    losses = trace.losses
    start = losses[0]
    edge = stability_edge(trace.lr, trace.momentum)
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) < len(losses):
        step = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        return Phase.DIVERGENT, f"loss became non-finite at step {step}"
    peak = max(losses)
    peak_step = losses.index(peak)
    final = losses[-1]
    if peak > divergence_level(start, constant_loss):
        return Phase.DIVERGENT, f"loss grew to {peak / start:.3g}× start by step {peak_step}"
    curv = trace.curvature_end
    curv_txt = ("" if curv is None else
                f", curvature {curv / trace.curvature_start:.3g}× λ₀ = {curv / edge:.2f}·(2(1+β)/η)")
    rose = peak > (1.0 + RISE) * start
    converged = final <= convergence_target(start, trained_start, constant_loss)
    if not rose:
        return Phase.LAZY, (f"no rise (peak {peak / start:.3g}× start), final loss {final / start:.3g}× "
                            f"start{curv_txt}")
    rise_txt = f"loss peaked at {peak / start:.3g}× start at step {peak_step}"
    if not converged:
        return Phase.DIVERGENT, (f"{rise_txt} and did not recover in {trace.steps} steps "
                                 f"(final {final / start:.3g}× start)")
    if curv is None:
        return Phase.DIVERGENT, f"{rise_txt}; end curvature could not be measured"
    fell = curv < trace.curvature_start
    below_edge = curv <= (1.0 + EDGE_SLACK) * edge
    if not below_edge:
        return Phase.DIVERGENT, (f"{rise_txt}; loss came back ({final / start:.3g}× start) but curvature "
                                 f"{curv / edge:.2f}·(2(1+β)/η) stayed above the stability edge")
    if trace.curvature_start <= edge:
        # heavy-ball momentum amplifies transiently even on a stable quadratic: no catapult needed
        return Phase.LAZY, (f"transient rise ({peak / start:.3g}× start at step {peak_step}) with the start "
                            f"curvature already stable (λ₀ = {trace.curvature_start / edge:.2f}·(2(1+β)/η))"
                            f"{curv_txt}, final loss {final / start:.3g}× start")
    if fell:
        return Phase.CATAPULT, (f"{rise_txt}, curvature fell {trace.curvature_start / curv:.3g}× to "
                                f"{curv / edge:.2f}·(2(1+β)/η), final loss {final / start:.3g}× start")
    return Phase.LAZY, (f"transient rise ({peak / start:.3g}× start at step {peak_step}) without a "
                        f"curvature drop{curv_txt}, final loss {final / start:.3g}× start")


def is_collapsed(trace: ProbeTrace, smaller_rate_finals: list[float], constant_loss: float | None) -> bool:
    """Whether a run ended stuck at the trivial solution (contract §2).

    Args:
        trace: the run.
        smaller_rate_finals: final losses of the probes at smaller rates.
        constant_loss: the best constant predictor's loss (``None``: cannot tell, never collapsed).

    Returns:
        True when the final loss is within ``COLLAPSE_BAND`` of ``constant_loss``, the gradient has
        vanished, and some smaller rate learned clearly below ``constant_loss``.
    """
    if constant_loss is None or constant_loss <= 0:
        return False
    final = trace.losses[-1]
    if not math.isfinite(final):
        return False
    near = abs(final - constant_loss) <= COLLAPSE_BAND * constant_loss
    vanished = math.isfinite(trace.grad_norm_end) and (
        trace.grad_norm_end <= COLLAPSE_GRAD * trace.grad_norm_start)
    learned = any(math.isfinite(f) and f <= (1.0 - LEARNED_MARGIN) * constant_loss
                  for f in smaller_rate_finals)
    return near and vanished and learned
