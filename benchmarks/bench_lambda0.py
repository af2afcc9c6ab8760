"""λ₀ benchmark: etafinder's Gauss–Newton top eigenvalue against its peers and a float64 reference.

What it measures, on two cases — (1) the reference MLP 64→512→512→10 (ReLU, PyTorch default init,
1,024 standard-normal inputs, random one-hot targets, ``F.mse_loss`` mean, float32); (2) a small CNN
(two 3×3 convolutions + a linear layer) with ``F.cross_entropy`` on 512 of scikit-learn's
bundled 8×8 digits (random inputs if scikit-learn is absent), float32:

* for every method: the top eigenvalue, the operator applications it took (matvecs / HVPs), its
  relative error against a float64 reference (worst over the start seeds), its median wall time over
  ≥ 5 start seeds (operator construction included; also the min and the process CPU time), the time
  ratio against etafinder, and its peak memory. Each method runs in a **fresh subprocess**, which
  reports ``ru_maxrss`` (peak RSS of the whole process) and the rise of VmHWM above its own floor
  (after imports, model, data and a warm-up call on 8 samples; the peak is reset through
  ``/proc/self/clear_refs``).
* GGN rows: etafinder at its defaults (auto space), in parameter space, recomputing its
  linearisation (``memory_budget=0, chunk_size=256``) and at ``tol=1e-5``; curvlinops'
  ``GGNLinearOperator`` with ``scipy.sparse.linalg.eigsh(k=1, which="LA", tol=1e-3)``;
  hessian-eigenthings' ``GGNOperator`` with ``lanczos(k=1, max_iter=20)`` (its 1.0 names for
  ``num_eigenthings=1, max_steps=20``); the float64 dense reference (top eigenvalue of the Gram/NTK
  matrix built from ``jacrev`` Jacobians).
* Hessian rows: etafinder ``curvature="hessian"``; PyHessian ``hessian(...).eigenvalues()`` at its
  defaults (power iteration, ``maxIter=100, tol=1e-3``); the float64 Hessian top eigenvalue (dense
  ``eigvalsh`` when it is cheap, else float64 Lanczos to 1e-10; the output says which).
* the cost of one GGN-vector product (etafinder cached and recomputed, curvlinops,
  hessian-eigenthings) and of one HVP, as a multiple of one plain forward+backward of the loss
  (median of 20), with a breakdown of etafinder's product and its setup (the linearize trace).
* a baseline subprocess that only builds the model and runs one forward+backward on one 256-sample
  chunk, so that peak memory can be read off as a ratio to it.

Run it from the repository root (peers: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_lambda0.py              # full run, ~5–10 min on an idle 2-core machine
    python benchmarks/bench_lambda0.py --quick      # smoke run, < 1 min (small data, in-process)
    python benchmarks/bench_lambda0.py --threads 2 --cases mlp --json out.json

``--threads`` (default 1) goes to ``torch.set_num_threads`` (and OMP/MKL/OPENBLAS_NUM_THREADS) in
every process: on a shared machine two OpenMP threads contending with other jobs make wall times
several-fold slower and erratic; with one thread the "cpu s" column is a load-robust measure.

Targets (from the issue):

* λ₀ to a relative error of 1e-3 in ≤ 20 matvecs, on every start seed (≥ 10 seeds);
* one GGN-vector product ≤ 2.0× one forward+backward, cached linearisation (≤ 3× recomputing);
* ≥ 2× faster than curvlinops+eigsh and ≥ 1.5× faster than hessian-eigenthings, matched accuracy;
* peak memory with chunking within 2× of one forward+backward on a chunk.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.metadata as md
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.use_source_tree()

SCRIPT = str(Path(__file__).resolve())
CHUNK = 256  # the chunk size of the recomputed row and of the memory baseline
TINY = 8  # samples of the warm-up call that precedes every measurement in a child

# ------------------------------------------------------------------------------------- cases ----
CASES = {
    "mlp": {"m": 1024, "m_quick": 256, "loss": "mse"},
    "cnn": {"m": 512, "m_quick": 128, "loss": "cross_entropy"},
}


@dataclass
class Ctx:
    """One case, built fresh: the model (float32), its probe set and the loss name."""

    name: str
    model: object
    x: object
    y: object
    loss: str
    title: str


def build_case(name: str, quick: bool, m: int | None = None) -> Ctx:
    """Build a case deterministically (seed 0), exactly the same in every process."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    spec = CASES[name]
    m = m or (spec["m_quick"] if quick else spec["m"])
    torch.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(
            nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )
        x = torch.randn(m, 64)
        y = F.one_hot(torch.randint(0, 10, (m,)), 10).float()
        title = (
            f"MLP 64→512→512→10 (ReLU, default init), F.mse_loss (mean), {m:,} N(0,1) inputs, "
            "random one-hot targets, float32"
        )
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )
        try:
            from sklearn.datasets import load_digits

            d = load_digits()
            x = torch.tensor(d.images[:m] / 16.0, dtype=torch.float32).unsqueeze(1)
            y = torch.tensor(d.target[:m], dtype=torch.long)
            data = "sklearn digits"
        except ImportError:
            x = torch.randn(m, 1, 8, 8)
            y = torch.randint(0, 10, (m,))
            data = "random 8×8 inputs (scikit-learn absent)"
        title = (
            f"CNN conv(1→8,3×3)-ReLU-conv(8→16,3×3,stride 2)-ReLU-linear(256→10), "
            f"F.cross_entropy (mean), {m:,} {data}, float32"
        )
    return Ctx(name, model, x, y, spec["loss"], title)


def subset(ctx: Ctx, n: int) -> Ctx:
    """The first ``n`` samples of a case (same model object)."""
    return Ctx(ctx.name, ctx.model, ctx.x[:n], ctx.y[:n], ctx.loss, ctx.title)


def n_params(ctx: Ctx) -> int:
    return sum(p.numel() for p in ctx.model.parameters())


