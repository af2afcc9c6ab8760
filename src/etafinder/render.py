"""What a person reads: rich tables and panels built from a report dict, and the progress display.

Nothing here computes a result: every number comes from the report (the sparklines only resample its
downsampled loss traces). Everything prints to a :class:`rich.console.Console` the caller passes, so
tests render with ``Console(record=True)`` and ``export_text()``. Without a terminal (or with
``NO_COLOR``) rich writes no colour or cursor codes, :func:`make_console` fixes the width, and the
progress display is off: the output is plain and stable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

PHASE_STYLE = {"lazy": "green", "catapult": "yellow", "divergent": "bold red"}
SPARK_CHARS = "▁▂▃▄▅▆▇█"
#: a point of a loss trace that overflowed
SPARK_BAD = "×"
SPARK_WIDTH = 16
# : width of the output when it is not a terminal (and ``COLUMNS`` is unset): wide enough for the
# probe table
PLAIN_WIDTH = 120


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr: plain, fixed-width output when it is not a terminal.

    Args:
        stderr: write to stderr (for progress, warnings, and tables under ``--json``).

    Returns:
        The console.
    """
    console = Console(stderr=stderr, highlight=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, emoji=False, width=PLAIN_WIDTH)
    return console


def num(x: Any, digits: int = 4, *, missing: str = "—") -> str:
    """A number for a table: ``digits`` significant digits, ``missing`` for ``None``."""
    if x is None:
        return missing
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:.{digits}g}"


def loss_str(x: float | None) -> str:
    """A loss for a table: ``None`` in a report means it overflowed."""
    return num(x, missing="inf")


