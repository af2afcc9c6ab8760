"""The gate behind ``etafinder check`` (contract §3, §5): pure functions of a report dict.

``phase_for_lr(report, lr)`` reads the phase of a rate off the report's probes:

* a probe at ``lr`` itself (within :data:`REL_TOL` relative) decides it;
* so does lying between two neighbouring probes of the same phase, neither collapsed; below the
  smallest probe counts as lying between it and a lazy η → 0, above the largest as between it and a
  divergent η → ∞ (the phases are ordered along η: lazy, then catapult, then divergent);
* anything else is an **unresolved bracket**. The verdict then carries the worse of the two ends and
  ``decided=False``: ``check --from-report`` reports that worse phase and says so; ``check PATH.py``
  probes the rate itself instead.

``decide(verdict, allowed)`` turns a verdict into an :class:`ExitCode`: a collapsed rate always
fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .errors import InputError
from .types import Phase

#: A probe within this relative distance of the rate asked about is a probe at that rate.
REL_TOL = 1e-9
#: The default of ``check --allow``.
DEFAULT_ALLOWED = (Phase.LAZY, Phase.CATAPULT)

_ORDER = {Phase.LAZY: 0, Phase.CATAPULT: 1, Phase.DIVERGENT: 2}


class ExitCode(IntEnum):
    """The exit codes of contract §5, plus ``INTERNAL`` for a bug in etafinder itself.

    ``INTERNAL`` (3) extends the contract so that 1 keeps meaning exactly "this rate is not allowed"
    and 2
    "bad input": a CI job can tell a failed gate from a crash.
    """

    OK = 0
    FAIL = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130


@dataclass(frozen=True)
class Verdict:
    """The phase of one learning rate, and how it was found.

    Attributes:
        lr: the rate asked about.
        phase: its phase (for an unresolved bracket: the worse end's).
        collapsed: whether that phase comes with a collapse (never allowed).
        decided: whether the probes decide it; ``False`` for an unresolved bracket.
        reason: one line with the evidence.
        evidence: the probe rates the verdict rests on.
    """

    lr: float
    phase: Phase
    collapsed: bool
    decided: bool
    reason: str
    evidence: tuple[float, ...]


def _rel(lr: float, eta_crit: Any) -> str:
    return (
        f" ({lr / eta_crit:.3g}×η_crit)" if isinstance(eta_crit, (int, float)) and eta_crit else ""
    )


def _describe(p: Mapping[str, Any]) -> str:
    s = f"{Phase(p['phase']).value}{', collapsed' if p['collapsed'] else ''}"
    return f"{s} at η={p['lr']:.6g}"


def phase_for_lr(report: Mapping[str, Any], lr: float) -> Verdict:
    """The phase of ``lr`` according to a report's probes.

    Args:
        report: a validated report dict (see :mod:`etafinder.report`).
        lr: a positive, finite learning rate.

    Returns:
        The :class:`Verdict`.

    Raises:
        ValueError: for a non-positive or non-finite ``lr``, or a report without probes.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive and finite, got {lr}")
    probes = sorted(report["probes"], key=lambda p: p["lr"])
    if not probes:
        raise ValueError("the report has no probes")
    eta_crit = report.get("eta_crit")
    at = f"η={lr:.6g}{_rel(lr, eta_crit)}"

    exact = [p for p in probes if abs(p["lr"] - lr) <= REL_TOL * max(abs(lr), abs(p["lr"]))]
    if exact:
        p = exact[0]
        reason = f"{at}: probed at this rate: {_describe(p)}"
        if p.get("reason"):
            reason += f" ({p['reason']})"
        return Verdict(lr, Phase(p["phase"]), bool(p["collapsed"]), True, reason, (p["lr"],))

    below = [p for p in probes if p["lr"] < lr]
    above = [p for p in probes if p["lr"] > lr]
    lo = below[-1] if below else None
    hi = above[0] if above else None
    ends = [p for p in (lo, hi) if p is not None]
    evidence = tuple(p["lr"] for p in ends)

    if lo is None:  # below every probe: the other end is η → 0, lazy
        assert hi is not None
        if Phase(hi["phase"]) is Phase.LAZY and not hi["collapsed"]:
            return Verdict(
                lr,
                Phase.LAZY,
                False,
                True,
                f"{at}: below the smallest probe, which is lazy at η={hi['lr']:.6g}",
                evidence,
            )
        return Verdict(
            lr,
            Phase(hi["phase"]),
            bool(hi["collapsed"]),
            False,
            f"{at}: below every probe; the smallest is {_describe(hi)}; unresolved, "
            f"taking the worse phase",
            evidence,
        )
    if hi is None:  # above every probe: the other end is η → ∞, divergent
        if Phase(lo["phase"]) is Phase.DIVERGENT:
            return Verdict(
                lr,
                Phase.DIVERGENT,
                bool(lo["collapsed"]),
                True,
                f"{at}: above a divergent probe at η={lo['lr']:.6g}",
                evidence,
            )
        return Verdict(
            lr,
            Phase.DIVERGENT,
            False,
            False,
            f"{at}: above every probe (largest: {_describe(lo)}); unresolved, taking the worse "
            f"phase (divergent)",
            evidence,
        )
    same = lo["phase"] == hi["phase"] and not lo["collapsed"] and not hi["collapsed"]
    if same:
        return Verdict(
            lr,
            Phase(lo["phase"]),
            False,
            True,
            f"{at}: between two {lo['phase']} probes at η={lo['lr']:.6g} and η={hi['lr']:.6g}",
            evidence,
        )
    # the worse end: the later phase, collapsed if either end is (so it fails whenever either would)
    phase = max(Phase(lo["phase"]), Phase(hi["phase"]), key=_ORDER.__getitem__)
    collapsed = bool(lo["collapsed"] or hi["collapsed"])
    worse = f"{phase.value}{', collapsed' if collapsed else ''}"
    return Verdict(
        lr,
        phase,
        collapsed,
        False,
        f"{at}: inside an unresolved bracket between {_describe(lo)} and {_describe(hi)}; "
        f"taking the worse phase ({worse})",
        evidence,
    )


def parse_allowed(text: str) -> frozenset[Phase]:
    """Parse ``--allow``: comma-separated phase names.

    Args:
        text: e.g. ``"lazy,catapult"``.

    Returns:
        The allowed phases.

    Raises:
        InputError: for an empty list or an unknown phase name.
    """
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    known = [p.value for p in Phase]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise InputError(
            f"--allow {text!r}: expected comma-separated phases from {', '.join(known)}",
            "For example: --allow lazy,catapult (the default) or --allow lazy.",
        )
    return frozenset(Phase(n) for n in names)


def decide(verdict: Verdict, allowed: Iterable[Phase] = DEFAULT_ALLOWED) -> ExitCode:
    """The exit code of ``check`` for a verdict.

    Args:
        verdict: from :func:`phase_for_lr`.
        allowed: the phases that pass (a collapsed rate never passes).

    Returns:
        ``ExitCode.OK`` or ``ExitCode.FAIL``.
    """
    ok = verdict.phase in set(allowed) and not verdict.collapsed
    return ExitCode.OK if ok else ExitCode.FAIL