# ----------------------------------------------------------------------------------- methods ----
def _ef(ctx: Ctx, seed: int, **kw) -> dict:
    from etafinder.curvature import estimate_lambda0
    from etafinder.losses import resolve_loss
    from etafinder.problem import FunctionalModel, Problem

    pr = Problem(ctx.model, ctx.x, ctx.y, resolve_loss(ctx.loss))
    fm = FunctionalModel(pr)
    est = estimate_lambda0(fm, ctx.x, ctx.y, pr.loss, seed=seed, **kw)
    return {
        "value": est.value,
        "matvecs": est.matvecs,
        "space": est.space,
        "linearization": est.linearization,
        "converged": est.converged,
    }


def m_ef_auto(ctx, seed):
    return _ef(ctx, seed)


def m_ef_param(ctx, seed):
    return _ef(ctx, seed, space="parameter")


def m_ef_recomp(ctx, seed):
    return _ef(ctx, seed, memory_budget=0, chunk_size=CHUNK)


def m_ef_tight(ctx, seed):
    return _ef(ctx, seed, tol=1e-5)


def m_ef_notrace(ctx, seed):
    return _ef(ctx, seed, trace=False)


def m_ef_hessian(ctx, seed):
    return _ef(ctx, seed, curvature="hessian")


def _loss_module(ctx):
    from torch import nn

    return nn.MSELoss() if ctx.loss == "mse" else nn.CrossEntropyLoss()


def _loss_fn(ctx):
    import torch.nn.functional as F

    return F.mse_loss if ctx.loss == "mse" else F.cross_entropy


def m_curvlinops(ctx, seed):
    import numpy as np
    from curvlinops import GGNLinearOperator
    from scipy.sparse.linalg import LinearOperator, eigsh

    params = [p for p in ctx.model.parameters() if p.requires_grad]
    # check_deterministic=False and num_data given skip curvlinops' safety passes over the data:
    # both only make it faster.
    op = GGNLinearOperator(
        ctx.model,
        _loss_module(ctx),
        params,
        [(ctx.x, ctx.y)],
        check_deterministic=False,
        num_data=ctx.x.shape[0],
    )
    A = op.to_scipy()
    count = [0]

    def mv(v):
        count[0] += 1
        return A.matvec(v)

    B = LinearOperator(A.shape, matvec=mv, dtype=A.dtype)
    v0 = np.random.default_rng(seed).standard_normal(A.shape[0])
    val = eigsh(B, k=1, which="LA", tol=1e-3, v0=v0, return_eigenvectors=False)
    return {"value": float(val[0]), "matvecs": count[0]}


def m_hessian_eigenthings(ctx, seed):
    from hessian_eigenthings import (
        GGNOperator,
        lanczos,
        supervised_forward,
        supervised_loss_of_output,
    )

    op = GGNOperator(
        ctx.model, [(ctx.x, ctx.y)], supervised_forward, supervised_loss_of_output(_loss_fn(ctx))
    )
    res = lanczos(op, k=1, max_iter=20, seed=seed)
    return {"value": float(res.eigenvalues[0]), "matvecs": int(res.iterations)}


def m_pyhessian(ctx, seed):
    import importlib

    import torch

    ph = importlib.import_module("pyhessian.hessian")  # the module (pyhessian.hessian is the class)
    count = [0]
    orig = ph.hessian_vector_product

    def counted(*a, **k):
        count[0] += 1
        return orig(*a, **k)

    ph.hessian_vector_product = counted
    try:
        ctx.model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)  # PyHessian draws its start vector from the global RNG
        h = ph.hessian(ctx.model, _loss_module(ctx), data=(ctx.x, ctx.y), cuda=False)
        evs, _ = h.eigenvalues()
        del h
    finally:
        ph.hessian_vector_product = orig
        ctx.model.zero_grad(set_to_none=True)  # PyHessian leaves a create_graph gradient in .grad
    return {"value": float(evs[0]), "matvecs": count[0]}


# ------------------------------------------------------------------------ float64 references ----
def _functional64(ctx):
    """A float64 model copy as ``f(flat, x)``, its flat parameters, float64 data, ``L(out, y)``."""
    import torch
    from torch.func import functional_call

    model = copy.deepcopy(ctx.model).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    numels = [p.numel() for _, p in model.named_parameters()]
    p0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(flat, x):
        parts = torch.split(flat, numels)
        return functional_call(
            model, {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}, (x,)
        )

    x = ctx.x.double()
    if ctx.loss == "mse":
        y = ctx.y.double()

        def L(out, t):  # hand-written (independent of F.mse_loss): mean over all entries
            return ((out - t) ** 2).mean()
    else:
        y = ctx.y

        def L(out, t):  # hand-written cross-entropy, mean over samples
            return -out.log_softmax(-1).gather(1, t.view(-1, 1)).mean()

    return model, f, p0, x, y, L


def _top_eig(M, force_eigvalsh: bool) -> tuple[float, str]:
    """Top eigenvalue of a dense symmetric float64 matrix."""
    import numpy as np
    import torch

    n = M.shape[0]
    if force_eigvalsh or n <= 6000:
        return float(torch.linalg.eigvalsh(M)[-1]), f"eigvalsh of the {n:,}×{n:,} matrix"
    from scipy.sparse.linalg import eigsh

    A = M.numpy()
    val, vec = eigsh(A, k=1, which="LA", tol=0)
    res = float(np.linalg.norm(A @ vec[:, 0] - val[0] * vec[:, 0]) / abs(val[0]))
    return float(val[0]), (
        f"eigsh to machine precision on the explicit {n:,}×{n:,} matrix "
        f"(residual {res:.0e}; eigvalsh of it takes ~4 min on 2 cores: --eigvalsh)"
    )


def _output_hessians(out, y, L, m):
    """Per-sample output Hessians ``∇²_f L`` (autograd; the loss is a sample mean): (m, k, k)."""
    from torch.func import hessian, vmap

    return vmap(hessian(lambda o, t: L(o[None], t[None])))(out, y) / m


def _is_plain_mlp(model) -> bool:
    from torch import nn

    return isinstance(model, nn.Sequential) and all(
        isinstance(layer, (nn.Linear, nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid)) for layer in model
    )


