"""λ₀ against dense float64 references and the paper's closed forms.

Every estimate is checked against :mod:`reference` (``J`` by ``jacrev``, ``H_out`` by autograd,
``eigvalsh`` of ``Jᵀ H_out J``): relative error ≤ 1e-3 at the default tolerance on each of ten start
seeds, and the eigenvector's residual ``‖G v − λ v‖ ≤ 1e-2·λ`` measured with the dense ``G``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import etafinder.curvature as curvature
from etafinder.curvature import (
    DEFAULT_TOL,
    MIN_KRYLOV,
    GGNOperator,
    Lambda0Estimate,
    estimate_lambda0,
    lanczos,
    power_iteration,
)
from etafinder.losses import Loss, resolve_loss
from etafinder.problem import FunctionalModel, Problem
from reference import Dense, dense_ggn, dense_hessian, jacobian, with_batch_stats

pytestmark = pytest.mark.usefixtures("single_thread")

DT = torch.float64
M = 24  # samples in every probe set
SEEDS = range(10)  # the bar: every one of ten start seeds
FEW_SEEDS = range(3)  # for variants beyond the list (keeps the file's runtime down)
REL_TOL = 1e-3  # λ₀ relative error at the default tolerance
RESIDUAL_TOL = 1e-2  # ‖G v − λ v‖ / λ with the dense G
EXACT = 1e-10  # chunked vs unchunked, cached vs recomputed: the same operator up to rounding

LossFn = Callable[[Tensor, Tensor], Tensor]
ForwardFn = Callable[[nn.Module, Tensor], Tensor]


# ------------------------------------------------------------------------------------ cases ----
def _log_cosh(output: Tensor, target: Tensor) -> Tensor:
    """A smooth custom regression loss, a mean over samples.

    Args:
        output: model outputs.
        target: targets.

    Returns:
        The mean loss.
    """
    return torch.log(torch.cosh(output - target)).mean()


def _tiny_mse(output: Tensor, target: Tensor) -> Tensor:
    """``F.mse_loss`` scaled by 1e-12: λ₀ ≈ 1e-12, so any absolute threshold in the solver shows.

    Args:
        output: model outputs.
        target: targets.

    Returns:
        The scaled mean loss.
    """
    return 1e-12 * F.mse_loss(output, target)


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """A one-hidden-layer tanh MLP in float64.

    Args:
        inputs: input width.
        hidden: hidden width.
        outputs: output width.

    Returns:
        The model.
    """
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs)).to(DT)


def _skew_running_stats(model: nn.Module, x: Tensor) -> None:
    """Train-mode passes on shifted data: BatchNorm's running stats are not the set's.

    Args:
        model: the model (its running statistics and counters change).
        x: inputs whose shape to use.
    """
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(3.0 * torch.randn_like(x) + 1.0)
    model.eval()


class _DictOut(nn.Module):
    """A model whose forward returns a dict, like a Hugging Face model's output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _mlp(5, 12, 3)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits in a dict.

        Args:
            x: inputs.

        Returns:
            ``{"logits": ..., "hidden": ...}``.
        """
        return {"logits": self.body(x), "hidden": x}


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    """The ``forward(model, x)`` hook for :class:`_DictOut`.

    Args:
        model: the model.
        x: inputs.

    Returns:
        The logits.
    """
    return model(x)["logits"]


def _build(name: str) -> tuple[nn.Module, Tensor, Tensor]:
    """Seeded model and probe set for a case name (models, inputs, targets: float64).

    Args:
        name: the case name.

    Returns:
        ``(model, inputs, targets)``.
    """
    torch.manual_seed(sum(map(ord, name)))
    x = torch.randn(M, 5, dtype=DT)
    regression = torch.randn(M, 3, dtype=DT)
    classes = torch.randint(0, 4, (M,))
    if name in ("mlp-mse", "custom-logcosh", "custom-tiny-scale"):
        return _mlp(5, 16, 3), x, regression
    if name == "mlp-1-output-mse":
        return _mlp(5, 16, 1), x, regression[:, :1]
    if name == "mlp-cross_entropy":
        return _mlp(5, 16, 4), x, classes
    if name == "mlp-cross_entropy-probs":
        return _mlp(5, 16, 4), x, torch.softmax(torch.randn(M, 4, dtype=DT), dim=1)
    if name == "multi-output-mse":
        model = nn.Sequential(_mlp(5, 12, 6), nn.Unflatten(1, (2, 3)))
        return model, x, torch.randn(M, 2, 3, dtype=DT)
    if name.startswith("cnn"):
        norm = [nn.BatchNorm2d(3, dtype=DT)] if "batchnorm" in name else []
        model = nn.Sequential(
            nn.Conv2d(1, 3, 3, dtype=DT), *norm, nn.ReLU(), nn.Conv2d(3, 4, 3, stride=2, dtype=DT),
            nn.Tanh(), nn.Flatten(), nn.Linear(16, 3, dtype=DT))
        images = torch.randn(M, 1, 7, 7, dtype=DT)
        if norm:
            _skew_running_stats(model, images)
        return model, images, torch.randint(0, 3, (M,))
    if name.startswith("mlp-batchnorm1d"):
        track = "untracked" not in name
        model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8, track_running_stats=track),
                              nn.Tanh(), nn.Linear(8, 3)).to(DT)
        if track:
            _skew_running_stats(model, x)
        return model, x, regression
    if name == "mlp-frozen-mse":
        model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(),
                              nn.Linear(8, 3)).to(DT)
        model[0].requires_grad_(False)
        return model, x, regression
    if name == "dict-forward-mse":
        return _DictOut(), x, regression
    raise KeyError(name)


@dataclass(frozen=True)
class Case:
    """A model, probe set and loss, with what the reference needs to rebuild it independently.

    Attributes:
        id: the case name (also the parametrize id).
        loss: the loss as the user configures it.
        ref_loss: the same loss as torch computes it (for the autograd ``H_out``).
        forward: optional ``forward(model, x)`` hook.
        batchnorm: the reference must set BatchNorm statistics to the whole set's (policy).
    """

    id: str
    loss: str | LossFn
    ref_loss: LossFn
    forward: ForwardFn | None = None
    batchnorm: bool = False


CASES = {c.id: c for c in [
    Case("mlp-mse", "mse", F.mse_loss),
    Case("mlp-1-output-mse", "mse", F.mse_loss),
    Case("mlp-cross_entropy", "cross_entropy", F.cross_entropy),
    Case("mlp-cross_entropy-probs", "cross_entropy", F.cross_entropy),
    Case("cnn-cross_entropy", "cross_entropy", F.cross_entropy),
    Case("multi-output-mse", "mse", F.mse_loss),
    Case("custom-logcosh", _log_cosh, _log_cosh),
    Case("custom-tiny-scale", _tiny_mse, _tiny_mse),
    Case("mlp-batchnorm1d-mse", "mse", F.mse_loss, batchnorm=True),
    Case("mlp-batchnorm1d-untracked-mse", "mse", F.mse_loss, batchnorm=True),
    Case("cnn-batchnorm2d-cross_entropy", "cross_entropy", F.cross_entropy, batchnorm=True),
    Case("mlp-frozen-mse", "mse", F.mse_loss),
    Case("dict-forward-mse", "mse", F.mse_loss, forward=_logits),
]}


@dataclass(frozen=True)
class Prepared:
    """A case built once: the user's model and data, etafinder's functional model, the reference.

    Attributes:
        model: the user's model.
        x: inputs.
        y: targets.
        loss: the resolved loss.
        fm: etafinder's functional model.
        dense: the dense reference.
        reference_model: the model the reference evaluated (BatchNorm statistics set by hand).
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    loss: Loss
    fm: FunctionalModel
    dense: Dense
    reference_model: nn.Module


