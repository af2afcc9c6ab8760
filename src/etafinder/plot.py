"""``--plot FILE.png``: every probe's loss curve and end curvature, coloured by phase (matplotlib).

matplotlib is the optional extra ``etafinder[plot]``. The figure is drawn on an Agg canvas (never
pyplot, so no window opens and no GUI backend is touched) from the report dict alone, and written
atomically.

Left: the loss of every probe against its step (log scale), coloured by phase; ``×`` where a run
overflowed. Right: each probe's curvature at the end against η (log–log), with λ₀, the stability
edge ``2(1+β)/η`` and the lines η_crit and η_max: a lazy run stays at λ₀, a catapult ends below the
edge.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InputError
from .report import atomic_write

PHASE_COLOUR = {"lazy": "tab:green", "catapult": "tab:orange", "divergent": "tab:red"}
FORMATS = (".png", ".pdf", ".svg")
_HINT = "Install the plotting extra: pip install 'etafinder[plot]' (or pip install matplotlib)."


def check_plot_path(path: str | os.PathLike) -> None:
    """Fail before a long run when ``--plot`` cannot be honoured.

    Args:
        path: the image to write.

    Raises:
        InputError: when matplotlib is missing or the suffix is not a supported format.
    """
    if Path(path).suffix.lower() not in FORMATS:
        raise InputError(
            f"--plot {path}: expected a file ending in {', '.join(FORMATS)}",
            "For example: --plot probes.png",
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(f"--plot {path}: matplotlib is not installed", _HINT) from None


def write_plot(report: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Draw the probes of a report and write the image.

    Args:
        report: a report dict.
        path: a ``.png``, ``.pdf`` or ``.svg`` file.

    Raises:
        InputError: when matplotlib is missing or the file cannot be written.
    """
    check_plot_path(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_curv = fig.subplots(1, 2)
    probes = report.get("probes") or []
    momentum = (report.get("valid_for") or {}).get("momentum") or 0.0
    eta_crit, eta_max = report.get("eta_crit"), report.get("eta_max")

    for p in probes:
        colour = PHASE_COLOUR[p["phase"]]
        trace = p.get("loss_trace") or {}
        pts = [
            (s, v)
            for s, v in zip(trace.get("step", []), trace.get("loss", []), strict=True)
            if v is not None
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax_loss.plot(xs, ys, color=colour, lw=1.2, alpha=0.85)
            if len(pts) < len(trace.get("loss", [])):  # overflowed after its last finite point
                ax_loss.plot(xs[-1], ys[-1], "x", color=colour, ms=8)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (probe set)")
    ax_loss.set_title("loss of every probe")
    ax_loss.legend(
        handles=[Line2D([], [], color=c, label=ph) for ph, c in PHASE_COLOUR.items()],
        loc="best",
        fontsize="small",
    )

    lrs = [p["lr"] for p in probes]
    for p in probes:
        if p.get("curvature_end") is not None:
            ax_curv.plot(
                p["lr"],
                p["curvature_end"],
                "o",
                color=PHASE_COLOUR[p["phase"]],
                mfc="none" if p["collapsed"] else PHASE_COLOUR[p["phase"]],
            )
    if lrs:
        lo, hi = min(lrs) / 1.5, max(lrs) * 1.5
        grid = [lo * (hi / lo) ** (i / 100) for i in range(101)]
        ax_curv.plot(
            grid,
            [2 * (1 + momentum) / g for g in grid],
            "k:",
            lw=1,
            label="stability edge 2(1+β)/η",
        )
    if report.get("lambda0") is not None:
        ax_curv.axhline(report["lambda0"], color="grey", lw=1, label="λ₀")
    if eta_crit is not None:
        ax_curv.axvline(eta_crit, color="tab:blue", ls="--", lw=1, label=f"η_crit = {eta_crit:.4g}")
        ax_loss.text(
            0.01,
            0.01,
            f"η_crit = {eta_crit:.4g}" + ("" if eta_max is None else f",  η_max = {eta_max:.4g}"),
            transform=ax_loss.transAxes,
            fontsize="small",
            va="bottom",
        )
    if eta_max is not None:
        ax_curv.axvline(eta_max, color="tab:red", ls="--", lw=1, label=f"η_max = {eta_max:.4g}")
    ax_curv.set_xscale("log")
    ax_curv.set_yscale("log")
    ax_curv.set_xlabel("learning rate η")
    ax_curv.set_ylabel("top curvature at the end")
    ax_curv.set_title("end curvature (open: collapsed)")
    ax_curv.legend(loc="best", fontsize="small")

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lower().lstrip("."), dpi=110)
    atomic_write(path, buf.getvalue())
