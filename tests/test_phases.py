"""Phase labels on synthetic traces: each phase and the edge cases named in the issue."""

from __future__ import annotations

import math

import pytest

from etafinder import phases
from etafinder.phases import classify, is_collapsed, stop_reason
from etafinder.types import Phase, ProbeTrace

LAM = 10.0  # λ₀ of the synthetic runs; η_crit = 0.2


def trace(losses, *, lr=0.3, curv_end=None, momentum=0.0, grad_end=1e-3, grad_start=1.0,
          dead=None) -> ProbeTrace:
    """A synthetic probe trace.

    Args:
        losses: the loss at every step.
        lr: learning rate.
        curv_end: end curvature as a multiple of the stability edge 2(1+β)/η.
        momentum: heavy-ball β.
        grad_end: final gradient norm.
        grad_start: start gradient norm.
        dead: dead ReLU fraction.

    Returns:
        The trace.
    """
    edge = 2 * (1 + momentum) / lr
    return ProbeTrace(lr=lr, momentum=momentum, losses=tuple(float(v) for v in losses),
                      grad_norm_start=grad_start, grad_norm_end=grad_end, curvature_start=LAM,
                      curvature_end=None if curv_end is None else curv_end * edge,
                      curvature_end_converged=True, steps=len(losses) - 1, settled=True,
                      dead_fraction=dead, passes=0)


def decay(n, start=1.0, rate=0.9):
    """A geometric decay from ``start``."""
    return [start * rate**i for i in range(n)]


CATAPULT = [1.0, 3.0, 12.0, 41.0, 20.0, 2.0, 0.5, 0.1, 0.05, 0.02]

CASES = [
    # (id, losses, kwargs, expected phase, substring of the reason)
    ("lazy-decay", decay(30), {"lr": 0.1, "curv_end": 0.5}, Phase.LAZY, "no rise"),
    ("lazy-noise", [1.0 + 0.03 * math.sin(7 * i) - 0.01 * i for i in range(40)],
     {"lr": 0.1, "curv_end": 0.5}, Phase.LAZY, "no rise"),
    ("catapult-mse", CATAPULT, {"curv_end": 0.6}, Phase.CATAPULT, "peaked at 41× start at step 3"),
    ("catapult-slow-cross-entropy",
     [2.30 + 0.012 * i for i in range(30)] + [2.6 - 0.05 * i for i in range(25)],
     {"curv_end": 0.8}, Phase.CATAPULT, "curvature fell"),
    ("nonfinite-at-step-1", [1.0, math.inf], {}, Phase.DIVERGENT, "non-finite at step 1"),
    ("nan", [1.0, 5.0, math.nan], {}, Phase.DIVERGENT, "non-finite at step 2"),
    ("explodes", [10.0**i for i in range(9)], {}, Phase.DIVERGENT, "grew to"),
    ("spike-never-recovers", [1.0, 5.0, 30.0, 25.0, 28.0, 26.0, 27.0], {"curv_end": 0.9},
     Phase.DIVERGENT, "did not recover"),
    ("recovers-above-edge", CATAPULT, {"curv_end": 1.5}, Phase.DIVERGENT, "above the stability edge"),
    ("transient-without-drop", [1.0, 1.3, 0.8, 0.5, 0.3], {"lr": 0.205, "curv_end": 1.03},
     Phase.LAZY, "without a curvature drop"),
    ("momentum-transient-stable", [1.0, 6.0, 3.0, 1.0, 0.5, 0.2],
     {"lr": 0.3, "momentum": 0.9, "curv_end": 0.5}, Phase.LAZY, "already stable"),
]


