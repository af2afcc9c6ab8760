"""Rendering: the panels and tables hold the report's numbers; plain output without a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from diagnosis_fixtures import make_diagnosis, make_report, probe
from etafinder.render import (
    SPARK_BAD,
    ProgressDisplay,
    curvature_panel,
    make_console,
    num,
    probe_reasons,
    probe_table,
    recommendation_panel,
    sparkline,
    summary,
    verdict_line,
)
from etafinder.types import Phase


def render(renderable, width: int = 140) -> str:
    """Text of a renderable as a recording console prints it."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_curvature_panel():
    """λ₀ with its spread, η_crit, η_max with its bracket, what it is valid for, the solver."""
    text = render(curvature_panel(make_report()))
    assert "λ₀" in text and "12.5 ± 0.37" in text and "3 disjoint subsets of 64 samples" in text
    assert "0.16" in text and "2(1+β)/λ₀" in text
    assert "0.59967" in text and "bisected between 0.58 and 0.62" in text
    assert (
        "torch.optim.SGD(momentum=0, dampening=0, nesterov=False)" in text
        and "64 samples (of 256)" in text
        and "loss mse" in text
    )
    assert "lanczos in output space" in text and "14 iterations" in text and "converged" in text


def test_curvature_panel_without_eta_max_or_spread():
    """No divergent probe and no spread are said plainly."""
    d = make_diagnosis(
        (probe(0.08, Phase.LAZY), probe(0.3, Phase.CATAPULT)), bracket=None, spread=False
    )
    text = render(curvature_panel(make_report(d)))
    assert "not found: no probe diverged (largest probed η=0.3)" in text
    assert "no sampling spread" in text


def test_probe_table_rows():
    """One row per probe with its multiple of η_crit, phase, collapsed flag, losses and steps."""
    d = make_diagnosis(
        (
            probe(0.08, Phase.LAZY),
            probe(0.32, Phase.CATAPULT, collapsed=True),
            probe(0.62, Phase.DIVERGENT),
        )
    )
    text = render(probe_table(make_report(d)))
    lines = [
        ln
        for ln in text.splitlines()
        if "│" in ln and ("0.08" in ln or "0.32" in ln or "0.62" in ln)
    ]
    assert len(lines) == 3
    lazy, cat, div = lines
    assert "0.5 " in lazy and "lazy" in lazy and " no " in lazy
    assert "2 " in cat and "catapult" in cat and "yes" in cat and "60" in cat
    assert "divergent" in div and "inf" in div and SPARK_BAD in div
    assert "λ_end/(2/η)" in text


def test_probe_reasons_and_momentum_header():
    """Reasons are listed by rate; with momentum the edge is 2(1+β)/η."""
    r = make_report(momentum=0.9)
    assert "synthetic catapult" in render(probe_reasons(r))
    assert "λ_end/(2(1+β)/η)" in render(probe_table(r), width=160)


def test_recommendation_panel():
    """Rate, multiple of η_crit, phase, why, and the cost in sample passes."""
    text = render(recommendation_panel(make_report()))
    assert "0.32  (2×η_crit)" in text and "catapult" in text and "synthetic recommendation" in text
    assert "sample forward/backward passes" in text and "lambda0 1,984" in text


def test_summary_prints_all_parts():
    """The summary prints the three parts in order."""
    console = Console(record=True, width=140, file=io.StringIO())
    summary(make_report(), console)
    text = console.export_text()
    assert text.index("Curvature") < text.index("Probes") < text.index("Recommendation")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 1.0], "▁▁"),
        ([1.0, 10.0, 100.0], "▁▅█"),
        ([1.0, 100.0, 1.0, None], "▁█▁×"),
        ([None], "×"),
        ([], ""),
    ],
)
def test_sparkline(values, expected):
    """Log-scaled levels, × for overflow."""
    assert sparkline(values) == expected


def test_sparkline_keeps_the_spike():
    """Resampled to a few characters, a one-point spike still shows as the top level."""
    values = [1.0] * 40
    values[17] = 1000.0
    line = sparkline(values, width=8)
    assert len(line) == 8 and line.count("█") == 1


def test_num():
    """Four significant digits, a dash for missing."""
    assert num(0.123456) == "0.1235" and num(None) == "—" and num(3) == "3"


def test_verdict_line():
    """PASS/FAIL, the rate, its phase, the allowed phases and the evidence on one line."""
    line = verdict_line(
        passed=False,
        lr=0.6,
        phase="divergent",
        collapsed=False,
        decided=False,
        reason="because",
        allowed=["lazy", "catapult"],
    ).plain
    assert line == (
        "FAIL lr=0.6: divergent (worse end of a bracket) (allowed: lazy, catapult); because"
    )


def test_plain_console_without_terminal(monkeypatch):
    """Not a terminal: fixed width, no ANSI codes, the progress display off."""
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.is_terminal and console.width == 120
    buf = io.StringIO()
    console = Console(file=buf, width=120)
    summary(make_report(), console)
    assert "\x1b[" not in buf.getvalue()
    display = ProgressDisplay(console)
    assert display.enabled is False
    with display as progress:
        progress("lambda0", {"iteration": 1, "value": 2.0, "max_iter": 10})


def test_progress_display_on_a_terminal():
    """On a terminal the callbacks drive the bars without error."""
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with ProgressDisplay(console) as progress:
        assert progress.enabled
        progress("stage", {"name": "lambda0"})
        for i in range(1, 4):
            progress("lambda0", {"iteration": i, "value": 1.0 + i, "max_iter": 100})
        progress("stage", {"name": "grid"})
        progress("probe", {"done": 1, "total": 2, "lr": 0.1, "phase": "lazy"})
        progress("stage", {"name": "bisection"})
        progress("probe", {"done": 3, "total": None, "lr": 0.2, "phase": "catapult"})
        progress("stage", {"name": "done"})
