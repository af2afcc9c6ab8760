"""Bracketing and the recommendation rule on hand-built probe lists (no training)."""

from __future__ import annotations

import math
import sys

import pytest

from etafinder.types import Phase, ProbeResult, ProbeTrace

CRIT = 0.2
rec = sys.modules["etafinder.recommend"]  # the package re-exports a function of the same name


def probe(mult: float, phase: str, collapsed: bool = False) -> ProbeResult:
    """A labelled probe at ``mult · η_crit``.

    Args:
        mult: the rate as a multiple of η_crit.
        phase: its phase name.
        collapsed: its collapsed flag.

    Returns:
        The probe.
    """
    t = ProbeTrace(lr=mult * CRIT, momentum=0.0, losses=(1.0, 0.5), grad_norm_start=1.0,
                   grad_norm_end=0.1, curvature_start=10.0, curvature_end=5.0,
                   curvature_end_converged=True, steps=1, settled=True, dead_fraction=None,
                   passes=2)
    return ProbeResult(trace=t, phase=Phase(phase), collapsed=collapsed, reason="synthetic")


def test_bracket_is_largest_stable_below_smallest_divergent():
    """The η_max bracket ignores stable probes above the first divergent one."""
    ps = [probe(0.5, "lazy"), probe(2, "catapult"), probe(3, "divergent"), probe(4, "catapult"),
          probe(8, "divergent")]
    assert rec.eta_max_bracket(ps) == pytest.approx((2 * CRIT, 3 * CRIT))
    assert rec.eta_max_bracket([probe(1, "lazy"), probe(2, "catapult")]) is None
    assert rec.eta_max_bracket([probe(1, "divergent")]) is None


def test_geometric_points_split_log_space_evenly():
    """k interior points make k+1 equal ratios."""
    pts = rec.geometric_points(1.0, 16.0, 3)
    assert pts == pytest.approx([2.0, 4.0, 8.0])


def test_recommends_catapult_probe_nearest_the_log_midpoint():
    """Window 1.3–4 η_crit: the log-midpoint is √(1.3·4) ≈ 2.28; the 2.0 probe is nearest."""
    ps = [probe(0.5, "lazy"), probe(1.3, "catapult"), probe(2.0, "catapult"), probe(3.0, "catapult"),
          probe(5.0, "divergent")]
    eta_max = 4.0 * CRIT
    assert rec.target_lr(ps, eta_max) == pytest.approx(math.sqrt(1.3 * 4.0) * CRIT)
    lr, phase, reason = rec.recommend(ps, CRIT, eta_max)
    assert (lr, phase) == (pytest.approx(2.0 * CRIT), Phase.CATAPULT)
    assert "log-midpoint" in reason and "window 1.3–4·η_crit" in reason


def test_collapsed_probes_are_never_recommended_and_close_the_window():
    """A collapsed probe is skipped, and the usable window ends at the first collapsed rate."""
    ps = [probe(1.3, "catapult"), probe(1.6, "catapult"), probe(2.3, "catapult", collapsed=True),
          probe(3.0, "catapult"), probe(4.0, "divergent")]
    assert rec.window(ps, 4.0 * CRIT) == pytest.approx((1.3 * CRIT, 2.3 * CRIT))
    lr, phase, _ = rec.recommend(ps, CRIT, 4.0 * CRIT)
    assert lr == pytest.approx(1.6 * CRIT) and phase is Phase.CATAPULT


def test_lazy_fallback_and_last_resort():
    """No catapult rate: the largest usable lazy probe; nothing usable: FALLBACK·η_crit, never None."""
    ps = [probe(0.5, "lazy"), probe(0.9, "lazy"), probe(1.3, "lazy", collapsed=True),
          probe(2.0, "divergent")]
    assert rec.recommend(ps, CRIT, None)[:2] == (pytest.approx(0.9 * CRIT), Phase.LAZY)
    lr, phase, reason = rec.recommend([probe(1.0, "divergent")], CRIT, None)
    assert lr == pytest.approx(rec.FALLBACK * CRIT) and phase is Phase.LAZY
    assert "fallback" in reason


def test_no_divergence_uses_largest_catapult_probe_as_top():
    """Without η_max the window's top is the largest catapult probe."""
    ps = [probe(1.0, "catapult"), probe(4.0, "catapult"), probe(16.0, "catapult")]
    assert rec.target_lr(ps, None) == pytest.approx(4.0 * CRIT)
    assert rec.recommend(ps, CRIT, None)[0] == pytest.approx(4.0 * CRIT)