@functools.cache
def prepare(case_id: str) -> Prepared:
    """Build a case and its dense reference (cached: each case is built once per session).

    Args:
        case_id: a key of :data:`CASES`.

    Returns:
        The prepared case.
    """
    case = CASES[case_id]
    model, x, y = _build(case_id)
    ref_model = with_batch_stats(model, x) if case.batchnorm else model
    dense = dense_ggn(ref_model, x, y, case.ref_loss, case.forward)
    loss = resolve_loss(case.loss)
    fm = FunctionalModel(Problem(model, x, y, loss, case.forward))
    return Prepared(model, x, y, loss, fm, dense, ref_model)


def _residual(matrix: Tensor, est: Lambda0Estimate) -> float:
    """``‖A v − λ v‖ / |λ|`` with a dense matrix.

    Args:
        matrix: the dense symmetric matrix.
        est: the estimate (value and unit eigenvector).

    Returns:
        The relative residual.
    """
    v = est.eigenvector.to(matrix)
    return float((matrix @ v - est.value * v).norm()) / abs(est.value)


def _check_estimate(est: Lambda0Estimate, truth: float, matrix: Tensor) -> None:
    """The acceptance bar: converged, λ₀ within 1e-3, a unit eigenvector, dense residual ≤ 1e-2.

    Args:
        est: the estimate.
        truth: the dense reference's top eigenvalue.
        matrix: the dense matrix (for the residual).
    """
    assert est.converged, est
    rel = abs(est.value - truth) / abs(truth)
    assert rel <= REL_TOL, f"λ₀ {est.value} vs dense {truth}: relative error {rel:.2e}"
    assert est.eigenvector.shape == (matrix.shape[0],)
    assert math.isclose(float(est.eigenvector.norm()), 1.0, rel_tol=1e-6)
    res = _residual(matrix, est)
    assert res <= RESIDUAL_TOL, f"dense residual ‖Gv − λv‖/λ = {res:.2e}"
    assert len(est.history) == est.iterations and est.history[-1] == est.value


# ---------------------------------------------------------------------- GGN vs the reference ----
def _options_id(options: dict[str, Any]) -> str:
    """A readable id for solver options, e.g. ``space=parameter,chunk_size=7``.

    Args:
        options: the options.

    Returns:
        The id.
    """
    return ",".join(f"{k}={v}" for k, v in options.items())


@dataclass(frozen=True)
class Variant:
    """A case solved with particular options.

    Attributes:
        case: a key of :data:`CASES`.
        options: keyword arguments for :func:`estimate_lambda0`.
        expect: expected fields of the estimate (``space``, ``linearization``, ...).
        seeds: the start seeds to check.
    """

    case: str
    options: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    seeds: range = SEEDS

    @property
    def id(self) -> str:
        """The parametrize id, e.g. ``mlp-mse[space=parameter]``.

        Returns:
            The id.
        """
        return f"{self.case}[{_options_id(self.options)}]" if self.options else self.case


VARIANTS = [
    # the list, ten seeds each
    Variant("mlp-mse", expect={"space": "output", "linearization": "cached"}),
    Variant("mlp-cross_entropy", expect={"space": "output"}),
    Variant("cnn-cross_entropy"),
    Variant("multi-output-mse"),
    Variant("custom-logcosh", expect={"space": "parameter"}),
    Variant("mlp-batchnorm1d-mse"),
    Variant("mlp-frozen-mse"),
    Variant("mlp-mse", {"space": "parameter"}, {"space": "parameter"}),
    Variant("mlp-cross_entropy", {"space": "parameter"}, {"space": "parameter"}),
    Variant("mlp-cross_entropy", {"chunk_size": 7}),
    Variant("mlp-cross_entropy", {"memory_budget": 0}, {"linearization": "recomputed"}),
    Variant("mlp-1-output-mse", {"method": "power"}, {"method": "power"}),
    # beyond it, three seeds each
    Variant("mlp-cross_entropy-probs", seeds=FEW_SEEDS),
    Variant("custom-tiny-scale", seeds=FEW_SEEDS),
    Variant("mlp-batchnorm1d-untracked-mse", seeds=FEW_SEEDS),
    Variant("cnn-batchnorm2d-cross_entropy", seeds=FEW_SEEDS),
    Variant("dict-forward-mse", seeds=FEW_SEEDS),
    Variant("cnn-cross_entropy", {"space": "parameter"}, {"space": "parameter"}, FEW_SEEDS),
    Variant("mlp-batchnorm1d-mse", {"chunk_size": 5, "space": "parameter"}, seeds=FEW_SEEDS),
    Variant("custom-logcosh", {"memory_budget": 0, "chunk_size": 10},
            {"linearization": "recomputed"}, FEW_SEEDS),
    Variant("mlp-mse", {"trace": False}, {"linearization": "cached"}, FEW_SEEDS),
    Variant("mlp-1-output-mse", {"method": "power", "space": "parameter"}, {"method": "power"},
            FEW_SEEDS),
    Variant("cnn-cross_entropy", {"method": "power", "space": "parameter"}, {"method": "power"},
            FEW_SEEDS),
]


