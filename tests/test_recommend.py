"""Bracketing and the recommendation rule on hand-built probe lists (no training)."""

from __future__ import annotations

import sys

import pytest

import etafinder.recommend  # noqa: F401  (for sys.modules below)
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
    assert rec.geometric_points(1.0, 16.0, 3) == pytest.approx([2.0, 4.0, 8.0])


def test_recommends_the_largest_usable_probe_below_safety_times_eta_max():
    """D = η_max = 10·η_crit: target 3·η_crit; the 3.0 catapult probe is recommended, not 4.5."""
    ps = [probe(0.5, "lazy"), probe(1.3, "catapult"), probe(3.0, "catapult"), probe(4.5, "catapult"),
          probe(12.0, "divergent")]
    eta_max = 10.0 * CRIT
    assert rec.target_lr(ps, eta_max) == pytest.approx(rec.SAFETY * eta_max)
    lr, phase, reason = rec.recommend(ps, CRIT, eta_max)
    assert (lr, phase) == (pytest.approx(3.0 * CRIT), Phase.CATAPULT)
    assert "D = η_max = 10·η_crit" in reason


def test_the_phase_is_the_measured_one():
    """A target below η_crit gives a lazy recommendation, labelled as measured."""
    ps = [probe(0.5, "lazy"), probe(1.5, "catapult"), probe(2.0, "divergent")]
    lr, phase, _ = rec.recommend(ps, CRIT, 1.8 * CRIT)
    assert (lr, phase) == (pytest.approx(0.5 * CRIT), Phase.LAZY)


def test_a_collapsed_rate_below_eta_max_is_the_danger_edge():
    """Collapse at 1.6·η_crit caps the target at 0.48·η_crit; collapsed probes are never picked."""
    ps = [probe(0.3, "lazy"), probe(0.45, "lazy"), probe(1.3, "catapult"),
          probe(1.6, "catapult", collapsed=True), probe(3.0, "catapult", collapsed=True),
          probe(4.0, "divergent")]
    assert rec.danger_edge(ps, 3.5 * CRIT) == (pytest.approx(1.6 * CRIT), "the smallest collapsed rate")
    lr, phase, _ = rec.recommend(ps, CRIT, 3.5 * CRIT)
    assert (lr, phase) == (pytest.approx(0.45 * CRIT), Phase.LAZY)


def test_fallback_is_never_none_and_never_above_the_target():
    """Nothing usable below the target: min(FALLBACK·η_crit, target), phase lazy."""
    lr, phase, reason = rec.recommend([probe(1.0, "divergent")], CRIT, None)
    assert phase is Phase.LAZY and "fallback" in reason
    assert lr == pytest.approx(min(rec.FALLBACK, rec.SAFETY * 1.0) * CRIT)
    ps = [probe(0.5, "lazy", collapsed=True), probe(3.0, "divergent")]
    assert rec.recommend(ps, CRIT, None)[0] == pytest.approx(rec.SAFETY * 0.5 * CRIT)
    assert rec.recommend([], CRIT, None)[0] == pytest.approx(rec.FALLBACK * CRIT)


def test_no_divergence_uses_the_largest_probe_as_the_edge():
    """Without η_max or collapse, D is the largest rate probed."""
    ps = [probe(1.0, "catapult"), probe(4.0, "catapult"), probe(16.0, "catapult")]
    assert rec.danger_edge(ps, None)[0] == pytest.approx(16.0 * CRIT)
    assert rec.recommend(ps, CRIT, None)[0] == pytest.approx(4.0 * CRIT)
