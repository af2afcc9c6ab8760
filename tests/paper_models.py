"""The paper's solvable models (Lewkowycz et al. 2020, §2), shared by the probe-engine tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class UV(nn.Module):
    """The warm-up model ``f(x) = n^(-1/2) vᵀu · x`` with ``u, v ∈ Rⁿ`` drawn from N(0, 1).

    Args:
        n: the width.
        generator: the random generator for ``u`` and ``v``.
    """

    def __init__(self, n: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n = n
        self.u = nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64))
        self.v = nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        """``n^(-1/2) vᵀu · x`` for ``x`` shaped (m, 1)."""
        return (self.v @ self.u / math.sqrt(self.n)) * x

    def lambda0_mse(self) -> float:
        """λ₀ for ``F.mse_loss`` at x = 1: ``2(|u|² + |v|²)/n`` (the ½f² value, doubled)."""
        with torch.no_grad():
            return float(2.0 * (self.u.pow(2).sum() + self.v.pow(2).sum()) / self.n)


class TwoLayerLinear(nn.Module):
    """``f(x) = (n·d)^(-1/2) V U x``, NTK parametrisation, ``U ∈ R^{n×d}``, ``V ∈ R^{k×n}``.

    Args:
        d: input dimension.
        n: width.
        k: outputs.
        generator: the random generator.
    """

    def __init__(self, d: int, n: int, k: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(n * d)
        self.U = nn.Parameter(torch.randn(n, d, generator=generator, dtype=torch.float64))
        self.V = nn.Parameter(torch.randn(k, n, generator=generator, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        """``(n·d)^(-1/2) V U x`` for ``x`` shaped (m, d)."""
        return self.scale * (x @ self.U.T @ self.V.T)


def uv_problem(n: int, seed: int):
    """The uv model at x = 1, y = 0 with mse, as an etafinder Problem.

    Args:
        n: width.
        seed: seeds u and v.

    Returns:
        ``(problem, model)``.
    """
    from etafinder.losses import resolve_loss
    from etafinder.problem import Problem

    model = UV(n, torch.Generator().manual_seed(seed))
    x = torch.ones(1, 1, dtype=torch.float64)
    y = torch.zeros(1, 1, dtype=torch.float64)
    return Problem(model, x, y, resolve_loss("mse")), model