def _sweep_options(options: dict[str, Any], seed: int) -> dict[str, Any]:
    """Solver options for one seed of a sweep: seed 0 exactly as given, later seeds untraced.

    Tracing the linearisation (``torch.func.linearize``) costs ~100 plain ``jvp`` calls, most of a
    small solve. ``trace=False`` evaluates the same ``J v`` untraced (equal to 1e-15 on every
    variant here; the traced operator is checked in ``test_ggn_operator_is_the_dense_ggn``), so
    the seed statistics come from untraced solves and the default path runs once per variant.

    Args:
        options: the variant's options.
        seed: the start-vector seed.

    Returns:
        The options to pass.
    """
    return options if seed == 0 or "trace" in options else {**options, "trace": False}


def _params(runs: list[tuple[str, Any, range]]) -> list[Any]:
    """``pytest.param(value, seed)`` for every run and seed, with ids ``f"{id}-seed={seed}"``.

    Args:
        runs: ``(id, value, seeds)`` triples.

    Returns:
        The parameters.
    """
    return [pytest.param(value, seed, id=f"{run_id}-seed={seed}")
            for run_id, value, seeds in runs for seed in seeds]


@pytest.mark.parametrize(("variant", "seed"), _params([(v.id, v, v.seeds) for v in VARIANTS]))
def test_lambda0_matches_dense_ggn(variant: Variant, seed: int) -> None:
    """λ₀ is within 1e-3 of ``eigvalsh(Jᵀ H_out J)`` and its eigenvector has a small dense residual.

    Args:
        variant: the case and solver options (seeds after 0 untraced: :func:`_sweep_options`).
        seed: the start-vector seed.
    """
    p = prepare(variant.case)
    options = _sweep_options(variant.options, seed)
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, seed=seed, **options)
    _check_estimate(est, p.dense.lambda0, p.dense.ggn)
    assert est.curvature == "ggn"
    for key, value in variant.expect.items():
        assert getattr(est, key) == value


@pytest.mark.parametrize(
    ("case_id", "options"), [("mlp-cross_entropy", {"space": "parameter"}), ("mlp-mse", {})],
    ids=["mlp-cross_entropy[space=parameter]", "mlp-mse"])
def test_converged_value_is_an_eigenvalue(case_id: str, options: dict[str, Any]) -> None:
    """What the stopping rule guarantees on any seed: λ₀ is within its residual of *an* eigenvalue.

    A Ritz pair with residual ``r = ‖G v − θ v‖`` has ``|θ − λ_j| ≤ r`` for some ``j``: the top one,
    unless the start vector nearly misses the top eigenvector (see ``test_lanczos_min_krylov``).

    Args:
        case_id: the case.
        options: solver options.
    """
    p = prepare(case_id)
    for seed in range(20):
        est = estimate_lambda0(p.fm, p.x, p.y, p.loss, seed=seed, trace=False, **options)
        distance = float((p.dense.eigenvalues - est.value).abs().min())
        assert distance <= _residual(p.dense.ggn, est) * est.value + 1e-12 * est.value, seed


HESSIAN_CASES = [("mlp-mse", SEEDS), ("mlp-cross_entropy", SEEDS), ("custom-logcosh", FEW_SEEDS),
                 ("mlp-batchnorm1d-mse", FEW_SEEDS)]


@functools.cache
def _dense_hessian(case_id: str) -> Tensor:
    """The dense parameter Hessian of a case's loss (cached).

    Args:
        case_id: a key of :data:`CASES`.

    Returns:
        The ``(P, P)`` Hessian.
    """
    p, case = prepare(case_id), CASES[case_id]
    return dense_hessian(p.reference_model, p.x, p.y, case.ref_loss, case.forward)


@pytest.mark.parametrize(("case_id", "seed"),
                         _params([(c, c, seeds) for c, seeds in HESSIAN_CASES]))
def test_hessian_matches_dense_hessian(case_id: str, seed: int) -> None:
    """``curvature="hessian"`` finds the top (largest algebraic) eigenvalue of the dense Hessian.

    Args:
        case_id: the case.
        seed: the start-vector seed.
    """
    p, h = prepare(case_id), _dense_hessian(case_id)
    evals = torch.linalg.eigvalsh(h)
    assert evals[0] < 0, "the Hessian cases are indefinite, unlike the GGN"
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, curvature="hessian", seed=seed)
    _check_estimate(est, float(evals[-1]), h)
    assert (est.curvature, est.space, est.linearization) == ("hessian", "parameter", "recomputed")


def test_hessian_chunked_equals_unchunked() -> None:
    """The Hessian of the chunk-weighted loss is the Hessian of the whole set's loss."""
    p = prepare("mlp-cross_entropy")
    whole = estimate_lambda0(p.fm, p.x, p.y, p.loss, curvature="hessian")
    chunked = estimate_lambda0(p.fm, p.x, p.y, p.loss, curvature="hessian", chunk_size=7)
    assert abs(chunked.value - whole.value) <= EXACT * whole.value


# ----------------------------------------------------------------------- the operator itself ----
LINEARIZATIONS = {
    "cached": {},
    "cached-untraced": {"trace": False},
    "recomputed": {"memory_budget": 0},
}


#: every case cached; the other linearisations on a few (each operator costs one trace or none)
OPERATOR_RUNS = [(c, "cached") for c in CASES] + [
    (c, lin) for c in ("mlp-cross_entropy", "cnn-batchnorm2d-cross_entropy", "custom-logcosh",
                       "dict-forward-mse") for lin in ("cached-untraced", "recomputed")]


