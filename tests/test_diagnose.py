"""Reproductions of Lewkowycz et al. (2020): the solvable models' phases, η_max and the catapult time."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

from etafinder.config import ProbeConfig
from etafinder.curvature import estimate_lambda0
from etafinder.diagnose import _context, diagnose, label, probe_rate
from etafinder.losses import resolve_loss
from etafinder.probe import run_probes
from etafinder.problem import FunctionalModel, Problem
from etafinder.types import Phase
from paper_models import TwoLayerLinear, uv_problem

UV_PHASES = {0.5: Phase.LAZY, 0.9: Phase.LAZY, 1.2: Phase.CATAPULT, 1.6: Phase.CATAPULT,
             1.9: Phase.CATAPULT, 2.2: Phase.DIVERGENT, 3.0: Phase.DIVERGENT}


def probes_at(problem: Problem, multiples, config: ProbeConfig):
    """Label probes at ``m · η_crit`` for each multiple.

    Args:
        problem: the problem.
        multiples: rates as multiples of η_crit.
        config: the probe config.

    Returns:
        ``(labelled probes, λ₀ estimate)``.
    """
    fm = FunctionalModel(problem)
    est = estimate_lambda0(fm, problem.inputs, problem.targets, problem.loss)
    ctx = _context(problem, fm, est, config)
    crit = 2 * (1 + config.momentum) / est.value
    traces = run_probes(ctx, [m * crit for m in multiples], config)
    return label([(t, "grid") for t in traces], ctx), est


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed={s}")
def test_uv_model_phases_and_eta_max(seed):
    """ηλ₀/2 ∈ {0.5, 0.9} lazy, {1.2, 1.6, 1.9} catapult ending below 2/η, {2.2, 3} divergent; η_max = 4/λ₀."""
    problem, model = uv_problem(1000, seed)
    d = diagnose(problem, ProbeConfig(grid=tuple(UV_PHASES)))
    assert d.lambda0.value == pytest.approx(model.lambda0_mse(), rel=1e-10)
    by_mult = {round(p.lr / d.eta_crit, 6): p for p in d.probes if p.source == "grid"}
    for mult, phase in UV_PHASES.items():
        p = by_mult[mult]
        assert p.phase is phase, (mult, p.reason)
        if phase is Phase.CATAPULT:
            assert p.trace.curvature_end < 2 / p.lr
    assert d.eta_max * d.lambda0.value == pytest.approx(4.0, rel=0.05)
    # the rule's target 0.3·η_max = 0.6·η_crit is probed itself, and is lazy
    assert d.recommended_lr == pytest.approx(0.3 * d.eta_max)
    assert d.recommended_phase is Phase.LAZY


def test_uv_model_with_momentum_scales_the_lazy_edge_by_one_plus_beta():
    """Heavy-ball β = 0.9: the lazy/catapult edge moves to 2(1+β)/λ₀ = 3.8/λ₀.

    The catapult window is narrower than plain GD's: measured, η_max ≈ 1.15·η_crit(β) ≈ 4.4/λ₀
    (not 1.9 × 4/λ₀) — one more reason etafinder measures η_max instead of assuming it.
    """
    problem, _ = uv_problem(1000, 0)
    config = ProbeConfig(momentum=0.9, max_steps=400)
    probes, _ = probes_at(problem, [0.5, 0.9, 0.95, 1.05, 1.3, 2.2], config)
    phases = [p.phase for p in probes]
    assert phases == [Phase.LAZY] * 3 + [Phase.CATAPULT] + [Phase.DIVERGENT] * 2, \
        [p.reason for p in probes]
    # plain GD at the same absolute rates 0.9·3.8/λ₀ and 0.95·3.8/λ₀ (> 2/λ₀) catapults
    gd, _ = probes_at(problem, [0.9 * 1.9, 0.95 * 1.9], ProbeConfig())
    assert [p.phase for p in gd] == [Phase.CATAPULT] * 2
    d = diagnose(problem, config)
    assert 1.0 < d.eta_max / d.eta_crit < 1.3


def peak_step(n: int, seed: int) -> int:
    """Step of the peak loss at η = 1.5·η_crit for the uv model of width n."""
    problem, _ = uv_problem(n, seed)
    (p,), _ = probes_at(problem, [1.5], ProbeConfig())
    return p.trace.losses.index(max(p.trace.losses))


def test_catapult_time_grows_like_log_width():
    """The loss peaks after ∝ log(n)/log(ηλ₀ − 1) steps: medians over 10 seeds at three widths.

    During the growth f_t ≈ (1 − ηλ₀)^t f_0 while the curvature barely moves; it starts to fall once
    f² ~ n (λ_{t+1} − λ_t = η f_t²/n · (ηλ₀ − 4)), i.e. after ½·log(n)/log(ηλ₀ − 1) steps: from n = 100
    to n = 10⁴ at ηλ₀ = 3 that is ½·log(100)/log 2 ≈ 3.3 more steps.
    """
    medians = [statistics.median(peak_step(n, s) for s in range(10)) for n in (100, 1_000, 10_000)]
    assert medians[0] < medians[1] < medians[2]
    predicted = 0.5 * math.log(10_000 / 100) / math.log(1.5 * 2 - 1)
    assert medians[2] - medians[0] == pytest.approx(predicted, abs=1.5)


@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed={s}")
def test_two_layer_linear_network_eta_max(seed):
    """A two-layer linear network on random data: η_max within 15% of 4/λ₀."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 16, generator=g, dtype=torch.float64)
    y = torch.randn(16, 1, generator=g, dtype=torch.float64)
    problem = Problem(TwoLayerLinear(16, 1024, 1, g), x, y, resolve_loss("mse"))
    d = diagnose(problem, ProbeConfig(grid=(0.5, 1.5, 2.5, 4.0)))
    assert d.eta_max * d.lambda0.value == pytest.approx(4.0, rel=0.15)


