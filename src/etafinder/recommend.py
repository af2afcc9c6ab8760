"""Candidate rates, η_max from the probes, and the recommended rate.

Recommendation rule: inside the measured catapult window ``[η_lo, η_hi]`` — ``η_lo`` the smallest
non-collapsed catapult probe, ``η_hi`` the measured η_max, or the smallest collapsed probe above ``η_lo``
when that comes first (a collapsed rate is never usable), or the largest catapult probe when no probe
diverged — the target is the point ``POSITION`` of the way up in log-space::

    η_target = η_lo^(1 − POSITION) · η_hi^POSITION

and the recommendation is the non-collapsed catapult probe nearest to it in log-space (the diagnosis
probes the target itself first, so the recommended rate is always one that was measured). When no catapult
rate exists it is the largest non-collapsed lazy probe; when every probe diverged or collapsed it falls
back to ``FALLBACK × η_crit`` (phase lazy: below the linear-stability edge, unmeasured; the reason says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .types import Phase, ProbeResult

#: where the target sits in the catapult window, in log-space (0: its bottom, 1: η_max)
POSITION = 0.5
#: the fallback rate, as a multiple of η_crit, when no probe is usable
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


def _usable(probes: Sequence[ProbeResult], phase: Phase) -> list[ProbeResult]:
    return [p for p in probes if p.phase is phase and not p.collapsed]


def window(probes: Sequence[ProbeResult], eta_max: float | None) -> tuple[float, float] | None:
    """The usable catapult window ``(η_lo, η_hi)`` (see the module docstring), or ``None``."""
    cat = _usable(probes, Phase.CATAPULT)
    if eta_max is not None:
        cat = [p for p in cat if p.lr < eta_max]
    if not cat:
        return None
    lo = min(p.lr for p in cat)
    collapsed = [p.lr for p in probes if p.collapsed and p.lr > lo]
    tops = [t for t in (eta_max, min(collapsed, default=None)) if t is not None]
    hi = min(tops) if tops else max(p.lr for p in cat)
    return lo, hi


def target_lr(probes: Sequence[ProbeResult], eta_max: float | None) -> float | None:
    """The target of the recommendation rule, or ``None`` without a usable catapult probe."""
    w = window(probes, eta_max)
    return None if w is None else w[0] ** (1.0 - POSITION) * w[1] ** POSITION


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
    w = window(probes, eta_max)
    if w is not None:
        target = target_lr(probes, eta_max)
        assert target is not None
        cat = [p for p in _usable(probes, Phase.CATAPULT) if w[0] <= p.lr <= w[1]]
        best = min(cat, key=lambda p: (abs(math.log(p.lr / target)), p.lr))
        return best.lr, Phase.CATAPULT, (
            f"catapult probe nearest the usable window's log-midpoint {target / eta_crit:.3g}·η_crit "
            f"(window {w[0] / eta_crit:.3g}–{w[1] / eta_crit:.3g}·η_crit)")
    lazy = _usable(probes, Phase.LAZY)
    if lazy:
        best = max(lazy, key=lambda p: p.lr)
        return best.lr, Phase.LAZY, (
            f"no catapult rate found: the largest lazy probe, {best.lr / eta_crit:.3g}·η_crit")
    return FALLBACK * eta_crit, Phase.LAZY, (
        f"every probe diverged or collapsed: fallback {FALLBACK}·η_crit (below the linear-stability "
        "edge; not measured)")