@pytest.mark.parametrize(("case_id", "linearization"), OPERATOR_RUNS,
                         ids=[f"{c}-{lin}" for c, lin in OPERATOR_RUNS])
def test_ggn_operator_is_the_dense_ggn(case_id: str, linearization: str) -> None:
    """``G v`` is the dense ``Jᵀ H_out J v``; output space: ``A Aᵀ`` with ``AᵀA = G``.

    On random probe vectors: ``params_matvec(v) = G v``; ``project`` (``A = B J``) and ``lift``
    (``Aᵀ``) are adjoint, ``lift(project(v)) = G v`` and ``outputs_matvec = project ∘ lift``. So the
    output-space operator ``A Aᵀ`` has exactly the non-zero spectrum of ``G``.

    Args:
        case_id: the case.
        linearization: how ``J v`` and ``Jᵀ u`` are evaluated.
    """
    p = prepare(case_id)
    op = GGNOperator(p.fm, p.fm.params0, p.x, p.y, p.loss, **LINEARIZATIONS[linearization])
    assert op.linearization == linearization.split("-")[0]
    assert (op.dim_params, op.dim_outputs) == (p.dense.num_params, p.dense.jacobian.shape[0])
    g = p.dense.ggn
    tol = 1e-12 * float(p.dense.eigenvalues.abs().max())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        v = torch.randn(op.dim_params, generator=gen, dtype=DT)
        assert float((op.params_matvec(v) - g @ v).norm()) <= tol * float(v.norm())
        if not p.loss.builtin:
            continue
        w = torch.randn(op.dim_outputs, generator=gen, dtype=DT)
        av, atw = op.project(v), op.lift(w)
        scale = float(w.norm() * av.norm())
        assert abs(float(atw @ v) - float(w @ av)) <= 1e-12 * scale, "lift is project's adjoint"
        assert float((op.lift(av) - g @ v).norm()) <= tol * float(v.norm()), "AᵀA = G"
        assert float((op.outputs_matvec(w) - op.project(atw)).norm()) <= 1e-12 * float(
            av.norm() + op.project(atw).norm())


@pytest.mark.parametrize("case_id", ["mlp-cross_entropy", "cnn-batchnorm2d-cross_entropy"])
def test_traced_product_after_trace_after_calls(case_id: str, monkeypatch) -> None:
    """Past ``TRACE_AFTER`` products ``J v`` is traced once (``linearize``); it stays the dense G v.

    Args:
        case_id: the case.
        monkeypatch: pytest's monkeypatch (a small ``TRACE_AFTER`` keeps the test short).
    """
    monkeypatch.setattr(curvature, "TRACE_AFTER", 2)
    p = prepare(case_id)
    op = GGNOperator(p.fm, p.fm.params0, p.x, p.y, p.loss)
    gen = torch.Generator().manual_seed(0)
    tol = 1e-12 * float(p.dense.eigenvalues.abs().max())
    for i in range(5):
        v = torch.randn(op.dim_params, generator=gen, dtype=DT)
        assert float((op.params_matvec(v) - p.dense.ggn @ v).norm()) <= tol * float(v.norm())
        assert (op.chunks[0]._jvp_fn is not None) == (i >= 2)


@pytest.mark.parametrize("chunk_size", [1, 7, M - 1, 10 * M], ids=lambda c: f"chunk_size={c}")
@pytest.mark.parametrize(
    "case_id", ["mlp-cross_entropy", "custom-logcosh", "cnn-batchnorm2d-cross_entropy"])
def test_chunked_equals_unchunked(case_id: str, chunk_size: int) -> None:
    """Chunking changes neither ``G v`` nor λ₀ beyond rounding (float64: ~1e-10).

    Untraced (``trace=False``): tracing each of 24 chunks would cost seconds, and the chunk weights
    do not depend on how ``J v`` is evaluated (traced chunks: the ``chunk_size`` variants above).

    Args:
        case_id: the case.
        chunk_size: samples per chunk.
    """
    p = prepare(case_id)
    whole = GGNOperator(p.fm, p.fm.params0, p.x, p.y, p.loss, trace=False)
    parts = GGNOperator(p.fm, p.fm.params0, p.x, p.y, p.loss, chunk_size=chunk_size, trace=False)
    assert len(parts.chunks) == math.ceil(M / min(chunk_size, M))
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(whole.dim_params, generator=gen, dtype=DT)
        a, b = whole.params_matvec(v), parts.params_matvec(v)
        assert float((a - b).norm()) <= EXACT * float(a.norm())
        if p.loss.builtin:
            w = torch.randn(whole.dim_outputs, generator=gen, dtype=DT)
            a, b = whole.outputs_matvec(w), parts.outputs_matvec(w)
            assert float((a - b).norm()) <= EXACT * float(a.norm())
    if chunk_size == 1:  # 24 chunks: the operator above is enough (a solve would take seconds)
        return
    for space in ("parameter", "output") if p.loss.builtin else ("parameter",):
        ref = estimate_lambda0(p.fm, p.x, p.y, p.loss, space=space, seed=3, trace=False)
        est = estimate_lambda0(p.fm, p.x, p.y, p.loss, space=space, seed=3, chunk_size=chunk_size,
                               trace=False)
        assert abs(est.value - ref.value) <= EXACT * ref.value, space
        assert est.matvecs == ref.matvecs


@pytest.mark.parametrize("case_id", ["mlp-cross_entropy", "cnn-batchnorm2d-cross_entropy",
                                     "custom-logcosh"])
def test_cached_equals_recomputed(case_id: str) -> None:
    """``memory_budget=0`` recomputes the linearisation chunk by chunk and gives the same λ₀.

    Args:
        case_id: the case.
    """
    p = prepare(case_id)
    for space in ("parameter", "output") if p.loss.builtin else ("parameter",):
        cached = estimate_lambda0(p.fm, p.x, p.y, p.loss, space=space, seed=1)
        recomputed = estimate_lambda0(p.fm, p.x, p.y, p.loss, space=space, seed=1, memory_budget=0,
                                      chunk_size=7)
        assert (cached.linearization, recomputed.linearization) == ("cached", "recomputed")
        assert abs(recomputed.value - cached.value) <= EXACT * cached.value
        v1, v2 = cached.eigenvector, recomputed.eigenvector
        assert float(torch.minimum((v1 - v2).norm(), (v1 + v2).norm())) <= 1e-8


