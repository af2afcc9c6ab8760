"""Hand-built diagnoses and reports for the report, gate, render and plot tests (no training)."""

from __future__ import annotations

import math

import torch

from etafinder.config import ProbeConfig
from etafinder.curvature import Lambda0Estimate
from etafinder.phases import THRESHOLDS
from etafinder.report import build_report
from etafinder.types import Diagnosis, Phase, ProbeResult, ProbeTrace, Spread

LAMBDA0 = 12.5
ETA_CRIT = 2.0 / LAMBDA0  # 0.16

INFO = {
    "model_file": "model.py",
    "model_sha256": "0" * 64,
    "factory": "model",
    "checkpoint": None,
    "checkpoint_sha256": None,
    "checkpoint_format": None,
    "data_source": "data()",
    "data_sha256": "1" * 64,
    "total_samples": 256,
    "samples": 64,
    "seed": 0,
    "dtype": "float32",
    "device": "cpu",
    "loss": "mse",
    "num_params": 1234,
    "forward_hook": False,
}
RUNTIME = {"started_at": "2026-01-01T00:00:00+00:00", "wall_seconds": 1.5, "host": "test"}


def catapult_losses(steps: int = 60, start: float = 1.0) -> tuple[float, ...]:
    """A loss that spikes to 30× its start, then settles at 1% of it."""
    return tuple(
        start * (1 + 29 * math.exp(-((i - 5) ** 2) / 4)) * (0.01 + 0.99 * math.exp(-i / 8))
        for i in range(steps + 1)
    )


def lazy_losses(steps: int = 30, start: float = 1.0) -> tuple[float, ...]:
    """A loss falling geometrically."""
    return tuple(start * 0.9**i for i in range(steps + 1))


def divergent_losses(steps: int = 12, start: float = 1.0) -> tuple[float, ...]:
    """A loss that grows by 10× a step, then overflows."""
    return (*(start * 10.0**i for i in range(steps)), math.inf)


LOSSES = {
    Phase.LAZY: lazy_losses,
    Phase.CATAPULT: catapult_losses,
    Phase.DIVERGENT: divergent_losses,
}


def probe(
    lr: float,
    phase: Phase,
    *,
    collapsed: bool = False,
    source: str = "grid",
    losses: tuple[float, ...] | None = None,
    momentum: float = 0.0,
) -> ProbeResult:
    """A labelled probe with a plausible trace for its phase."""
    losses = losses if losses is not None else LOSSES[phase]()
    end = None if phase is Phase.DIVERGENT else (LAMBDA0 if phase is Phase.LAZY else 1.5 / lr)
    trace = ProbeTrace(
        lr=lr,
        momentum=momentum,
        losses=losses,
        grad_norm_start=2.0,
        grad_norm_end=math.nan if phase is Phase.DIVERGENT else 1e-3,
        curvature_start=LAMBDA0,
        curvature_end=end,
        curvature_end_converged=end is not None,
        steps=len(losses) - 1,
        settled=True,
        dead_fraction=None,
        passes=64 * 3 * len(losses),
    )
    return ProbeResult(
        trace=trace,
        phase=phase,
        collapsed=collapsed,
        reason=f"synthetic {phase.value}",
        source=source,
    )


def default_probes() -> tuple[ProbeResult, ...]:
    """Lazy below η_crit, catapult in between, divergent above η_max ≈ 0.6."""
    return (
        probe(0.08, Phase.LAZY),
        probe(0.208, Phase.CATAPULT),
        probe(0.32, Phase.CATAPULT),
        probe(0.58, Phase.CATAPULT, source="bisection"),
        probe(0.62, Phase.DIVERGENT, source="bisection"),
        probe(1.28, Phase.DIVERGENT),
    )


def cli_runner():
    """A CliRunner that captures stdout and stderr separately, with any typer/click version
    (click < 8.2 mixes them unless told not to; newer ones have no such switch)."""
    from typer.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def make_diagnosis(
    probes: tuple[ProbeResult, ...] | None = None,
    *,
    eta_max: float | None = None,
    bracket: tuple[float, float] | None = (0.58, 0.62),
    spread: bool = True,
    recommended: tuple[float, Phase] = (0.32, Phase.CATAPULT),
    momentum: float = 0.0,
    lambda0: float = LAMBDA0,
) -> Diagnosis:
    """A self-consistent diagnosis (``eta_max``: by default the bracket's geometric mean)."""
    probes = probes if probes is not None else default_probes()
    if eta_max is None and bracket is not None:
        eta_max = math.sqrt(bracket[0] * bracket[1])
    est = Lambda0Estimate(
        value=lambda0,
        eigenvector=torch.zeros(3),
        iterations=14,
        matvecs=15,
        residual=3.2e-4,
        converged=True,
        method="lanczos",
        space="output",
        curvature="ggn",
        linearization="cached",
        history=tuple(lambda0 * (1 - 0.5**i) for i in range(1, 15)),
    )
    sp = (
        Spread(values=(12.1, 13.0, 12.7), std=0.37, relative=0.37 / lambda0, subset_size=64)
        if spread
        else None
    )
    total = sum(p.trace.passes for p in probes)
    return Diagnosis(
        lambda0=est,
        spread=sp,
        eta_crit=2 * (1 + momentum) / lambda0,
        eta_max=eta_max,
        eta_max_bracket=bracket,
        recommended_lr=recommended[0],
        recommended_phase=recommended[1],
        recommendation_reason="synthetic recommendation",
        probes=probes,
        momentum=momentum,
        samples=64,
        num_params=1234,
        loss="mse",
        start_loss=1.0,
        constant_loss=1.0,
        trained_start=False,
        thresholds=THRESHOLDS,
        passes={"lambda0": 1984, "spread": 5952, "probes": total, "total": 1984 + 5952 + total},
        timings={"lambda0_s": 0.1, "total_s": 1.0},
    )


_DEFAULT = object()


def make_report(
    diagnosis: Diagnosis | object | None = _DEFAULT, *, complete: bool = True, **kwargs
) -> dict:
    """The report of :func:`make_diagnosis`, or of the given diagnosis (``None``: a partial one)."""
    d = make_diagnosis(**kwargs) if diagnosis is _DEFAULT else diagnosis
    return build_report(
        d,
        INFO,
        ProbeConfig(momentum=d.momentum if d is not None else 0.0),
        runtime=RUNTIME,
        complete=complete,
    )
