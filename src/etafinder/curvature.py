"""λ₀: the top eigenvalue of the Gauss–Newton matrix ``G = Jᵀ H_out J``, matrix-free.

``G v`` is a forward-mode product ``J v`` (``torch.func.jvp``; traced once with ``torch.func.linearize``
and reused when a solve runs past ``TRACE_AFTER`` products), the output Hessian (closed form for the
built-in losses, see :mod:`etafinder.losses`) and a reverse-mode
product ``Jᵀ u`` (one cached ``torch.func.vjp``). When the probe set's saved activations exceed a memory
budget both are recomputed chunk by chunk instead. J is never materialised.

For the built-in losses the eigenproblem can be solved in the output space instead, with the NTK form
``B J Jᵀ Bᵀ`` (``BᵀB = H_out``), which has the same non-zero spectrum; the smaller of the two spaces is used.

The eigen-solver is Lanczos with full reorthogonalisation. It stops only when the top Ritz value has
settled (relative change ≤ ``tol``) **and** its residual bound ``β_j |s_j|`` is ≤ ``tol`` relative. On
clustered spectra (one outlier per output class) the Ritz value alone stalls: on the reference MLP a
looser residual (1e-2) let one start vector in ten stop at 11 matvecs on a lower member of the cluster,
0.8% low; with both at ``tol`` every one of ten seeds stopped within 13–19 matvecs and ≤ 5e-5 error.

Both criteria certify *an* eigenpair, not the top one. When the top two eigenvalues are close (within
~0.5–10%) and a random start vector happens to be nearly orthogonal to the top eigenvector, the
Krylov space resolves λ₂ first and the rule stops there: on the dense-reference test problems this hit
5–8% of seeds on an MLP with cross-entropy (6e-3 low, at 7–10 matvecs), 1–2% on an MLP with mse
(2e-2 low) and 3 of 180 Hessian solves (up to 1e-1 low, at 9 matvecs). A random start therefore
builds at least ``MIN_KRYLOV`` = 20 Lanczos vectors before the rule may stop it (ARPACK's default
basis size, ``ncv=20``): 0 misses in 2,380 such solves (those problems, and n = 2000 spectra with a
0.5–5% top gap), for a median of ~16 → 20 matvecs on the benchmark MLP. Warm starts (``v0``) are
not held to it.

References:
    Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari (2020). The large learning rate phase of deep
    learning: the catapult mechanism. arXiv:2003.02218.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import jvp, linearize, vjp

from .losses import Loss, output_hvp, sqrt_factor
from .problem import FunctionalModel, chunks

DEFAULT_TOL = 1e-3
DEFAULT_MAX_ITER = 100
DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of saved activations the cached linearisation may hold
RESIDUAL_FACTOR = 1.0  # residual tolerance = RESIDUAL_FACTOR * tol (see the module docstring)
MIN_KRYLOV = 20  # Lanczos vectors a random start builds before it may stop (module docstring)
#: plain ``jvp`` calls before the forward-mode product is traced once with ``torch.func.linearize``.
#: Measured (benchmarks/bench_lambda0.py): the trace costs 8–13 forward+backward passes and saves
#: 0.2–0.3 of one per product, so it pays off only after ~28 (MLP) to ~55 (CNN) products — more than
#: a default solve's 20. Longer solves (tight tolerances, power iteration) still get it.
TRACE_AFTER = 30


#: ``(value, unit eigenvector, iterations, relative residual, converged, Ritz-value history)``
EigResult = tuple[float, Tensor, int, float, bool, list[float]]


@dataclass(frozen=True)
class Lambda0Estimate:
    """The result of an eigen-solve.

    Attributes:
        value: the top eigenvalue.
        eigenvector: its unit eigenvector in parameter space (flat, like ``FunctionalModel.params0``).
        iterations: solver iterations.
        matvecs: operator applications (the output-space lift of the eigenvector is not counted).
        residual: ``‖G v − λ v‖ / |λ|`` as estimated by the solver.
        converged: whether the stopping rule was met before the iteration cap.
        method: ``"lanczos"`` or ``"power"``.
        space: ``"parameter"`` or ``"output"``.
        curvature: ``"ggn"`` or ``"hessian"``.
        linearization: ``"cached"`` or ``"recomputed"``.
        history: the top Ritz value after each iteration.
    """

    value: float
    eigenvector: Tensor
    iterations: int
    matvecs: int
    residual: float
    converged: bool
    method: str
    space: str
    curvature: str
    linearization: str
    history: tuple[float, ...]


def _saved_bytes(fn: Callable[[], Tensor]) -> int:
    """Bytes of tensors autograd saves while running ``fn`` (torch allocations are invisible otherwise)."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


