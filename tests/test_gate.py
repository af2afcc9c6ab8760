"""The gate: phase_for_lr on synthetic reports, the worse end of unresolved brackets, exit codes."""

from __future__ import annotations

import math

import pytest

from diagnosis_fixtures import make_diagnosis, make_report, probe
from etafinder.errors import InputError
from etafinder.gate import DEFAULT_ALLOWED, ExitCode, decide, parse_allowed, phase_for_lr
from etafinder.types import Phase

L, C, D = Phase.LAZY, Phase.CATAPULT, Phase.DIVERGENT


@pytest.fixture(scope="module")
def report():
    """Probes at 0.08 lazy, 0.208/0.32/0.58 catapult, 0.62/1.28 divergent."""
    return make_report()


@pytest.mark.parametrize(
    ("lr", "phase", "decided", "words"),
    [
        (0.08, L, True, "probed at this rate"),
        (0.08 * (1 + 1e-10), L, True, "probed at this rate"),
        (0.01, L, True, "below the smallest probe"),
        (0.25, C, True, "between two catapult probes"),
        (0.32, C, True, "probed at this rate"),
        (0.9, D, True, "between two divergent probes"),
        (5.0, D, True, "above a divergent probe"),
        (0.1, C, False, "unresolved bracket between lazy at η=0.08 and catapult at η=0.208"),
        (0.6, D, False, "taking the worse phase (divergent)"),
    ],
    ids=lambda v: f"{v}" if isinstance(v, float) else None,
)
def test_phase_for_lr(report, lr, phase, decided, words):
    """Each position relative to the probes gives the expected phase, decidedness and evidence."""
    v = phase_for_lr(report, lr)
    assert (v.phase, v.decided, v.collapsed) == (phase, decided, False)
    assert words in v.reason
    assert v.lr == lr and v.evidence


def test_exact_match_tolerance(report):
    """A probe decides only within 1e-9 relative; further off it is a neighbour."""
    assert "probed at this rate" in phase_for_lr(report, 0.32 * (1 + 5e-10)).reason
    assert "probed at this rate" not in phase_for_lr(report, 0.32 * (1 + 1e-7)).reason


def test_reason_names_multiple_of_eta_crit(report):
    """The evidence line says where the rate sits relative to η_crit."""
    assert "(2×η_crit)" in phase_for_lr(report, 0.32).reason


def test_above_every_probe_without_divergence():
    """No divergent probe: a rate above every probe is unresolved, worse phase divergent."""
    r = make_report(make_diagnosis((probe(0.08, L), probe(0.3, C)), bracket=None))
    v = phase_for_lr(r, 1.0)
    assert v.phase is D and not v.decided and "above every probe" in v.reason
    assert decide(v) is ExitCode.FAIL


def test_below_a_non_lazy_smallest_probe():
    """The smallest probe is a catapult: below it is unresolved, worse phase catapult."""
    r = make_report(make_diagnosis((probe(0.2, C), probe(0.9, D)), bracket=(0.2, 0.9)))
    v = phase_for_lr(r, 0.1)
    assert v.phase is C and not v.decided


@pytest.mark.parametrize(
    ("probes", "lr", "phase", "collapsed", "decided"),
    [
        ((probe(0.2, C), probe(0.4, C, collapsed=True)), 0.3, C, True, False),
        ((probe(0.2, C, collapsed=True), probe(0.4, D)), 0.3, D, True, False),
        ((probe(0.2, L), probe(0.4, L, collapsed=True)), 0.3, L, True, False),
        ((probe(0.2, L), probe(0.4, C, collapsed=True)), 0.4, C, True, True),
    ],
    ids=["catapult|collapsed", "collapsed|divergent", "lazy|lazy-collapsed", "at-collapsed"],
)
def test_collapsed_neighbours(probes, lr, phase, collapsed, decided):
    """A collapsed end never decides a bracket, and its collapse carries into the worse phase."""
    r = make_report(make_diagnosis(probes, bracket=None))
    v = phase_for_lr(r, lr)
    assert (v.phase, v.collapsed, v.decided) == (phase, collapsed, decided)
    assert decide(v) is ExitCode.FAIL


@pytest.mark.parametrize(
    ("phase", "collapsed", "allowed", "code"),
    [
        (L, False, DEFAULT_ALLOWED, ExitCode.OK),
        (C, False, DEFAULT_ALLOWED, ExitCode.OK),
        (D, False, DEFAULT_ALLOWED, ExitCode.FAIL),
        (C, True, DEFAULT_ALLOWED, ExitCode.FAIL),
        (C, False, (L,), ExitCode.FAIL),
        (D, False, (L, C, D), ExitCode.OK),
        (L, True, (L, C, D), ExitCode.FAIL),
    ],
)
def test_decide(phase, collapsed, allowed, code):
    """Allowed and not collapsed passes; anything else fails."""
    from etafinder.gate import Verdict

    assert decide(Verdict(0.1, phase, collapsed, True, "", (0.1,)), allowed) is code


def test_exit_code_values():
    """The contract's exit codes, and 3 for an internal error."""
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130]


def test_parse_allowed():
    """--allow parses names, trims spaces, and rejects unknown phases."""
    assert parse_allowed("lazy, catapult") == {L, C}
    assert parse_allowed("LAZY") == {L}
    for bad in ("", "lazy,chaos", ","):
        with pytest.raises(InputError, match="--allow"):
            parse_allowed(bad)


@pytest.mark.parametrize("lr", [0.0, -1.0, math.inf, math.nan])
def test_bad_lr(report, lr):
    """The gate itself refuses rates the CLI should have rejected."""
    with pytest.raises(ValueError):
        phase_for_lr(report, lr)
