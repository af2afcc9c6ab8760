"""Candidate rates, η_max from the probes, and the recommended rate.

Recommendation rule. Let the *danger edge* be the smallest measured rate that is unusable::

    D = min(η_max, smallest collapsed probe rate)      (the largest probe rate if neither exists)

The target is ``SAFETY · D`` (the diagnosis probes the target itself), and the recommendation is the
largest usable probe — not divergent, not collapsed — at or below it, with the phase that probe was
measured in. When every probe at or below the target diverged or collapsed, it falls back to
``min(FALLBACK · η_crit, SAFETY · D)`` (phase lazy: below the linear-stability edge; the reason says it
was not measured as usable).

Why a fraction of the danger edge and not the middle of the catapult window: on the digits benchmark
(``benchmarks/bench_recommend.py``, full-batch GD for 300 steps, 5 seeds) the best rate of a 12-point
grid sat at 0.43·η_max for the MLP (median), inside the catapult phase's lower half, but at 0.19–0.29·η_crit
for the CNN with cross-entropy, whose probes collapse (every ReLU dead) from just below η_crit on. The
window's log-midpoint lost 3 points of validation accuracy on the CNN (it rode the collapse edge), while
``0.3·D`` was within 0.2 points of the grid's best on both. Near the collapse edge a rate that survives a
short probe can still collapse in a long run: the margin is what makes the rate safe to train with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .types import Phase, ProbeResult

#: the target as a fraction of the danger edge D = min(η_max, first collapsed rate)
SAFETY = 0.3
#: the fallback rate, as a multiple of η_crit, when no probe at or below the target is usable
FALLBACK = 0.5


def grid_lrs(eta_crit: float, multiples: Sequence[float]) -> list[float]:
    """The candidate rates ``m · η_crit``."""
    return [float(m) * eta_crit for m in multiples]


def eta_max_bracket(probes: Sequence[ProbeResult]) -> tuple[float, float] | None:
    """``(largest non-divergent rate, smallest divergent rate)`` below it, or ``None``."""
    divergent = [p.lr for p in probes if p.phase is Phase.DIVERGENT]
    if not divergent:
        return None
    hi = min(divergent)
    below = [p.lr for p in probes if p.phase is not Phase.DIVERGENT and p.lr < hi]
    return (max(below), hi) if below else None


def geometric_points(lo: float, hi: float, k: int) -> list[float]:
    """``k`` points splitting ``[lo, hi]`` into ``k + 1`` equal parts in log-space."""
    r = math.log(hi / lo)
    return [lo * math.exp(r * (i + 1) / (k + 1)) for i in range(k)]


def usable(probe: ProbeResult) -> bool:
    """A probe whose rate could be recommended: neither divergent nor collapsed."""
    return probe.phase is not Phase.DIVERGENT and not probe.collapsed


def danger_edge(probes: Sequence[ProbeResult], eta_max: float | None) -> tuple[float, str]:
    """``D`` of the module docstring, and what it is.

    Args:
        probes: labelled probes (at least one).
        eta_max: the measured η_max, or ``None``.

    Returns:
        ``(D, description)``.
    """
    collapsed = min((p.lr for p in probes if p.collapsed), default=None)
    if collapsed is not None and (eta_max is None or collapsed < eta_max):
        return collapsed, "the smallest collapsed rate"
    if eta_max is not None:
        return eta_max, "η_max"
    return max(p.lr for p in probes), "the largest rate probed (none diverged or collapsed)"


def target_lr(probes: Sequence[ProbeResult], eta_max: float | None) -> float | None:
    """``SAFETY · D``, or ``None`` without probes."""
    if not probes:
        return None
    return SAFETY * danger_edge(probes, eta_max)[0]


def recommend(probes: Sequence[ProbeResult], eta_crit: float,
              eta_max: float | None) -> tuple[float, Phase, str]:
    """Pick the recommended rate from labelled probes (see the module docstring).

    Args:
        probes: labelled probes.
        eta_crit: ``2(1+β)/λ₀``.
        eta_max: the measured η_max, or ``None``.

    Returns:
        ``(lr, phase, reason)``; ``lr`` is never ``None``.
    """
    if not probes:
        return FALLBACK * eta_crit, Phase.LAZY, (
            f"no probes: fallback {FALLBACK}·η_crit (below the linear-stability edge; not measured)")
    edge, what = danger_edge(probes, eta_max)
    target = SAFETY * edge
    below = [p for p in probes if usable(p) and p.lr <= target * (1.0 + 1e-9)]
    rule = f"{SAFETY}·D, D = {what} = {edge / eta_crit:.3g}·η_crit"
    if below:
        best = max(below, key=lambda p: p.lr)
        return best.lr, best.phase, (
            f"the largest usable probe at or below {rule}: {best.lr / eta_crit:.3g}·η_crit, "
            f"measured {best.phase.value}")
    lr = min(FALLBACK * eta_crit, target)
    return lr, Phase.LAZY, (
        f"every probe at or below {rule} diverged or collapsed: fallback {lr / eta_crit:.3g}·η_crit "
        "(below the linear-stability edge; not measured as usable)")