class _Chunk:
    """One chunk's linearisation: ``J_c v`` and ``J_cᵀ u`` at fixed parameters, cached or recomputed."""

    def __init__(self, fm: FunctionalModel, params: Tensor, x: Tensor, y: Tensor, w: float,
                 loss: Loss, cached: bool, trace: bool) -> None:
        self.fm, self.params, self.x, self.y, self.w, self.loss = fm, params, x, y, w, loss

        def f(p: Tensor) -> Tensor:
            return fm(p, x)

        self.f = f
        self._jvp_fn: Callable[[Tensor], Tensor] | None = None
        self._vjp_fn: Callable[[Tensor], tuple[Tensor]] | None = None
        self._jvps = 0
        # trace only once the solve has run long enough for the trace to pay for itself
        self._trace_at = TRACE_AFTER if (cached and trace) else None
        with torch.no_grad():
            self.out = f(params).detach()
        if cached:
            _, self._vjp_fn = vjp(f, params)
        self.factor = sqrt_factor(loss, self.out, w) if loss.builtin else None

    def _trace(self) -> None:
        self._trace_at = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, self._jvp_fn = linearize(self.f, self.params)
        except Exception:  # untraceable model (data-dependent control flow): plain jvp
            self._jvp_fn = None

    def jvp(self, v: Tensor) -> Tensor:
        self._jvps += 1
        if self._trace_at is not None and self._jvps > self._trace_at:
            self._trace()
        if self._jvp_fn is not None:
            return self._jvp_fn(v)
        return jvp(self.f, (self.params,), (v,))[1]

    def vjp(self, u: Tensor) -> Tensor:
        if self._vjp_fn is not None:
            return self._vjp_fn(u)[0]
        return vjp(self.f, self.params)[1](u)[0]


class GGNOperator:
    """Matrix-free ``G = Σ_c J_cᵀ H_c J_c`` at fixed parameters.

    Args:
        fm: the functional model.
        params: flat parameters to linearise at.
        x: probe-set inputs.
        y: probe-set targets.
        loss: the loss.
        chunk_size: samples per chunk (``None``: one chunk).
        memory_budget: bytes of saved activations the cached linearisation may hold.
        trace: allow tracing the forward-mode product (``torch.func.linearize``) when caching, after
            ``TRACE_AFTER`` plain products (the trace costs about as much as dozens of them).
    """

    def __init__(self, fm: FunctionalModel, params: Tensor, x: Tensor, y: Tensor, loss: Loss,
                 chunk_size: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 trace: bool = True) -> None:
        params = params.detach()
        self.loss = loss
        batches = list(chunks(x, y, chunk_size))
        x0 = batches[0][0]
        # linearize + vjp each keep one copy of the activations
        need = 2 * _saved_bytes(lambda: fm(params.requires_grad_(True), x0)) * len(batches)
        params = params.detach()
        self.cached = need <= memory_budget
        self.chunks = [_Chunk(fm, params, xc, yc, w, loss, self.cached, trace)
                       for xc, yc, w in batches]
        self.dim_params = params.numel()
        self.dim_outputs = sum(c.out.numel() for c in self.chunks)
        self.matvecs = 0

    @property
    def linearization(self) -> str:
        """``"cached"`` or ``"recomputed"``."""
        return "cached" if self.cached else "recomputed"

    def params_matvec(self, v: Tensor) -> Tensor:
        """``G v`` in parameter space."""
        self.matvecs += 1
        total = torch.zeros_like(v)
        for c in self.chunks:
            total += c.vjp(output_hvp(self.loss, c.out, c.y, c.jvp(v), c.w))
        return total

    def _split(self, w: Tensor) -> list[Tensor]:
        parts = torch.split(w, [c.out.numel() for c in self.chunks])
        return [p.view(c.out.shape) for p, c in zip(parts, self.chunks, strict=True)]

    def lift(self, w: Tensor) -> Tensor:
        """``Jᵀ Bᵀ w``: an output-space vector mapped to parameter space."""
        g = None
        for part, c in zip(self._split(w), self.chunks, strict=True):
            gc = c.vjp(c.factor[1](part))
            g = gc if g is None else g + gc
        return g

    def project(self, v: Tensor) -> Tensor:
        """``B J v``: a parameter-space vector mapped to output space."""
        return torch.cat([c.factor[0](c.jvp(v)).reshape(-1) for c in self.chunks])

    def outputs_matvec(self, w: Tensor) -> Tensor:
        """``B J Jᵀ Bᵀ w`` in output space (built-in losses only)."""
        self.matvecs += 1
        return self.project(self.lift(w))