def phase_text(phase: str | None) -> Text:
    """A phase name in its colour."""
    return Text(phase or "—", style=PHASE_STYLE.get(phase or "", ""))


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """A one-line picture of a loss trace, on a log scale; ``×`` where it overflowed.

    Args:
        values: the (downsampled) loss trace; ``None`` for non-finite points.
        width: at most this many characters; each shows the largest loss of its stretch of the
            trace,
            so a catapult's spike always shows.

    Returns:
        The sparkline.
    """
    if not values:
        return ""
    n = len(values)
    k = min(width, n)
    buckets = [values[i * n // k : max((i + 1) * n // k, i * n // k + 1)] for i in range(k)]
    # each character shows the largest loss of its stretch (so a spike shows), or × where it
    # overflowed
    peaks = [None if any(v is None or not math.isfinite(v) for v in b) else max(b) for b in buckets]
    finite = [v for v in peaks if v is not None]
    if not finite:
        return SPARK_BAD * k
    positive = all(v > 0 for v in finite)
    scale = [math.log10(v) if positive else v for v in finite]
    lo, hi = min(scale), max(scale)
    out = []
    for v in peaks:
        if v is None:
            out.append(SPARK_BAD)
            continue
        s = math.log10(v) if positive else v
        level = 0 if hi == lo else round((s - lo) / (hi - lo) * (len(SPARK_CHARS) - 1))
        out.append(SPARK_CHARS[level])
    return "".join(out)


def _grid() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    return t


def _edge(momentum: float) -> str:
    return "2/η" if not momentum else "2(1+β)/η"


def curvature_panel(report: Mapping[str, Any]) -> Panel:
    """λ₀ with its uncertainty, η_crit, η_max, what they are valid for, and the solver's details.

    Args:
        report: a report dict.

    Returns:
        The panel.
    """
    vf = report.get("valid_for") or {}
    momentum = vf.get("momentum") or 0.0
    inputs = report.get("inputs") or {}
    solver = report.get("lambda0_solver") or {}
    spread = solver.get("spread")
    g = _grid()
    lam = num(report.get("lambda0"), 5)
    if report.get("lambda0_std") is not None and spread:
        lam += (
            f" ± {num(report['lambda0_std'], 2)}  (std over the probe set and "
            f"{len(spread['values'])} disjoint subsets of {spread['subset_size']} samples)"
        )
    else:
        lam += "  (the probe set is all the data: no sampling spread)"
    g.add_row("λ₀", Text(lam))
    beta = "" if not momentum else f", β={num(momentum)}"
    g.add_row(
        "η_crit",
        Text(f"{num(report.get('eta_crit'), 5)}  = 2(1+β)/λ₀{beta}: the edge of linear stability"),
    )
    bracket = report.get("eta_max_bracket")
    if report.get("eta_max") is not None:
        em = f"{num(report['eta_max'], 5)}"
        if bracket:
            em += (
                f"  (bisected between {num(bracket[0], 5)} and {num(bracket[1], 5)}); "
                "above it training diverges"
            )
    else:
        probes = report.get("probes") or []
        top = max((p["lr"] for p in probes), default=None)
        em = f"not found: no probe diverged (largest probed η={num(top, 5)})"
    g.add_row("η_max", Text(em))
    samples = vf.get("samples")
    total = inputs.get("total_samples")
    of = f" (of {total})" if total and total != samples else ""
    curvature = vf.get("curvature", "ggn")
    g.add_row(
        "valid for",
        Text(
            f"torch.optim.SGD(momentum={num(momentum)}, dampening=0, nesterov=False), full batch "
            f"on {samples} samples{of}, loss {vf.get('loss')}"
            + ("" if curvature == "ggn" else f", {curvature} curvature")
        ),
    )
    if solver:
        conv = "converged" if solver.get("converged") else "NOT converged"
        g.add_row(
            "solver",
            Text(
                f"{solver.get('method')} in {solver.get('space')} space "
                f"({solver.get('linearization')}), "
                f"{solver.get('iterations')} iterations, "
                f"residual {num(solver.get('residual'), 2)}, {conv}"
            ),
        )
    title = "Curvature" if report.get("complete", True) else "Curvature (partial: interrupted)"
    return Panel(g, title=title, title_align="left")


def probe_table(report: Mapping[str, Any]) -> Table:
    """One row per probe: η, η/η_crit, phase, collapsed, losses, end curvature, steps, loss
    sparkline.

    Args:
        report: a report dict.

    Returns:
        The table.
    """
    momentum = (report.get("valid_for") or {}).get("momentum") or 0.0
    t = Table(title="Probes", title_justify="left", show_lines=False, expand=False)
    t.add_column("η", justify="right", no_wrap=True)
    t.add_column("η/η_crit", justify="right", no_wrap=True)
    t.add_column("phase", no_wrap=True)
    t.add_column("collapsed", no_wrap=True)
    t.add_column("start", justify="right", no_wrap=True)
    t.add_column("peak", justify="right", no_wrap=True)
    t.add_column("final", justify="right", no_wrap=True)
    t.add_column(f"λ_end/({_edge(momentum)})", justify="right", no_wrap=True)
    t.add_column("steps", justify="right", no_wrap=True)
    t.add_column("loss", no_wrap=True)
    for p in report.get("probes") or []:
        trace = (p.get("loss_trace") or {}).get("loss") or []
        t.add_row(
            Text(num(p["lr"], 5)),
            Text(num(p.get("lr_over_eta_crit"), 3)),
            phase_text(p["phase"]),
            Text("yes", style="magenta") if p["collapsed"] else Text("no"),
            Text(loss_str(p.get("start_loss"))),
            Text(loss_str(p.get("peak_loss"))),
            Text(loss_str(p.get("final_loss"))),
            Text(num(p.get("curvature_end_over_edge"), 3)),
            Text(str(p.get("steps", "—"))),
            Text(sparkline(trace)),
        )
    return t


def probe_reasons(report: Mapping[str, Any]) -> Table:
    """Why each probe got its label: one line per probe, under the probe table (too long for a
    column).

    Args:
        report: a report dict.

    Returns:
        A two-column grid: η and phase, then the reason.
    """
    g = Table.grid(padding=(0, 1))
    g.add_column(justify="right", no_wrap=True)
    g.add_column(no_wrap=True)
    g.add_column()
    for p in report.get("probes") or []:
        g.add_row(Text(f"η={num(p['lr'], 5)}"), phase_text(p["phase"]), Text(p.get("reason") or ""))
    return g


def recommendation_panel(report: Mapping[str, Any]) -> Panel:
    """The recommended rate, its phase, why, and what the whole diagnosis cost.

    Args:
        report: a report dict.

    Returns:
        The panel.
    """
    g = _grid()
    lr = report.get("recommended_lr")
    eta_crit = report.get("eta_crit")
    rel = f"  ({num(lr / eta_crit, 3)}×η_crit)" if lr is not None and eta_crit else ""
    g.add_row("rate", Text(f"{num(lr, 5)}{rel}", style="bold"))
    g.add_row("phase", phase_text(report.get("recommended_phase")))
    g.add_row("why", Text(report.get("recommendation_reason") or "—"))
    cost = report.get("cost") or {}
    if "total" in cost:
        parts = " + ".join(
            f"{k} {cost[k]:,}" for k in ("lambda0", "spread", "probes") if cost.get(k)
        )
        samples = (report.get("valid_for") or {}).get("samples")
        per = f" ≈ {cost['total'] / samples:,.0f} full passes over the probe set" if samples else ""
        g.add_row("cost", Text(f"{cost['total']:,} sample forward/backward passes ({parts}){per}"))
    return Panel(g, title="Recommendation", title_align="left")


def summary(report: Mapping[str, Any], console: Console) -> None:
    """Print the curvature summary, the probe table with each probe's reason, and the
    recommendation.

    Args:
        report: a report dict.
        console: where to print.
    """
    console.print(curvature_panel(report))
    console.print(probe_table(report))
    console.print(probe_reasons(report))
    console.print(recommendation_panel(report))


def verdict_line(
    *,
    passed: bool,
    lr: float,
    phase: str,
    collapsed: bool,
    decided: bool,
    reason: str,
    allowed: Sequence[str],
) -> Text:
    """``check``'s one-line verdict with its evidence.

    Args:
        passed: whether the rate is allowed.
        lr: the rate.
        phase: its phase.
        collapsed: whether it collapsed.
        decided: whether the probes decided it (otherwise it is the worse end of a bracket).
        reason: the evidence.
        allowed: the allowed phases.

    Returns:
        The line.
    """
    word = Text("PASS", style="bold green") if passed else Text("FAIL", style="bold red")
    what = (
        phase
        + (", collapsed" if collapsed else "")
        + ("" if decided else " (worse end of a bracket)")
    )
    return Text.assemble(
        word,
        f" lr={lr:.6g}: ",
        (what, PHASE_STYLE.get(phase, "")),
        f" (allowed: {', '.join(allowed)}); {reason}",
    )


class ProgressDisplay:
    """The progress bars of a diagnosis (λ₀ iterations with the current estimate, then the probes).

    Used as ``with ProgressDisplay(console) as progress: diagnose(..., progress=progress)``. Off (a
    no-op)
    when ``enabled`` is false or the console is not a terminal, so logs and pipes stay clean.

    Args:
        console: where to draw (stderr).
        enabled: draw at all (``--quiet`` turns it off).
    """

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._lambda0: Any = None
        self._iterations = 0
        self._probes: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.stop()

    def __call__(self, event: str, info: dict) -> None:
        """The ``progress(event, info)`` callback of :func:`etafinder.diagnose.diagnose`."""
        if not self.enabled:
            return
        p = self._progress
        if event == "lambda0":
            if self._lambda0 is None:
                self._lambda0 = p.add_task("λ₀", total=info.get("max_iter"))
            self._iterations = info["iteration"]
            p.update(
                self._lambda0, completed=info["iteration"], description=f"λ₀ ≈ {info['value']:.5g}"
            )
        elif event == "probe":
            if self._probes is None:
                self._probes = p.add_task("probes", total=info.get("total"))
            # the total is unknown while bisecting: show what is done as done
            p.update(
                self._probes,
                completed=info["done"],
                total=info.get("total") or info["done"],
                description=f"probe η={info['lr']:.4g}: {info['phase']}",
            )
        elif event == "stage":
            if self._lambda0 is not None and info.get("name") != "lambda0":
                # the solve stopped early (converged): show it as done
                done = max(self._iterations, 1)
                p.update(self._lambda0, total=done, completed=done)
            if info.get("name") == "bisection" and self._probes is not None:
                p.update(self._probes, description="bisecting η_max")