def test_auto_space_picks_the_smaller() -> None:
    """``space="auto"``: output space only for a built-in loss, fewer outputs than parameters."""
    p = prepare("mlp-mse")
    assert p.fm.num_params > M * 3
    assert estimate_lambda0(p.fm, p.x, p.y, p.loss).space == "output"
    c = prepare("custom-logcosh")
    assert estimate_lambda0(c.fm, c.x, c.y, c.loss).space == "parameter"
    torch.manual_seed(0)
    tall = nn.Linear(2, 1).to(DT)  # 3 parameters, 24 outputs
    x, y = torch.randn(M, 2, dtype=DT), torch.randn(M, 1, dtype=DT)
    fm = FunctionalModel(Problem(tall, x, y, resolve_loss("mse")))
    est = estimate_lambda0(fm, x, y, resolve_loss("mse"))
    assert est.space == "parameter"
    _check_estimate(est, dense_ggn(tall, x, y, F.mse_loss).lambda0,
                    dense_ggn(tall, x, y, F.mse_loss).ggn)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"curvature": "fisher"}, "curvature"), ({"method": "arnoldi"}, "method"),
     ({"space": "dual"}, "space"), ({"space": "output"}, "built-in loss")],
    ids=["curvature", "method", "space", "output-space-custom-loss"],
)
def test_bad_options_raise(options: dict[str, str], message: str) -> None:
    """Unknown options, and the output space with a custom loss, are ``ValueError``.

    Args:
        options: the bad keyword arguments.
        message: what the message must mention.
    """
    p = prepare("custom-logcosh")
    with pytest.raises(ValueError, match=message):
        estimate_lambda0(p.fm, p.x, p.y, p.loss, **options)


def test_frozen_parameters_are_excluded() -> None:
    """Frozen parameters are constants: ``G`` and the eigenvector live on the trainable ones."""
    p = prepare("mlp-frozen-mse")
    trainable = sum(t.numel() for t in p.model.parameters() if t.requires_grad)
    total = sum(t.numel() for t in p.model.parameters())
    assert trainable == total - (5 * 16 + 16)
    assert p.fm.num_params == p.dense.num_params == trainable
    assert "0.weight" not in p.fm.names and "0.bias" not in p.fm.names
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, space="parameter")
    assert est.eigenvector.shape == (trainable,)


def test_at_other_parameters() -> None:
    """``params=`` linearises at the given point, not at the starting weights."""
    p = prepare("mlp-cross_entropy")
    gen = torch.Generator().manual_seed(7)
    theta = p.fm.params0 + 0.5 * torch.randn(p.fm.num_params, generator=gen, dtype=DT)
    moved = copy.deepcopy(p.model)
    nn.utils.vector_to_parameters(theta, moved.parameters())
    dense = dense_ggn(moved, p.x, p.y, F.cross_entropy)
    assert abs(dense.lambda0 - p.dense.lambda0) > 10 * REL_TOL * p.dense.lambda0
    for seed in range(3):
        est = estimate_lambda0(p.fm, p.x, p.y, p.loss, params=theta, seed=seed)
        _check_estimate(est, dense.lambda0, dense.ggn)


@pytest.mark.parametrize("space", ["parameter", "output"])
def test_warm_start_at_the_eigenvector(space: str) -> None:
    """Started at the exact top eigenvector (``v0``), the solver stops at once with the exact value.

    Args:
        space: the space to solve in (``v0`` is always a parameter-space vector).
    """
    p = prepare("mlp-cross_entropy")
    v0 = torch.linalg.eigh(p.dense.ggn).eigenvectors[:, -1]
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, space=space, v0=v0)
    assert est.matvecs <= 2
    assert abs(est.value - p.dense.lambda0) <= 1e-10 * p.dense.lambda0


def test_callback_reports_each_iteration() -> None:
    """``callback(iteration, ritz_value)`` runs once per iteration, with the history's values."""
    p = prepare("mlp-mse")
    calls: list[tuple[int, float]] = []
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, callback=lambda i, v: calls.append((i, v)))
    assert calls == list(enumerate(est.history, start=1))


def test_zero_curvature() -> None:
    """A loss linear in the outputs has ``G = 0``: λ₀ is exactly 0 and the solve stops at once."""
    p = prepare("mlp-mse")
    loss = resolve_loss(lambda o, t: -(o * t).mean())
    est = estimate_lambda0(p.fm, p.x, p.y, loss)
    assert est.value == 0.0 and est.converged and est.matvecs == 1


# ------------------------------------------------------------------------ the solvers alone ----
def _spectrum_matrix(evals: Tensor, seed: int = 0) -> Tensor:
    """A dense symmetric matrix with the given eigenvalues in a random basis.

    Args:
        evals: the eigenvalues.
        seed: the seed of the basis.

    Returns:
        ``Q diag(evals) Qᵀ``.
    """
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(evals), len(evals), generator=gen, dtype=DT))
    return q @ torch.diag(evals) @ q.T


@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1.0, 1e6, 1e12], ids=lambda s: f"scale={s:g}")
@pytest.mark.parametrize("solver", [lanczos, power_iteration], ids=lambda f: f.__name__)
def test_solvers_are_scale_invariant(solver: Callable[..., tuple], scale: float) -> None:
    """Scaling the operator scales the eigenvalue and changes nothing else (no absolute thresholds).

    Args:
        solver: :func:`lanczos` or :func:`power_iteration`.
        scale: the factor.
    """
    evals = torch.cat([torch.linspace(0.0, 1.0, 40, dtype=DT), torch.tensor([2.0], dtype=DT)])
    a = _spectrum_matrix(evals)
    v0 = torch.randn(41, generator=torch.Generator().manual_seed(1), dtype=DT)
    ref = solver(lambda v: a @ v, v0, tol=DEFAULT_TOL)
    got = solver(lambda v: (scale * a) @ v, v0, tol=DEFAULT_TOL)
    assert got[4] and ref[4], "converged"
    assert got[2] == ref[2], "iterations"
    assert math.isclose(got[0], scale * ref[0], rel_tol=1e-9)
    assert abs(ref[0] - 2.0) <= REL_TOL * 2.0