class HessianOperator:
    """Matrix-free Hessian of the probe-set loss (reverse-over-reverse, recomputed per chunk).

    Args:
        fm: the functional model.
        params: flat parameters.
        x: inputs.
        y: targets.
        loss: the loss.
        chunk_size: samples per chunk.
    """

    def __init__(self, fm: FunctionalModel, params: Tensor, x: Tensor, y: Tensor, loss: Loss,
                 chunk_size: int | None = None) -> None:
        self.fm, self.params, self.loss = fm, params.detach(), loss
        self.batches = list(chunks(x, y, chunk_size))
        self.dim_params = self.params.numel()
        self.matvecs = 0
        self.linearization = "recomputed"

    def params_matvec(self, v: Tensor) -> Tensor:
        """``H v``."""
        self.matvecs += 1
        total = torch.zeros_like(v)
        for xc, yc, w in self.batches:
            with torch.enable_grad():
                p = self.params.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self.loss(self.fm(p, xc), yc), p, create_graph=True)
                (hv,) = torch.autograd.grad(g, p, v, allow_unused=True)
            if hv is not None:
                total += w * hv
        return total


def lanczos(matvec: Callable[[Tensor], Tensor], v0: Tensor, *, tol: float = DEFAULT_TOL,
            max_iter: int = DEFAULT_MAX_ITER, min_iter: int = 1,
            callback: Callable[[int, float], None] | None = None) -> EigResult:
    """Top (largest algebraic) eigenpair of a symmetric operator by Lanczos with full reorthogonalisation.

    Args:
        matvec: the operator.
        v0: start vector (any non-zero vector).
        tol: relative tolerance on the change of the top Ritz value and on its residual.
        max_iter: iteration cap (and Krylov dimension cap).
        min_iter: iterations before the Ritz/residual rule may stop (``MIN_KRYLOV`` for a random
            start, see the module docstring); an exhausted Krylov space stops earlier.
        callback: called as ``callback(iteration, ritz_value)``.

    Returns:
        ``(value, unit eigenvector, iterations, relative residual, converged, history)``.
    """
    n = v0.numel()
    max_iter = max(1, min(max_iter, n))
    q = v0 / v0.norm()
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    history: list[float] = []
    theta, s, rel_res, converged = 0.0, np.ones(1), math.inf, False
    for j in range(max_iter):
        w = matvec(q)
        a = float(torch.dot(w, q))
        alphas.append(a)
        Q = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice is enough (Kahan–Parlett)
            w = w - Q.T @ (Q @ w)
        b = float(w.norm())
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        evals, evecs = np.linalg.eigh(T)
        theta, s = float(evals[-1]), evecs[:, -1]
        rel_res = float(b * abs(s[-1]) / max(abs(theta), np.finfo(float).tiny))
        history.append(theta)
        if callback is not None:
            callback(j + 1, theta)
        settled = len(history) > 1 and abs(history[-1] - history[-2]) <= tol * abs(theta)
        # invariant subspace: b negligible next to ‖T‖ (relative: G may be tiny, e.g. λ₀ ~ 1e-12)
        t_norm = max(abs(float(evals[0])), abs(theta), np.finfo(float).tiny)
        certified = settled and rel_res <= RESIDUAL_FACTOR * tol
        if b <= 1e-10 * t_norm or (certified and j + 1 >= min_iter):
            converged = True
            break
        if j + 1 < max_iter:
            betas.append(b)
            q = w / b
            basis.append(q)
    Q = torch.stack(basis[: len(alphas)])
    vec = Q.T @ torch.as_tensor(s, dtype=Q.dtype, device=Q.device)
    return theta, vec / vec.norm(), len(alphas), rel_res, converged, history