def _structured_ntk(model, x):
    """``J Jᵀ`` (m·k × m·k) of a Sequential MLP, exactly: per linear layer ``(a_i·a_j+1)(δ_iδ_jᵀ)``.

    ``a`` is the layer input, ``δ_i = ∂f_i/∂z_i`` (k × out) the Jacobian of the network's head with
    respect to the layer's pre-activation, computed per sample with ``jacrev``. This is J Jᵀ summed
    layer by layer
    (the Jacobian of a linear layer is ``δ ⊗ a``), without the m·k × P Jacobian itself.
    """
    import torch
    from torch import nn
    from torch.func import jacrev, vmap

    layers = list(model)
    m = x.shape[0]
    with torch.no_grad():
        k = model(x[:1]).shape[-1]
    K = torch.zeros(m * k, m * k, dtype=x.dtype)
    a = x
    with torch.no_grad():
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Linear):
                z = layer(a)
                head = nn.Sequential(*layers[i + 1 :])
                if len(head) == 0:
                    delta = torch.eye(k, dtype=x.dtype).expand(m, k, k)
                else:
                    delta = vmap(jacrev(lambda zi, h=head: h(zi[None])[0]))(z)  # (m, k, out)
                D = delta.reshape(m * k, -1)
                DD = D @ D.T
                AA = a @ a.T + (1.0 if layer.bias is not None else 0.0)
                DD.view(m, k, m, k).mul_(AA[:, None, :, None])
                K += DD
                del DD, D, delta
            a = layer(a)
    return K


def dense_ggn(ctx: Ctx, force_eigvalsh: bool) -> dict:
    """Float64 top eigenvalue of ``G = Jᵀ H_out J`` from explicit matrices (J by ``jacrev``)."""
    import torch
    from torch.func import jacrev, vmap

    model, f, p0, x, y, L = _functional64(ctx)
    m, P = x.shape[0], p0.numel()
    with torch.no_grad():
        out = f(p0, x)
    k = out.shape[-1]
    H = _output_hessians(out, y, L, m)  # (m, k, k)
    notes = []
    j_bytes = m * k * P * 8
    if j_bytes <= 4 * 1024**3:

        def f1(p, xi):
            return f(p, xi[None])[0]

        J = vmap(jacrev(f1), in_dims=(None, 0), chunk_size=64)(p0, x)  # (m, k, P)
        if P <= m * k:
            HJ = torch.einsum("ikl,ilp->ikp", H, J).reshape(m * k, P)
            M = J.reshape(m * k, P).T @ HJ
            form = "parameter-space Gram Jᵀ H J"
        else:
            w, U = torch.linalg.eigh(H)  # B_i = diag(√w) Uᵀ, BᵀB = H
            B = w.clamp_min(0).sqrt()[:, :, None] * U.transpose(1, 2)
            BJ = torch.einsum("ikl,ilp->ikp", B, J).reshape(m * k, P)
            M = BJ @ BJ.T
            form = "output-space NTK B J Jᵀ Bᵀ"
        notes.append(f"J ({m * k:,}×{P:,}) by per-sample jacrev")
    else:
        if not _is_plain_mlp(model):
            raise RuntimeError(f"J would take {j_bytes / 1e9:.0f} GB and the model is no plain MLP")
        K = _structured_ntk(model, x)
        # check the structured J Jᵀ against the direct jacrev J Jᵀ on a subset
        ns = 16
        Js = vmap(jacrev(lambda p, xi: f(p, xi[None])[0]), in_dims=(None, 0))(p0, x[:ns])
        Js = Js.reshape(ns * k, P)
        direct = Js @ Js.T
        structured = K.view(m, k, m, k)[:ns, :, :ns, :].reshape(ns * k, ns * k)
        check = float((direct - structured).abs().max() / direct.abs().max())
        del Js, direct, structured
        w, U = torch.linalg.eigh(H)
        B = w.clamp_min(0).sqrt()[:, :, None] * U.transpose(1, 2)  # (m, k, k)
        scalar = torch.allclose(
            H, H[0, 0, 0] * torch.eye(k, dtype=H.dtype).expand(m, k, k), rtol=1e-12, atol=0
        )
        if scalar:  # mse: H_out = s·I, so B J Jᵀ Bᵀ = s · J Jᵀ
            K.mul_(float(H[0, 0, 0]))
        else:
            K4 = K.view(m, k, m, k)
            K = torch.einsum("iac,icjd,jbd->iajb", B, K4, B).reshape(m * k, m * k)
        M = K
        form = "output-space NTK B J Jᵀ Bᵀ"
        notes.append(
            f"J Jᵀ summed per linear layer from jacrev Jacobians of the head "
            f"(J itself would take {j_bytes / 1e9:.0f} GB); on {ns} samples it matches the "
            f"direct jacrev J Jᵀ to {check:.0e} relative"
        )
    M = 0.5 * (M + M.T)
    value, how = _top_eig(M, force_eigvalsh)
    return {"value": value, "matvecs": None, "form": form, "how": how, "notes": notes}


DENSE_HESSIAN_MAX = (
    2000  # P above which the Hessian reference is float64 Lanczos (--dense-hessian: 5,000)
)