def test_lanczos_top_algebraic_on_indefinite() -> None:
    """Lanczos returns the largest *algebraic* eigenvalue, even below a larger negative one."""
    evals = torch.cat([torch.tensor([-5.0], dtype=DT), torch.linspace(-1, 1, 30, dtype=DT),
                       torch.tensor([3.0], dtype=DT)])
    a = _spectrum_matrix(evals, seed=2)
    for seed in SEEDS:
        v0 = torch.randn(len(evals), generator=torch.Generator().manual_seed(seed), dtype=DT)
        value, vec, _, _, converged, _ = lanczos(lambda v: a @ v, v0)
        assert converged and abs(value - 3.0) <= REL_TOL * 3.0
        assert float((a @ vec - value * vec).norm()) <= RESIDUAL_TOL * 3.0


def test_lanczos_min_krylov() -> None:
    """Why a random start builds ``MIN_KRYLOV`` vectors before the stopping rule may end it.

    A close top pair (λ₁ = 1, λ₂ = 0.99, the rest in [0, 0.8], n = 200) and start vectors whose λ₁
    component is 0.005 (the others N(0, 1)): the Ritz/residual rule alone certifies the λ₂ eigenpair
    after ~11 matvecs, 1% low; with the floor every start finds λ₁.
    """
    evals = torch.cat([torch.tensor([1.0, 0.99], dtype=DT),
                       0.8 * torch.rand(198, generator=torch.Generator().manual_seed(0), dtype=DT)])
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=torch.Generator().manual_seed(0),
                                       dtype=DT))
    a = q @ torch.diag(evals) @ q.T
    for seed in (1, 2, 3):
        coefficients = torch.randn(200, generator=torch.Generator().manual_seed(seed), dtype=DT)
        coefficients[0] = 0.005
        v0 = q @ coefficients
        alone = lanczos(lambda v: a @ v, v0, min_iter=1)
        assert alone[4] and abs(alone[0] - 0.99) < 1e-3, "the scenario: the rule alone stops on λ₂"
        floored = lanczos(lambda v: a @ v, v0, min_iter=MIN_KRYLOV)
        assert floored[4] and abs(floored[0] - 1.0) <= REL_TOL
        assert floored[2] >= MIN_KRYLOV


def test_random_start_builds_the_basis_warm_start_does_not() -> None:
    """Random starts take at least ``MIN_KRYLOV`` matvecs; warm starts (``v0``) do not."""
    p = prepare("mlp-mse")
    assert min(p.fm.num_params, M * 3) > MIN_KRYLOV
    cold = estimate_lambda0(p.fm, p.x, p.y, p.loss, trace=False)
    assert cold.matvecs >= MIN_KRYLOV
    warm = estimate_lambda0(p.fm, p.x, p.y, p.loss, v0=cold.eigenvector, trace=False)
    assert warm.matvecs < MIN_KRYLOV
    assert abs(warm.value - cold.value) <= REL_TOL * cold.value