@pytest.mark.parametrize(("losses", "kwargs", "phase", "needle"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(losses, kwargs, phase, needle):
    """Each synthetic run gets its phase and a reason with the numbers."""
    got, reason = classify(trace(losses, **kwargs), constant_loss=None, trained_start=False)
    assert got is phase, reason
    assert needle in reason


def test_trained_start_converges_back_near_start():
    """From a trained start a catapult settles near the (tiny) start loss instead of below it."""
    losses = [1e-4, 1e-3, 1e-1, 2e-2, 1e-3, 1.6e-3, 1.5e-3]
    t = trace(losses, curv_end=0.7)
    assert classify(t, constant_loss=0.09, trained_start=True)[0] is Phase.CATAPULT
    assert classify(t, constant_loss=0.09, trained_start=False)[0] is Phase.DIVERGENT
    high = trace([*losses[:-1], 1e-4 + 0.03 * 0.09], curv_end=0.7)  # 3% of the way back: not settled
    assert classify(high, constant_loss=0.09, trained_start=True)[0] is Phase.DIVERGENT


def test_thresholds_are_documented_and_match_constants():
    """Every threshold in the report has a value equal to the module constant and a description."""
    for name, entry in phases.THRESHOLDS.items():
        assert entry["value"] == getattr(phases, name.upper())
        assert entry["description"]


def test_collapse_needs_trivial_loss_vanishing_gradient_and_a_learner():
    """Collapsed only when at the constant predictor's loss, gradient gone, and a smaller rate learned."""
    const = math.log(10)
    stuck = trace([*decay(20, start=2.5, rate=0.99)[:-1], const * 1.01], grad_end=1e-4, dead=1.0)
    assert is_collapsed(stuck, [0.5], const)
    assert not is_collapsed(stuck, [const * 0.95], const)  # nothing smaller learned clearly
    assert not is_collapsed(stuck, [], const)
    slow_lazy = trace([const] * 20, grad_end=0.5)  # cross_entropy at log K, gradient alive
    assert not is_collapsed(slow_lazy, [0.5], const)
    assert not is_collapsed(stuck, [0.5], None)  # unknown constant predictor: never flagged


def test_stop_reason_divergence_and_lazy_settling():
    """The on-line rule stops a divergent run at once and a stable lazy run after min_steps only."""
    kw = {"constant_loss": 1.0, "trained_start": False, "min_steps": 5}
    assert stop_reason([1.0, math.nan], 0.1, LAM, 0.0, **kw) == "divergent"
    assert stop_reason([1.0, 2e6], 0.1, LAM, 0.0, **kw) == "divergent"
    assert stop_reason(decay(4), 0.1, LAM, 0.0, **kw) is None  # too early
    assert stop_reason(decay(6), 0.1, LAM, 0.0, **kw) == "lazy"
    # above the edge (ηλ₀ = 2.2 > 2): no early lazy verdict while a catapult may still start; the top
    # mode grows 1.2× a step, so only after 2t·log 1.2 ≥ log AMPLIFY, t = 38, is a quiet run settled
    assert stop_reason(decay(38), 0.22, LAM, 0.0, **kw) is None
    assert stop_reason(decay(39), 0.22, LAM, 0.0, **kw) == "lazy"
    # with momentum the edge is 2(1+β): ηλ₀ = 2.2 is stable for β = 0.5
    assert stop_reason(decay(6), 0.22, LAM, 0.5, **kw) == "lazy"


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9], ids=lambda b: f"beta={b}")
@pytest.mark.parametrize("x", [0.3, 1.0, 1.9, 2.5, 4.0])
def test_spectral_radius_matches_the_iteration_matrix(momentum, x):
    """The closed-form radius equals the top |eigenvalue| of [[1+β−ηλ, −β], [1, 0]]."""
    import numpy as np

    lr = x * 2 * (1 + momentum) / LAM
    mat = np.array([[1 + momentum - lr * LAM, -momentum], [1.0, 0.0]])
    assert phases.spectral_radius(lr, LAM, momentum) == pytest.approx(
        max(abs(np.linalg.eigvals(mat))), rel=1e-9)
    assert (phases.spectral_radius(lr, LAM, momentum) > 1) == (x > 1)


def test_stop_reason_settles_a_catapult_after_the_window():
    """A run that rose is settled once a whole window is back at the convergence target."""
    kw = {"constant_loss": 1.0, "trained_start": False, "min_steps": 5}
    assert stop_reason(CATAPULT[:7], 0.3, LAM, 0.0, **kw) is None
    assert stop_reason(CATAPULT, 0.3, LAM, 0.0, **kw) is None  # 2.0 is still in the window
    assert stop_reason([*CATAPULT, 0.01], 0.3, LAM, 0.0, **kw) == "recovered"
    oscillating = [*CATAPULT[:6], 0.5, 0.9, 0.4, 0.8, 0.3]
    assert stop_reason(oscillating, 0.3, LAM, 0.9, **kw) == "recovered"
    assert stop_reason([*CATAPULT[:6], 0.5, 1.2, 0.4, 0.8, 0.3], 0.3, LAM, 0.9, **kw) is None


def test_stop_reason_near_the_trivial_loss():
    """Near the constant predictor's loss: stuck (vanished gradient) stops; merely below start does not."""
    const = math.log(10)
    kw = {"trained_start": False, "min_steps": 5}
    rose = [const, 3 * const, 10 * const, *([0.995 * const] * 6)]
    # back below its start but only at the trivial loss, gradient alive: not settled
    assert stop_reason(rose, 0.3, LAM, 0.0, constant_loss=const, grad_norm=0.5, grad_norm_start=1.0,
                       **kw) is None
    assert stop_reason(rose, 0.3, LAM, 0.0, constant_loss=const, grad_norm=1e-4, grad_norm_start=1.0,
                       **kw) == "stuck"
    learned = [*rose[:3], *([0.5 * const] * 6)]
    assert stop_reason(learned, 0.3, LAM, 0.0, constant_loss=const, grad_norm=0.5,
                       grad_norm_start=1.0, **kw) == "recovered"