def dense_hessian(ctx: Ctx, force_eigvalsh: bool, dense_max: int = DENSE_HESSIAN_MAX) -> dict:
    """Float64 top (algebraic) Hessian eigenvalue: dense for P ≤ ``dense_max``, else Lanczos.

    The dense Hessian takes P HVPs; for the CNN (P = 3,818) that is minutes on 2 cores, which is why
    the default threshold sends it to Lanczos (``--dense-hessian`` builds it).
    """
    import numpy as np
    import torch
    from torch.func import grad, jvp, vmap

    _, f, p0, x, y, L = _functional64(ctx)
    P = p0.numel()

    def loss(p):
        return L(f(p, x), y)

    g = grad(loss)

    def hvp(v):  # forward-over-reverse (etafinder uses reverse-over-reverse)
        return jvp(g, (p0,), (v,))[1]

    if P <= dense_max:
        Hm = vmap(hvp, chunk_size=128)(torch.eye(P, dtype=p0.dtype))
        Hm = 0.5 * (Hm + Hm.T)
        value, how = _top_eig(Hm, force_eigvalsh)
        return {
            "value": value,
            "matvecs": P,
            "form": f"dense Hessian ({P:,}×{P:,}, {P:,} HVPs)",
            "how": how,
            "notes": [],
        }
    from scipy.sparse.linalg import LinearOperator, eigsh

    why = "does not fit" if P > 5000 else f"would take {P:,} HVPs (--dense-hessian builds it)"
    count = [0]

    def mv(v):
        count[0] += 1
        return hvp(torch.from_numpy(np.ascontiguousarray(v).reshape(-1))).numpy()

    A = LinearOperator((P, P), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(12345).standard_normal(P)
    val, vec = eigsh(A, k=1, which="LA", tol=1e-10, v0=v0, ncv=40)
    v = vec[:, 0]
    res = float(np.linalg.norm(mv(v) - val[0] * v) / abs(val[0]))
    return {
        "value": float(val[0]),
        "matvecs": count[0],
        "form": f"float64 Lanczos (ARPACK eigsh, which='LA', tol=1e-10) on HVPs; the dense "
        f"Hessian ({P:,}² entries) {why}",
        "how": f"residual ‖Hv−λv‖/|λ| = {res:.0e}",
        "notes": [],
    }


# ------------------------------------------------------------------------------ method table ----
# key: (label, function, kind, seeds in a full run)
METHODS = {
    "ef_auto": ("etafinder (GGN, auto space)", m_ef_auto, "ggn", 10),
    "ef_param": ("etafinder parameter-space", m_ef_param, "ggn", 10),
    "ef_recomp": (f"etafinder recomputed (budget 0, chunk {CHUNK})", m_ef_recomp, "ggn", 10),
    "ef_tight": ("etafinder tol=1e-5 (auto space)", m_ef_tight, "ggn", 5),
    "ef_notrace": ("etafinder trace=False (diagnostic)", m_ef_notrace, "ggn", 5),
    "ef_recomp_4x": ("etafinder recomputed, 4× samples (memory)", m_ef_recomp, "ggn", 1),
    "curvlinops": ("curvlinops+eigsh (tol=1e-3)", m_curvlinops, "ggn", 5),
    "hessian_eigenthings": (
        "hessian-eigenthings (lanczos, 20 steps)",
        m_hessian_eigenthings,
        "ggn",
        5,
    ),
    "dense_ggn": ("dense reference (float64)", None, "ggn", 1),
    "ef_hessian": ('etafinder curvature="hessian"', m_ef_hessian, "hessian", 10),
    "pyhessian": ("PyHessian eigenvalues() defaults", m_pyhessian, "hessian", 5),
    "dense_hessian": ("dense Hessian top eigenvalue (float64)", None, "hessian", 1),
}
PEER_DIST = {
    "curvlinops": "curvlinops-for-pytorch",
    "hessian_eigenthings": "hessian-eigenthings",
    "pyhessian": "pyhessian",
}


def run_method(
    case: str,
    method: str,
    seeds: list[int],
    quick: bool,
    measure_memory: bool,
    force_eigvalsh: bool = False,
    dense_hessian_max: int = DENSE_HESSIAN_MAX,
) -> dict:
    """Run one method on one case for each seed; returns values, matvecs, times and memory."""
    import torch

    out: dict = {
        "method": method,
        "case": case,
        "threads": torch.get_num_threads(),
        "load_start": C.load(),
    }
    if method in PEER_DIST:
        try:
            out["version"] = md.version(PEER_DIST[method])
        except md.PackageNotFoundError:
            out["version"] = None
    m0 = CASES[case]["m_quick" if quick else "m"]
    ctx = build_case(case, quick, m=4 * m0 if method == "ef_recomp_4x" else None)
    out["samples"] = int(ctx.x.shape[0])
    fn = METHODS[method][1]
    if fn is None:  # float64 references: one run
        gc.collect()
        floor = C.rss_mb()
        reset = measure_memory and C.reset_peak()
        c0 = time.process_time()
        if method == "dense_ggn":
            t, res = C.timed(lambda: dense_ggn(ctx, force_eigvalsh))
        else:
            t, res = C.timed(lambda: dense_hessian(ctx, force_eigvalsh, dense_hessian_max))
        out.update(res)
        out.update(
            values=[res["value"]],
            matvecs=[res["matvecs"]],
            times=[t],
            cpu_times=[time.process_time() - c0],
        )
    else:
        # warm-up on a tiny problem: loads lazily imported code (torch.fx, scipy.sparse...) first
        tw, _ = C.timed(lambda: fn(subset(build_case(case, quick), TINY), 0))
        out["warmup_s"] = tw
        gc.collect()
        floor = C.rss_mb()
        reset = measure_memory and C.reset_peak()
        values, mvs, times, cpus, extra = [], [], [], [], {}
        for s in seeds:
            c0 = time.process_time()
            t, r = C.timed(lambda s=s: fn(ctx, s))
            cpus.append(time.process_time() - c0)
            values.append(r.pop("value"))
            mvs.append(r.pop("matvecs"))
            times.append(t)
            for k, v in r.items():
                extra.setdefault(k, set()).add(v)
            if len(times) == 1 and measure_memory:  # the peak of one estimate
                out["peak_rss_mb"] = C.maxrss_mb()
                out["delta_peak_mb"] = (C.hwm_mb() - floor) if reset else None
            gc.collect()
        out.update(
            values=values,
            matvecs=mvs,
            times=times,
            cpu_times=cpus,
            **{k: sorted(map(str, v)) for k, v in extra.items()},
        )
    out["load_end"] = C.load()
    if measure_memory:
        out.setdefault("peak_rss_mb", C.maxrss_mb())
        out["floor_mb"] = floor
        out.setdefault("delta_peak_mb", (C.hwm_mb() - floor) if reset else None)
        out["delta_peak_all_runs_mb"] = (C.hwm_mb() - floor) if reset else None
    return out


def run_baseline(case: str, quick: bool, samples: int | None) -> dict:
    """A process that only builds the model and runs one forward+backward on ``samples`` samples."""
    import torch

    ctx = build_case(case, quick)
    loss = _loss_fn(ctx)
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    sub = ctx if samples is None else subset(ctx, samples)

    def fwd_bwd(c):
        return torch.autograd.grad(loss(c.model(c.x), c.y), params)

    fwd_bwd(subset(ctx, TINY))
    gc.collect()
    floor = C.rss_mb()
    reset = C.reset_peak()
    fwd_bwd(sub)
    return {
        "method": "baseline",
        "samples": sub.x.shape[0],
        "peak_rss_mb": C.maxrss_mb(),
        "floor_mb": floor,
        "delta_peak_mb": (C.hwm_mb() - floor) if reset else None,
    }


def run_matvec_cost(case: str, quick: bool, reps: int) -> dict:
    """Median time of one operator application, and of one forward+backward of the loss."""
    import torch
    from torch.func import jvp

    ctx = build_case(case, quick)
    loss = _loss_fn(ctx)
    model, x, y = ctx.model, ctx.x, ctx.y
    params = [p for p in model.parameters() if p.requires_grad]
    P = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(P, generator=gen)
    res: dict = {"threads": torch.get_num_threads(), "reps": reps}

    def fwd_bwd():
        return torch.autograd.grad(loss(model(x), y), params)

    res["fwd_bwd"] = C.median_time(fwd_bwd, reps)

    from etafinder.curvature import GGNOperator, HessianOperator
    from etafinder.losses import resolve_loss
    from etafinder.problem import FunctionalModel, Problem

    pr = Problem(model, x, y, resolve_loss(ctx.loss))
    fm = FunctionalModel(pr)
    ts, cs = [], []
    for _ in range(5):
        c0 = time.process_time()
        t, op = C.timed(lambda: GGNOperator(fm, fm.params0, x, y, pr.loss))
        ts.append(t)
        cs.append(time.process_time() - c0)
    res["ef_setup_cached"] = (statistics.median(ts), min(ts), statistics.median(cs))
    res["ef_cached_linearization"] = op.linearization
    res["ef_cached"] = C.median_time(lambda: op.params_matvec(v), reps)
    w = torch.randn(op.dim_outputs, generator=gen)
    res["ef_cached_output"] = C.median_time(lambda: op.outputs_matvec(w), reps)
    res["ef_cached_jvp"] = C.median_time(lambda: [c.jvp(v) for c in op.chunks], reps)
    res["ef_cached_vjp"] = C.median_time(lambda: [c.vjp(c.out) for c in op.chunks], reps)
    res["plain_jvp"] = C.median_time(
        lambda: [jvp(c.f, (c.params,), (v,))[1] for c in op.chunks], reps
    )

    opr = GGNOperator(fm, fm.params0, x, y, pr.loss, chunk_size=CHUNK, memory_budget=0)
    res["ef_recomputed_linearization"] = opr.linearization
    res["ef_recomputed"] = C.median_time(lambda: opr.params_matvec(v), reps)
    res["ef_recomputed_jvp"] = C.median_time(lambda: [c.jvp(v) for c in opr.chunks], reps)
    res["ef_recomputed_vjp"] = C.median_time(lambda: [c.vjp(c.out) for c in opr.chunks], reps)

    hop = HessianOperator(fm, fm.params0, x, y, pr.loss)
    res["ef_hvp"] = C.median_time(lambda: hop.params_matvec(v), reps)
    try:
        from curvlinops import GGNLinearOperator

        cop = GGNLinearOperator(
            model,
            _loss_module(ctx),
            params,
            [(x, y)],
            check_deterministic=False,
            num_data=x.shape[0],
        )
        res["curvlinops"] = C.median_time(lambda: cop @ v, reps)
    except ImportError as e:
        res["curvlinops_error"] = str(e)
    try:
        from hessian_eigenthings import GGNOperator as HEGGN
        from hessian_eigenthings import supervised_forward, supervised_loss_of_output

        hop2 = HEGGN(model, [(x, y)], supervised_forward, supervised_loss_of_output(loss))
        res["hessian_eigenthings"] = C.median_time(lambda: hop2.matvec(v), reps)
    except ImportError as e:
        res["hessian_eigenthings_error"] = str(e)
    try:
        from pyhessian.utils import hessian_vector_product

        model.zero_grad(set_to_none=True)
        loss(model(x), y).backward(create_graph=True)
        grads = [p.grad + 0.0 for p in params]
        vs = list(torch.split(v, [p.numel() for p in params]))
        vs = [t.view_as(p) for t, p in zip(vs, params, strict=True)]
        res["pyhessian_hvp"] = C.median_time(
            lambda: hessian_vector_product(grads, params, vs), reps
        )
        model.zero_grad(set_to_none=True)
    except ImportError as e:
        res["pyhessian_error"] = str(e)
    return res


# --------------------------------------------------------------------------------- reporting ----
def _rel(v, ref):
    return None if v is None or ref is None else abs(v - ref) / abs(ref)


def _mv_range(mvs):
    mvs = [m for m in mvs if m is not None]
    if not mvs:
        return "-"
    lo, hi = min(mvs), max(mvs)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _mb(v):
    return "-" if v is None else f"{v:.0f}"


def report_case(
    case: str,
    results: dict,
    base_chunk: dict | None,
    base_full: dict | None,
    cost: dict | None,
    title: str,
    P: int,
    dim_out: int,
) -> tuple[list[str], dict]:
    """Print one case's tables; return the printed lines and the verdicts."""
    lines = [f"=== {case}: {title}", f"    P = {P:,} parameters, m·k = {dim_out:,} outputs", ""]
    ref_g = results.get("dense_ggn", {}).get("value")
    ref_h = results.get("dense_hessian", {}).get("value")
    verdict: dict = {}
    for kind, ref, anchor in (("ggn", ref_g, "ef_auto"), ("hessian", ref_h, "ef_hessian")):
        t_anchor = None
        if anchor in results and "times" in results[anchor]:
            t_anchor = statistics.median(results[anchor]["times"])
        rows = []
        for key, (label, _, k, _) in METHODS.items():
            if k != kind or key not in results:
                continue
            r = results[key]
            if "error" in r:
                rows.append(
                    [label, "unavailable: " + r["error"][:90], "", "", "", "", "", "", "", ""]
                )
                continue
            other = key == "ef_recomp_4x"  # another problem: no reference
            errs = [None if other else _rel(v, ref) for v in r["values"]]
            t = statistics.median(r["times"])
            is_ref = key.startswith("dense")
            err_s = (
                "(reference)"
                if is_ref
                else f"n/a (m={r.get('samples')})"
                if other
                else C.fmt_err(max(e for e in errs if e is not None) if ref is not None else None)
            )
            seeds = len(r["times"])
            cpu = statistics.median(r["cpu_times"]) if r.get("cpu_times") else None
            rows.append(
                [
                    label,
                    _mv_range(r["matvecs"]),
                    err_s,
                    C.fmt_s(t),
                    C.fmt_s(min(r["times"])),
                    C.fmt_s(cpu),
                    seeds,
                    "-" if t_anchor is None else f"{t / t_anchor:.2f}",
                    _mb(r.get("peak_rss_mb")),
                    _mb(r.get("delta_peak_mb")),
                ]
            )
            r["median_s"], r["min_s"], r["cpu_s"] = t, min(r["times"]), cpu
            r["max_err"] = None if is_ref or other or ref is None else max(errs)
        head = "matvecs" if kind == "ggn" else "HVPs"
        what = "GGN top eigenvalue λ₀" if kind == "ggn" else "Hessian top eigenvalue"
        lines.append(
            what + (f" (float64 reference {ref:.10g})" if ref is not None else " (no reference)")
        )
        lines.append(
            C.table(
                [
                    "method",
                    head,
                    "max rel.err",
                    "median s",
                    "min s",
                    "cpu s",
                    "seeds",
                    f"× {METHODS[anchor][0].split(' (')[0] if kind == 'ggn' else 'ef hessian'}",
                    "peak RSS MB",
                    "Δpeak MB",
                ],
                rows,
            )
        )
        lines.append("")
    # notes on the references
    for key in ("dense_ggn", "dense_hessian"):
        r = results.get(key, {})
        if "form" in r:
            lines.append(
                f"  {METHODS[key][0]}: {r['form']}; {r['how']}"
                + "".join(f"; {n}" for n in r.get("notes", []))
            )
    for key in ("ef_auto", "ef_param", "ef_recomp", "ef_tight", "ef_notrace", "ef_hessian"):
        r = results.get(key, {})
        if "space" in r:
            lines.append(
                f"  {METHODS[key][0]}: space {'/'.join(r['space'])}, linearisation "
                f"{'/'.join(r['linearization'])}, converged {'/'.join(r['converged'])}"
            )
    for key in PEER_DIST:
        r = results.get(key, {})
        if r.get("version"):
            lines.append(f"  {METHODS[key][0]}: version {r['version']}")
    lines.append("")
    # seed study
    ea = results.get("ef_auto", {})
    if "values" in ea and ref_g is not None:
        errs = [_rel(v, ref_g) for v in ea["values"]]
        ok = max(errs) <= 1e-3 and max(ea["matvecs"]) <= 20
        lines.append(
            f"Seed study, etafinder default over {len(errs)} start seeds: matvecs "
            f"{ea['matvecs']}, max {max(ea['matvecs'])}; max rel.err {max(errs):.1e} "
            f"-> target 1e-3 in ≤ 20 matvecs on every seed: {'MET' if ok else 'MISSED'}"
        )
        verdict["accuracy"] = (ok, max(errs), max(ea["matvecs"]))
        for key in ("ef_param", "ef_recomp"):
            r = results.get(key, {})
            if "values" in r:
                e = max(_rel(v, ref_g) for v in r["values"])
                lines.append(
                    f"  {METHODS[key][0]}: max matvecs {max(r['matvecs'])}, max rel.err {e:.1e}"
                )
    # speed ratios
    t_ef = ea.get("median_s")
    e_ef = ea.get("max_err")
    for key, target in (("curvlinops", 2.0), ("hessian_eigenthings", 1.5)):
        r = results.get(key, {})
        if t_ef and "median_s" in r:
            ratio = r["median_s"] / t_ef
            acc = (
                "both within 1e-3"
                if r["max_err"] <= 1e-3 and e_ef <= 1e-3
                else f"{METHODS[key][0].split(' (')[0]} misses 1e-3"
                if r["max_err"] > 1e-3
                else "etafinder misses 1e-3"
            )
            ratio_min = r["min_s"] / ea["min_s"]
            ratio_cpu = r["cpu_s"] / ea["cpu_s"]
            lines.append(
                f"etafinder is {ratio:.2f}× faster than {METHODS[key][0].split(' (')[0]} "
                f"(median {t_ef:.3g} s vs {r['median_s']:.3g} s; min/min {ratio_min:.2f}×; "
                f"CPU {ratio_cpu:.2f}×; max rel.err {e_ef:.1e} vs {r['max_err']:.1e}, {acc}) "
                f"-> target ≥ {target}×: {'MET' if ratio >= target else 'MISSED'} "
                f"(CPU: {'MET' if ratio_cpu >= target else 'MISSED'})"
            )
            verdict[key] = (ratio >= target, ratio, ratio_cpu, e_ef, r["max_err"])
    for variant, what in (("ef_tight", "at tol=1e-5"), ("ef_notrace", "with trace=False")):
        tt = results.get(variant, {})
        if "median_s" not in tt or tt.get("max_err") is None:
            continue
        for key in ("curvlinops", "hessian_eigenthings"):
            r = results.get(key, {})
            if "median_s" in r:
                lines.append(
                    f"  {what} (max rel.err {tt['max_err']:.1e}, {_mv_range(tt['matvecs'])} "
                    f"matvecs) etafinder is {r['median_s'] / tt['median_s']:.2f}× faster than "
                    f"{METHODS[key][0].split(' (')[0]} (CPU {r['cpu_s'] / tt['cpu_s']:.2f}×)"
                )
    eh, ph = results.get("ef_hessian", {}), results.get("pyhessian", {})
    if "median_s" in eh and "median_s" in ph:
        lines.append(
            f"etafinder (hessian) is {ph['median_s'] / eh['median_s']:.2f}× faster than "
            f"PyHessian (CPU {ph['cpu_s'] / eh['cpu_s']:.2f}×; "
            f"{eh['median_s']:.3g} s vs {ph['median_s']:.3g} s; max rel.err "
            f"{eh['max_err']:.1e} vs {ph['max_err']:.1e}) (no target)"
        )
    lines.append("")
    # matvec cost
    if cost:
        fb, fb_min, fb_cpu = cost["fwd_bwd"]
        lines.append(
            f"Cost of one operator application as a multiple of one forward+backward of the "
            f"loss on all {dim_out // 10:,} samples (fwd+bwd: median {fb * 1e3:.2f} ms wall, "
            f"{fb_cpu * 1e3:.2f} ms CPU; {cost['reps']} repeats; 'min' columns: min over min):"
        )
        rows = []
        for key, label in (
            ("ef_cached", "etafinder GGN·v, cached (parameter space)"),
            ("ef_cached_output", "etafinder NTK·w, cached (output space)"),
            ("ef_cached_jvp", "  of which J·v (linearize)"),
            ("ef_cached_vjp", "  of which Jᵀ·u (cached vjp)"),
            ("plain_jvp", "  (J·v by plain torch.func.jvp, for comparison)"),
            ("ef_recomputed", f"etafinder GGN·v, recomputed (chunk {CHUNK})"),
            ("ef_recomputed_jvp", "  of which J·v (jvp)"),
            ("ef_recomputed_vjp", "  of which Jᵀ·u (vjp)"),
            ("curvlinops", "curvlinops GGN·v"),
            ("hessian_eigenthings", "hessian-eigenthings GGN·v"),
            ("ef_hvp", "etafinder HVP"),
            ("pyhessian_hvp", "PyHessian HVP (graph kept)"),
            ("ef_setup_cached", "etafinder cached operator setup (linearize + vjp)"),
        ):
            if key in cost:
                med, mn, cpu = cost[key]
                rows.append(
                    [
                        label,
                        f"{med * 1e3:.2f}",
                        f"{med / fb:.2f}",
                        f"{mn / fb_min:.2f}",
                        f"{cpu * 1e3:.2f}",
                        f"{cpu / fb_cpu:.2f}",
                    ]
                )
        lines.append(
            C.table(["operation", "wall ms", "× fwd+bwd", "× (min)", "CPU ms", "× (CPU)"], rows)
        )
        rc, rr_ = cost["ef_cached"][0] / fb, cost["ef_recomputed"][0] / fb
        rc_cpu = cost["ef_cached"][2] / fb_cpu
        rr_cpu = cost["ef_recomputed"][2] / fb_cpu
        c_ok, r_ok = rc <= 2.0, rr_ <= 3.0
        lines.append(
            f"GGN product, cached: {rc:.2f}× fwd+bwd (CPU time {rc_cpu:.2f}×) -> target ≤ 2.0×: "
            f"{'MET' if c_ok else 'MISSED'} (CPU: {'MET' if rc_cpu <= 2 else 'MISSED'}); "
            f"recomputed: {rr_:.2f}× (CPU {rr_cpu:.2f}×) -> target ≤ 3×: "
            f"{'MET' if r_ok else 'MISSED'} (CPU: {'MET' if rr_cpu <= 3 else 'MISSED'})"
        )
        if "curvlinops" in cost:
            lines.append(
                f"  curvlinops' product costs {cost['curvlinops'][0] / fb:.2f}× fwd+bwd "
                f"({cost['curvlinops'][0] / cost['ef_cached'][0]:.2f}× etafinder's cached one)"
            )
        sc = cost["ef_setup_cached"][2]
        saved = cost["plain_jvp"][2] - cost["ef_cached_jvp"][2]
        if saved > 0:
            lines.append(
                f"  the linearize trace saves {saved * 1e3:.2f} ms CPU per J·v and its setup costs "
                f"{sc * 1e3:.0f} ms CPU (with the vjp): it pays off after ~{sc / saved:.0f} "
                f"products"
            )
        verdict["matvec_cached"] = (c_ok, rc, rc_cpu)
        verdict["matvec_recomputed"] = (r_ok, rr_, rr_cpu)
        lines.append("")
    # memory
    if base_chunk and "peak_rss_mb" in base_chunk:
        rr = results.get("ef_recomp", {})
        bc = base_chunk
        lines.append(
            f"Memory baseline: a process that builds the model and runs one forward+backward "
            f"on one {bc['samples']}-sample chunk peaks at {bc['peak_rss_mb']:.0f} MB RSS "
            f"(+{bc['delta_peak_mb']:.1f} MB above its floor of {bc['floor_mb']:.0f} MB)"
        )
        if base_full and "peak_rss_mb" in base_full:
            lines.append(
                f"  (on all {base_full['samples']} samples: {base_full['peak_rss_mb']:.0f} MB, "
                f"+{base_full['delta_peak_mb']:.1f} MB)"
            )
        if "peak_rss_mb" in rr:
            ratio_abs = rr["peak_rss_mb"] / bc["peak_rss_mb"]
            d = rr.get("delta_peak_mb")
            ratio_d = d / bc["delta_peak_mb"] if d is not None and bc["delta_peak_mb"] else None
            lines.append(
                f"etafinder recomputed (chunk {CHUNK}) peak / baseline: {ratio_abs:.2f}× "
                f"in RSS ({rr['peak_rss_mb']:.0f} vs {bc['peak_rss_mb']:.0f} MB); "
                f"above-floor: {d:.1f} vs {bc['delta_peak_mb']:.1f} MB = "
                f"{ratio_d:.1f}× -> target within 2×: RSS "
                f"{'MET' if ratio_abs <= 2 else 'MISSED'}, above-floor "
                f"{'MET' if ratio_d is not None and ratio_d <= 2 else 'MISSED'}"
            )
            verdict["memory"] = (ratio_abs <= 2, ratio_abs, ratio_d)
            r4 = results.get("ef_recomp_4x", {})
            if r4.get("delta_peak_mb") is not None and d is not None:
                lines.append(
                    f"  scaling: the recomputed estimate on m={r4['samples']} (vs {rr['samples']}) "
                    f"rises {r4['delta_peak_mb']:.1f} MB above its floor (vs {d:.1f} MB): "
                    f"memory that grows with m, not with the chunk, is "
                    f"{r4['delta_peak_mb'] - d:+.1f} MB for {r4['samples'] - rr['samples']} more "
                    f"samples"
                )
        lines.append("")
    return lines, verdict


def _git_state() -> str:
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(C.ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(C.ROOT), "status", "--porcelain", "--", "src/etafinder"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return f"commit {head[:70]}" + (" (+ uncommitted changes in src/etafinder)" if dirty else "")


# -------------------------------------------------------------------------------------- main ----
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: small data, in-process, < 1 min"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every process (1)")
    ap.add_argument("--cases", default="mlp,cnn", help="comma-separated: mlp, cnn")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    ap.add_argument(
        "--eigvalsh",
        action="store_true",
        help="always use full eigvalsh for the dense references (+~4 min for the MLP)",
    )
    ap.add_argument(
        "--dense-hessian",
        action="store_true",
        help="build the dense float64 Hessian when P ≤ 5,000 (the CNN: +1–2 min)",
    )
    ap.add_argument("--json", default=None, help="also write every raw number to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seeds", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    threads = args.threads
    C.set_threads(threads)
    import torch

    if args.child:
        if args.child == "baseline":
            res = run_baseline(args.case, args.quick, args.samples)
        elif args.child == "matvec_cost":
            res = run_matvec_cost(args.case, args.quick, 20)
        else:
            seeds = [int(s) for s in args.seeds.split(",")]
            res = run_method(
                args.case,
                args.child,
                seeds,
                args.quick,
                True,
                args.eigvalsh,
                5000 if args.dense_hessian else DENSE_HESSIAN_MAX,
            )
        print(json.dumps(res))
        return 0

    import warnings

    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    print(__doc__.split("\n\n")[0])
    print(
        f"torch {torch.__version__}, torch.set_num_threads({threads}) in every method's process "
        f"(and OMP/MKL/OPENBLAS_NUM_THREADS={threads}); python {sys.version.split()[0]}; "
        + (
            "--quick: smaller data, methods in-process, no memory columns"
            if args.quick
            else "each method in a fresh subprocess"
        )
    )
    peers = []
    for dist in ("curvlinops-for-pytorch", "hessian-eigenthings", "pyhessian", "scipy"):
        try:
            peers.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            peers.append(f"{dist} (not installed)")
    print("peers: " + ", ".join(peers))
    print(
        f"load average at start (1/5/15 min): {C.load()} on {os.cpu_count()} CPUs "
        "(wall times are only meaningful on an otherwise idle machine; 'cpu s' is the process's "
        "CPU time, all threads)"
    )
    print(f"etafinder source: {_git_state()}")
    print()
    methods = [m for m in args.methods.split(",") if m in METHODS]
    order = ["dense_ggn", "dense_hessian"] + [m for m in methods if not m.startswith("dense")]
    order = [m for m in order if m in methods]
    all_out: dict = {"threads": threads, "quick": args.quick, "cases": {}}
    verdicts = {}
    for case in args.cases.split(","):
        ctx = build_case(case, args.quick)
        P, dim_out = n_params(ctx), ctx.x.shape[0] * 10
        results: dict = {}
        for key in order:
            nseeds = METHODS[key][3] if not args.quick else min(METHODS[key][3], 2)
            seeds = list(range(nseeds))
            print(
                f"  [{time.perf_counter() - t_start:6.1f} s] {case}: {key} ({nseeds} seeds)",
                file=sys.stderr,
                flush=True,
            )
            if args.quick:
                try:
                    results[key] = run_method(
                        case,
                        key,
                        seeds,
                        True,
                        False,
                        args.eigvalsh,
                        5000 if args.dense_hessian else DENSE_HESSIAN_MAX,
                    )
                except Exception as e:  # a peer that fails is reported, not fatal
                    results[key] = {"error": f"{type(e).__name__}: {e}"}
            else:
                argv = [
                    SCRIPT,
                    "--child",
                    key,
                    "--case",
                    case,
                    "--seeds",
                    ",".join(map(str, seeds)),
                    "--threads",
                    str(threads),
                ]
                argv += ["--eigvalsh"] * args.eigvalsh + ["--dense-hessian"] * args.dense_hessian
                results[key] = C.run_child(argv, threads)
        base_chunk = base_full = None
        if not args.quick:
            print(
                f"  [{time.perf_counter() - t_start:6.1f} s] {case}: memory baselines",
                file=sys.stderr,
                flush=True,
            )
            base_chunk = C.run_child(
                [
                    SCRIPT,
                    "--child",
                    "baseline",
                    "--case",
                    case,
                    "--samples",
                    str(CHUNK),
                    "--threads",
                    str(threads),
                ],
                threads,
            )
            base_full = C.run_child(
                [SCRIPT, "--child", "baseline", "--case", case, "--threads", str(threads)], threads
            )
        print(
            f"  [{time.perf_counter() - t_start:6.1f} s] {case}: matvec cost",
            file=sys.stderr,
            flush=True,
        )
        if args.quick:
            cost = run_matvec_cost(case, True, 5)
        else:
            cost = C.run_child(
                [SCRIPT, "--child", "matvec_cost", "--case", case, "--threads", str(threads)],
                threads,
            )
            if "error" in cost:
                print(f"matvec cost failed: {cost['error']}")
                cost = None
        lines, verdict = report_case(
            case, results, base_chunk, base_full, cost, ctx.title, P, dim_out
        )
        print("\n".join(lines), flush=True)
        verdicts[case] = verdict
        all_out["cases"][case] = {
            "results": results,
            "baseline_chunk": base_chunk,
            "baseline_full": base_full,
            "matvec_cost": cost,
        }
    print("=== targets")
    for case, v in verdicts.items():
        for name, val in v.items():
            print(
                f"  {case:4s} {name:20s} {'MET   ' if val[0] else 'MISSED'} "
                + ", ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in val[1:])
            )
    print(f"total {time.perf_counter() - t_start:.0f} s; load average at end: {C.load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(all_out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