# ------------------------------------------------------------ closed forms from the paper ----
class UV(nn.Module):
    """The paper's warm-up model ``f(x) = n^(-1/2) vᵀu x`` (Lewkowycz et al. 2020, §2).

    Args:
        n: the width.
        seed: seeds ``u, v ~ N(0, I_n)``.
    """

    def __init__(self, n: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.n = n
        self.u = nn.Parameter(torch.randn(n, generator=gen, dtype=DT))
        self.v = nn.Parameter(torch.randn(n, generator=gen, dtype=DT))

    def forward(self, x: Tensor) -> Tensor:
        """``n^(-1/2) vᵀu x``.

        Args:
            x: inputs shaped ``(1, 1)``.

        Returns:
            The output, shaped ``(1, 1)``.
        """
        return (self.v @ self.u / math.sqrt(self.n)) * x


def _half_square(output: Tensor, target: Tensor) -> Tensor:
    """The paper's loss ``½ (f − y)²`` (mean over samples).

    Args:
        output: model outputs.
        target: targets.

    Returns:
        The loss.
    """
    return 0.5 * ((output - target) ** 2).mean()


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
@pytest.mark.parametrize(("loss_spec", "factor"), [(_half_square, 1.0), ("mse", 2.0)],
                         ids=["half-square", "mse"])
def test_uv_model_closed_form(loss_spec: str | LossFn, factor: float, seed: int) -> None:
    """The uv model at x = 1, y = 0: λ₀ = (|u|² + |v|²)/n for ½f², twice that for ``F.mse_loss``.

    ``∂f/∂u = v/√n`` and ``∂f/∂v = u/√n``, so ``G = H_out J Jᵀ`` is rank one with eigenvalue
    ``H_out (|u|² + |v|²)/n`` and eigenvector ``(v, u)``; ``H_out`` is 1 for ½f² and 2 for mse.

    Args:
        loss_spec: the loss.
        factor: ``H_out``.
        seed: the start-vector seed.
    """
    n = 64
    model = UV(n, seed=11)
    x, y = torch.ones(1, 1, dtype=DT), torch.zeros(1, 1, dtype=DT)
    u, v = model.u.detach(), model.v.detach()
    expected = factor * float(u @ u + v @ v) / n
    loss = resolve_loss(loss_spec)
    fm = FunctionalModel(Problem(model, x, y, loss))
    est = estimate_lambda0(fm, x, y, loss, seed=seed, **_sweep_options({}, seed))
    assert abs(est.value - expected) <= REL_TOL * expected
    direction = torch.cat([v, u]) / torch.cat([v, u]).norm()
    assert abs(float(est.eigenvector @ direction)) >= 1 - 1e-6
    if seed == 0:  # the closed form agrees with the jacrev reference
        ref_loss = F.mse_loss if loss_spec == "mse" else _half_square
        assert math.isclose(dense_ggn(model, x, y, ref_loss).lambda0, expected, rel_tol=1e-12)


class TwoLayerLinear(nn.Module):
    """A two-layer linear network in NTK parametrisation, ``f(x) = n^(-1/2) V U x``.

    Args:
        d: inputs.
        n: width.
        k: outputs.
        seed: seeds ``U ~ N(0, 1)^(n×d)``, ``V ~ N(0, 1)^(k×n)``.
    """

    def __init__(self, d: int, n: int, k: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.n = n
        self.U = nn.Parameter(torch.randn(n, d, generator=gen, dtype=DT))
        self.V = nn.Parameter(torch.randn(k, n, generator=gen, dtype=DT))

    def forward(self, x: Tensor) -> Tensor:
        """``n^(-1/2) V U x`` for each row of ``x``.

        Args:
            x: inputs shaped ``(m, d)``.

        Returns:
            Outputs shaped ``(m, k)``.
        """
        return x @ self.U.T @ self.V.T / math.sqrt(self.n)


def analytic_ntk(model: TwoLayerLinear, x: Tensor) -> Tensor:
    """The NTK of :class:`TwoLayerLinear` over a probe set, in closed form.

    With ``f_a(x) = n^(-1/2) Σ_b V_ab (U x)_b``: ``∂f_a/∂V_cb = n^(-1/2) δ_ac (U x)_b`` and
    ``∂f_a/∂U_bj = n^(-1/2) V_ab x_j``. Summing products over the parameters,

        Θ_ab(x, x') = (1/n) [ (xᵀx') (V Vᵀ)_ab + (xᵀ Uᵀ U x') δ_ab ].

    Over m samples and k outputs (row ``i·k + a``) that is
    ``Θ = (1/n) [X Xᵀ ⊗ V Vᵀ + X UᵀU Xᵀ ⊗ I_k]``, which is ``J Jᵀ``. ``F.mse_loss`` has
    ``H_out = 2/(m·k) I``, so ``G = 2/(m·k) JᵀJ`` and λ₀ is the top eigenvalue of ``2/(m·k) Θ``
    (``JᵀJ`` and ``J Jᵀ`` share their non-zero spectrum).

    Args:
        model: the network.
        x: inputs shaped ``(m, d)``.

    Returns:
        ``Θ`` shaped ``(m·k, m·k)``.
    """
    u, v = model.U.detach(), model.V.detach()
    k = v.shape[0]
    gram = x @ x.T
    hidden = (x @ u.T) @ (x @ u.T).T
    return (torch.kron(gram, v @ v.T) + torch.kron(hidden, torch.eye(k, dtype=DT))) / model.n


def _two_layer() -> tuple[TwoLayerLinear, Tensor, Tensor]:
    """The two-layer linear case: m = 12 samples, d = 4, n = 32, k = 3.

    Returns:
        ``(model, inputs, targets)``.
    """
    gen = torch.Generator().manual_seed(5)
    m, d, k = 12, 4, 3
    x = torch.randn(m, d, generator=gen, dtype=DT)
    y = torch.randn(m, k, generator=gen, dtype=DT)
    return TwoLayerLinear(d, 32, k, seed=6), x, y


def test_two_layer_ntk_matches_jacrev() -> None:
    """The analytic NTK is ``J Jᵀ`` of the jacrev reference, and its λ₀ is the dense GGN's."""
    model, x, y = _two_layer()
    theta = analytic_ntk(model, x)
    jac = jacobian(model, x)
    torch.testing.assert_close(theta, jac @ jac.T, rtol=1e-12, atol=1e-12)
    m, k = y.shape
    lam = float(torch.linalg.eigvalsh(2 / (m * k) * theta)[-1])
    assert math.isclose(dense_ggn(model, x, y, F.mse_loss).lambda0, lam, rel_tol=1e-10)


@pytest.mark.parametrize("space", ["auto", "parameter"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
def test_two_layer_linear_closed_form(seed: int, space: str) -> None:
    """λ₀ of ``F.mse_loss`` is the top eigenvalue of ``2/(m·k) Θ`` (:func:`analytic_ntk`).

    Args:
        seed: the start-vector seed.
        space: the solver's space.
    """
    model, x, y = _two_layer()
    m, k = y.shape
    expected = float(torch.linalg.eigvalsh(2 / (m * k) * analytic_ntk(model, x))[-1])
    loss = resolve_loss("mse")
    fm = FunctionalModel(Problem(model, x, y, loss))
    est = estimate_lambda0(fm, x, y, loss, seed=seed, **_sweep_options({"space": space}, seed))
    assert est.converged
    assert abs(est.value - expected) <= REL_TOL * expected


# ------------------------------------------------------------- no mutation, determinism ----
def _user_model() -> tuple[nn.Module, Tensor, Tensor]:
    """A model with every kind of state etafinder must leave alone.

    Frozen first layer, trained BatchNorm statistics (custom momentum, counters > 0), an untracked
    BatchNorm, dropout; the model in train mode but one submodule in eval mode; a stale ``.grad``.

    Returns:
        ``(model, inputs, targets)``.
    """
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8, momentum=0.3), nn.Tanh(), nn.Dropout(0.5),
        nn.Linear(8, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Tanh(),
        nn.Linear(8, 3)).to(DT)
    model[0].requires_grad_(False)
    x, y = torch.randn(M, 5, dtype=DT), torch.randn(M, 3, dtype=DT)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(M, 5, dtype=DT) + 0.5)
    model[6].eval()
    model[7].weight.grad = torch.ones_like(model[7].weight)
    return model, x, y


def _snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything about a module that must be bit-identical after etafinder ran.

    Args:
        model: the module.

    Returns:
        Cloned state, flags, grads and the objects' identities.
    """
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "ids": [id(t) for t in (*model.parameters(), *model.buffers())],
        "momentum": [getattr(m, "momentum", None) for m in model.modules()],
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Compare two snapshots with ``torch.equal`` (bit-identical).

    Args:
        before: the snapshot before.
        after: the snapshot after.
    """
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
        assert value.dtype == after["state"][key].dtype, key
    for key in ("training", "requires_grad", "ids", "momentum"):
        assert before[key] == after[key], key
    for g1, g2 in zip(before["grads"], after["grads"], strict=True):
        assert (g1 is None and g2 is None) or torch.equal(g1, g2)


@pytest.mark.parametrize(
    "options",
    [{}, {"space": "parameter"}, {"chunk_size": 5, "memory_budget": 0}, {"trace": False},
     {"curvature": "hessian"}, {"method": "power", "max_iter": 20}],
    ids=["default", "space=parameter", "chunked-recomputed", "untraced", "hessian", "power"],
)
def test_user_model_is_not_mutated(options: dict[str, Any]) -> None:
    """FunctionalModel + estimate_lambda0 leave the user's model, data and global RNG bit-identical.

    Args:
        options: solver options.
    """
    model, x, y = _user_model()
    before, x0, y0 = _snapshot(model), x.clone(), y.clone()
    rng = torch.get_rng_state()
    loss = resolve_loss("mse")
    fm = FunctionalModel(Problem(model, x, y, loss))
    params0 = fm.params0.clone()
    estimate_lambda0(fm, x, y, loss, **options)
    _assert_same(before, _snapshot(model))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(fm.params0, params0)


def test_same_seed_is_bit_identical() -> None:
    """The same seed gives the identical value, eigenvector and history (from a fresh copy too)."""
    p = prepare("mlp-batchnorm1d-mse")
    first = estimate_lambda0(p.fm, p.x, p.y, p.loss, seed=4)
    again = estimate_lambda0(p.fm, p.x, p.y, p.loss, seed=4)
    torch.manual_seed(12345)  # the global RNG plays no part
    fresh_fm = FunctionalModel(Problem(p.model, p.x, p.y, p.loss))
    fresh = estimate_lambda0(fresh_fm, p.x, p.y, p.loss, seed=4)
    for est in (again, fresh):
        assert est.value == first.value
        assert torch.equal(est.eigenvector, first.eigenvector)
        assert est.history == first.history


@pytest.mark.parametrize("case_id", ["mlp-cross_entropy", "custom-logcosh"])
def test_different_seeds_agree_within_tolerance(case_id: str) -> None:
    """Different start seeds give different iterates but the same λ₀ to the tolerance.

    Args:
        case_id: the case.
    """
    p = prepare(case_id)
    values = [estimate_lambda0(p.fm, p.x, p.y, p.loss, seed=s, trace=False).value for s in SEEDS]
    assert len(set(values)) > 1, "the seed must change the start vector"
    assert (max(values) - min(values)) <= 2 * REL_TOL * max(values)


# ------------------------------------------------------------------ float32 and devices ----
@functools.cache
def _on_device(case_id: str, device: str, dtype: torch.dtype) -> tuple[FunctionalModel, Tensor,
                                                                        Tensor]:
    """A case's model and data moved to a device and dtype, as a functional model (cached).

    Args:
        case_id: the case.
        device: ``"cpu"`` or ``"cuda"``.
        dtype: the model's and data's floating dtype.

    Returns:
        ``(fm, x, y)``.
    """
    p = prepare(case_id)
    model = copy.deepcopy(p.model).to(device=device, dtype=dtype)
    x = p.x.to(device=device, dtype=dtype)
    y = p.y.to(device=device, dtype=dtype if p.y.is_floating_point() else None)
    return FunctionalModel(Problem(model, x, y, p.loss)), x, y


def _check_on_device(est: Lambda0Estimate, p: Prepared, dtype: torch.dtype) -> None:
    """An estimate in another dtype (or on another device) against the float64 CPU reference.

    Args:
        est: the estimate.
        p: the prepared case (its dense reference).
        dtype: the dtype the estimate ran in.
    """
    assert est.eigenvector.dtype == dtype
    assert est.converged
    rel = abs(est.value - p.dense.lambda0) / p.dense.lambda0
    assert rel <= REL_TOL, f"λ₀ {est.value} vs dense {p.dense.lambda0}: relative error {rel:.2e}"
    assert _residual(p.dense.ggn, est) <= RESIDUAL_TOL


DEVICE_RUNS = [
    ("mlp-mse", {}),
    ("mlp-cross_entropy", {"space": "parameter"}),
    ("mlp-cross_entropy", {"chunk_size": 7, "memory_budget": 0}),
    ("mlp-batchnorm1d-untracked-mse", {}),
    ("custom-logcosh", {}),
]
DEVICE_IDS = [f"{c}[{_options_id(o)}]" if o else c for c, o in DEVICE_RUNS]


@pytest.mark.parametrize(
    ("run", "seed"),
    _params([(i, run, SEEDS) for i, run in zip(DEVICE_IDS, DEVICE_RUNS, strict=True)]))
def test_float32_matches_float64_reference(run: tuple[str, dict[str, Any]], seed: int) -> None:
    """float32 models and data give λ₀ within 1e-3 of the float64 reference.

    Args:
        run: the case and solver options.
        seed: the start-vector seed.
    """
    case_id, options = run
    fm, x, y = _on_device(case_id, "cpu", torch.float32)
    est = estimate_lambda0(fm, x, y, prepare(case_id).loss, seed=seed,
                           **_sweep_options(options, seed))
    _check_on_device(est, prepare(case_id), torch.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize(("case_id", "options"), DEVICE_RUNS, ids=DEVICE_IDS)
def test_cuda_matches_cpu_reference(case_id: str, options: dict[str, Any],
                                    dtype: torch.dtype) -> None:
    """The CUDA path (model, data, start vector, BatchNorm buffers on the GPU) meets the reference.

    Args:
        case_id: the case.
        options: solver options.
        dtype: the floating dtype.
    """
    fm, x, y = _on_device(case_id, "cuda", dtype)
    p = prepare(case_id)
    for seed in FEW_SEEDS:  # the device path, not seed statistics (the CPU float32 test has those)
        est = estimate_lambda0(fm, x, y, p.loss, seed=seed, **options)
        assert est.eigenvector.device.type == "cuda"
        _check_on_device(est, p, dtype)



@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_estimate_numbers_are_python_types(method: str) -> None:
    """The estimate's numbers are the Python types its fields declare (no numpy scalars leak out).

    Args:
        method: the solver.
    """
    p = prepare("mlp-mse")
    est = estimate_lambda0(p.fm, p.x, p.y, p.loss, method=method, trace=False, max_iter=30)
    assert type(est.value) is float and type(est.residual) is float
    assert type(est.iterations) is int and type(est.matvecs) is int
    assert all(type(h) is float for h in est.history)
