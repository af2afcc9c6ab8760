"""The result objects of the numerical core: frozen dataclasses, no behaviour beyond small properties."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .curvature import Lambda0Estimate


class Phase(str, Enum):
    """The three phases of Lewkowycz et al. (2020)."""

    LAZY = "lazy"
    CATAPULT = "catapult"
    DIVERGENT = "divergent"


@dataclass(frozen=True)
class ProbeTrace:
    """One short full-batch run at one learning rate, from the starting weights.

    Attributes:
        lr: the learning rate η.
        momentum: heavy-ball β.
        losses: the probe-set loss at steps 0..steps (``losses[0]`` is the start loss); ``inf``/``nan``
            where it overflowed.
        grad_norm_start: ‖∇L‖ at the start.
        grad_norm_end: ‖∇L‖ at the last step (``nan`` when non-finite).
        curvature_start: the top GGN eigenvalue at the start (λ₀).
        curvature_end: the top GGN eigenvalue at the end (``None`` when the run went non-finite).
        curvature_end_converged: whether that end solve met its tolerance.
        steps: GD steps taken.
        settled: whether the phase was decided before the step cap.
        dead_fraction: fraction of ReLU units inactive on every probe sample at the end (``None``
            without ``nn.ReLU`` modules).
        passes: sample passes spent (one forward+backward of one sample = 1), end-curvature included.
    """

    lr: float
    momentum: float
    losses: tuple[float, ...]
    grad_norm_start: float
    grad_norm_end: float
    curvature_start: float
    curvature_end: float | None
    curvature_end_converged: bool
    steps: int
    settled: bool
    dead_fraction: float | None
    passes: int


@dataclass(frozen=True)
class ProbeResult:
    """A probe with its label.

    Attributes:
        trace: the run.
        phase: its phase.
        collapsed: whether it ended stuck at the best constant predictor's loss (contract §2).
        reason: one line with the numbers behind the label.
        source: ``"grid"``, ``"bisection"`` or ``"requested"`` (a rate asked for by ``check``).
    """

    trace: ProbeTrace
    phase: Phase
    collapsed: bool
    reason: str
    source: str = "grid"

    @property
    def lr(self) -> float:
        """The probe's learning rate."""
        return self.trace.lr


@dataclass(frozen=True)
class Spread:
    """Sampling uncertainty of λ₀: λ₀ on disjoint subsets of the data, each the size of the probe set.

    Attributes:
        values: λ₀ on each extra subset.
        std: standard deviation over the probe set and the extra subsets.
        relative: ``std / λ₀``.
        subset_size: samples in each subset.
    """

    values: tuple[float, ...]
    std: float
    relative: float
    subset_size: int


@dataclass(frozen=True)
class Diagnosis:
    """Everything one diagnosis found: what the report and the CLI are built from.

    Attributes:
        lambda0: the λ₀ solve at the starting weights.
        spread: λ₀'s sampling uncertainty, or ``None`` when the probe set is all the data.
        eta_crit: ``2(1+β)/λ₀``.
        eta_max: the measured catapult/divergent boundary (``None`` when no probe diverged).
        eta_max_bracket: ``(largest non-divergent, smallest divergent)`` probe rates, or ``None``.
        recommended_lr: never ``None`` (see :mod:`etafinder.recommend` for the fallback).
        recommended_phase: ``lazy`` or ``catapult``.
        recommendation_reason: one line.
        probes: every probe, sorted by lr.
        momentum: heavy-ball β the thresholds are for.
        samples: probe-set size N.
        num_params: trainable parameters P.
        loss: the loss name.
        start_loss: the probe-set loss at the starting weights.
        constant_loss: the best constant predictor's loss (the collapse reference).
        trained_start: whether the start is already trained (start loss far below ``constant_loss``).
        thresholds: the phase thresholds used (``phases.THRESHOLDS``).
        passes: sample passes spent, by part (``lambda0``, ``spread``, ``probes``, ``total``).
        timings: wall-clock seconds, by part (the report's ``runtime``; never compared between runs).
    """

    lambda0: Lambda0Estimate
    spread: Spread | None
    eta_crit: float
    eta_max: float | None
    eta_max_bracket: tuple[float, float] | None
    recommended_lr: float
    recommended_phase: Phase
    recommendation_reason: str
    probes: tuple[ProbeResult, ...]
    momentum: float
    samples: int
    num_params: int
    loss: str
    start_loss: float
    constant_loss: float
    trained_start: bool
    thresholds: dict
    passes: dict
    timings: dict