def power_iteration(matvec: Callable[[Tensor], Tensor], v0: Tensor, *, tol: float = DEFAULT_TOL,
                    max_iter: int = DEFAULT_MAX_ITER,
                    callback: Callable[[int, float], None] | None = None) -> EigResult:
    """Dominant eigenpair by power iteration (same stopping rule and return value as :func:`lanczos`).

    .. note:: converges at the rate ``λ₂/λ₁``; on clustered spectra that takes hundreds of matvecs.
    """
    v = v0 / v0.norm()
    history: list[float] = []
    theta, rel_res, converged = 0.0, math.inf, False
    for j in range(max_iter):
        w = matvec(v)
        theta = float(torch.dot(w, v))
        rel_res = float((w - theta * v).norm()) / max(abs(theta), np.finfo(float).tiny)
        history.append(theta)
        if callback is not None:
            callback(j + 1, theta)
        settled = len(history) > 1 and abs(history[-1] - history[-2]) <= tol * abs(theta)
        if settled and rel_res <= RESIDUAL_FACTOR * tol:
            converged = True
            break
        v = w / w.norm()
    return theta, v, len(history), rel_res, converged, history


def estimate_lambda0(fm: FunctionalModel, x: Tensor, y: Tensor, loss: Loss, *,
                     params: Tensor | None = None, curvature: str = "ggn", method: str = "lanczos",
                     space: str = "auto", tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER,
                     chunk_size: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                     seed: int = 0, v0: Tensor | None = None, trace: bool = True,
                     callback: Callable[[int, float], None] | None = None) -> Lambda0Estimate:
    """Top eigenvalue of the Gauss–Newton matrix (or the Hessian) of the probe-set loss.

    Args:
        fm: the functional model (its evaluation policy applies).
        x: probe-set inputs.
        y: probe-set targets.
        loss: the loss exactly as configured.
        params: flat parameters (default: the starting parameters ``fm.params0``).
        curvature: ``"ggn"`` (the paper's NTK quantity) or ``"hessian"``.
        method: ``"lanczos"`` or ``"power"``.
        space: ``"auto"`` (the smaller), ``"parameter"`` or ``"output"`` (built-in losses, GGN only).
        tol: relative tolerance.
        max_iter: iteration cap.
        chunk_size: samples per chunk (``None``: the whole probe set at once).
        memory_budget: bytes the cached linearisation may hold before recomputing per chunk.
        seed: seeds the random start vector (a private generator: global RNG untouched).
        v0: optional start vector in parameter space (a warm start, e.g. a previous eigenvector).
        trace: trace the forward-mode product once (see :class:`GGNOperator`); off for short solves.
        callback: progress, ``callback(iteration, ritz_value)``.

    Returns:
        A :class:`Lambda0Estimate`.

    Raises:
        ValueError: for an unknown ``curvature``, ``method`` or ``space``.
    """
    if curvature not in ("ggn", "hessian"):
        raise ValueError(f"curvature must be 'ggn' or 'hessian', got {curvature!r}")
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    if space not in ("auto", "parameter", "output"):
        raise ValueError(f"space must be 'auto', 'parameter' or 'output', got {space!r}")
    params = (fm.params0 if params is None else params).detach()
    solve = lanczos if method == "lanczos" else power_iteration
    op: GGNOperator | HessianOperator
    if curvature == "hessian":
        op = HessianOperator(fm, params, x, y, loss, chunk_size)
        space = "parameter"
    else:
        op = GGNOperator(fm, params, x, y, loss, chunk_size, memory_budget, trace)
        can_output = loss.builtin
        if space == "output" and not can_output:
            raise ValueError("the output-space form needs a built-in loss (its H_out has a square root)")
        if space == "auto":
            space = "output" if can_output and op.dim_outputs < op.dim_params else "parameter"
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # a random start may miss the top eigenvector of a close pair: build a basis first (docstring)
    floor = {"min_iter": MIN_KRYLOV} if method == "lanczos" and v0 is None else {}
    if space == "output":
        assert isinstance(op, GGNOperator)
        if v0 is not None:
            start = op.project(v0.to(params))
        else:
            start = torch.randn(op.dim_outputs, generator=gen, dtype=params.dtype).to(params.device)
        value, vec, its, res, conv, hist = solve(op.outputs_matvec, start, tol=tol, max_iter=max_iter,
                                                 callback=callback, **floor)
        vec = op.lift(vec)
        vec = vec / vec.norm()
    else:
        start = v0.to(params) if v0 is not None else torch.randn(
            op.dim_params, generator=gen, dtype=params.dtype).to(params.device)
        value, vec, its, res, conv, hist = solve(op.params_matvec, start, tol=tol, max_iter=max_iter,
                                                 callback=callback, **floor)
    return Lambda0Estimate(value=value, eigenvector=vec.detach(), iterations=its, matvecs=op.matvecs,
                           residual=res, converged=conv, method=method, space=space,
                           curvature=curvature, linearization=op.linearization,
                           history=tuple(hist))