def test_trained_start_catapults_back_near_its_start():
    """From a trained start (loss ≪ constant predictor) a catapult settles near the start loss."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 1)).double()
    x = torch.randn(24, 4, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(1500):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    d = diagnose(Problem(model, x, y, resolve_loss("mse")), ProbeConfig(grid=(0.5, 1.5, 3.0, 8.0)))
    assert d.trained_start and d.start_loss < 0.05 * d.constant_loss
    phases = {round(p.lr / d.eta_crit, 6): p for p in d.probes if p.source == "grid"}
    assert phases[0.5].phase is Phase.LAZY
    assert phases[1.5].phase is Phase.CATAPULT, phases[1.5].reason
    # settled back near the start: within 2% of the constant predictor's loss above it
    assert phases[1.5].trace.losses[-1] <= d.start_loss + 0.02 * d.constant_loss
    assert phases[8.0].phase is Phase.DIVERGENT


def test_probe_rate_adds_a_requested_probe_and_keeps_the_recommendation():
    """check's extra probe: added with source 'requested'; η_max and the recommendation unchanged."""
    problem, _ = uv_problem(300, 4)
    config = ProbeConfig(grid=(0.5, 1.5, 3.0))
    d = diagnose(problem, config)
    lr = 1.1 * d.eta_crit
    e = probe_rate(problem, d, lr, config)
    assert len(e.probes) == len(d.probes) + 1
    (req,) = [p for p in e.probes if p.source == "requested"]
    assert req.lr == lr and req.phase is Phase.CATAPULT
    assert (e.recommended_lr, e.eta_max) == (d.recommended_lr, d.eta_max)
    assert [p.lr for p in e.probes] == sorted(p.lr for p in e.probes)


def test_spread_uses_disjoint_subsets_of_the_rest():
    """λ₀'s sampling uncertainty comes from subsets of the left-out data of the probe set's size."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    x = torch.randn(100, 4, dtype=torch.float64)
    y = torch.randn(100, 1, dtype=torch.float64)
    problem = Problem(model, x[:25], y[:25], resolve_loss("mse"))
    d = diagnose(problem, ProbeConfig(grid=(0.5, 2.0, 8.0), spread_subsets=3), rest=(x[25:], y[25:]))
    assert d.spread is not None and len(d.spread.values) == 3 and d.spread.subset_size == 25
    for i, v in enumerate(d.spread.values):
        sub = Problem(model, x[25 + 25 * i : 50 + 25 * i], y[25 + 25 * i : 50 + 25 * i], problem.loss)
        ref = estimate_lambda0(FunctionalModel(sub), sub.inputs, sub.targets, sub.loss, tol=1e-8)
        assert v == pytest.approx(ref.value, rel=2e-2)
    assert d.spread.relative == pytest.approx(
        statistics.stdev([d.lambda0.value, *d.spread.values]) / d.lambda0.value, rel=1e-9)
    assert diagnose(problem, ProbeConfig(grid=(0.5, 2.0))).spread is None


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [1, 2], ids=lambda h: f"hidden={h}")
def test_relu_networks_eta_max_against_the_papers_12(hidden, capsys):
    """ReLU nets catapult well past 4/λ₀; the paper measures η_max ≈ 12/λ₀. Report what we measure."""
    values = []
    for seed in range(3):
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Linear(10, 256), nn.ReLU()]
        if hidden == 2:
            layers += [nn.Linear(256, 256), nn.ReLU()]
        net = nn.Sequential(*layers, nn.Linear(256, 1))
        x, y = torch.randn(128, 10), torch.randn(128, 1)
        d = diagnose(Problem(net, x, y, resolve_loss("mse")))
        values.append(d.eta_max * d.lambda0.value)
    with capsys.disabled():
        print(f"\nReLU, {hidden} hidden layer(s): η_max·λ₀ = {[round(v, 2) for v in values]} (paper ≈ 12)")
    assert all(4.0 < v < 24.0 for v in values)
