"""The one home of etafinder's defaults: every knob of a diagnosis, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .curvature import DEFAULT_MAX_ITER, DEFAULT_MEMORY_BUDGET, DEFAULT_TOL

#: Default candidate rates, as multiples of η_crit = 2(1+β)/λ₀. They reach 8·η_crit = 16(1+β)/λ₀, well past
#: the solvable model's η_max = 4/λ₀ and the ≈ 12/λ₀ the paper measures for ReLU nets.
DEFAULT_GRID = (0.5, 1.3, 2.0, 3.0, 4.5, 8.0)


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that decides a diagnosis besides the problem itself.

    Attributes:
        seed: seeds the probe subset, the Lanczos start vectors and nothing else.
        momentum: heavy-ball β (``torch.optim.SGD(momentum=β, dampening=0, nesterov=False)``).
        curvature: ``"ggn"`` (the paper's NTK quantity, default) or ``"hessian"``.
        grid: candidate rates as multiples of η_crit (ignored when ``lrs`` is given).
        lrs: explicit candidate rates (absolute), or ``None`` for the grid.
        max_steps: cap on the steps of one probe.
        min_steps: steps every probe runs before a lazy run may be called settled.
        bisect_tol: relative width to which η_max (and the lazy/catapult edge) is bisected.
        bisect_points: probes per bisection round (batched together); ``None``: 1 on a CPU, where a
            batch of k costs k probes' compute and plain bisection needs the fewest probes, and 3 on an
            accelerator, where a batch costs about one probe's time and rounds are what count.
        tol: relative tolerance of the λ₀ solve.
        end_tol: relative tolerance of each probe's end-curvature solve (warm-started).
        max_iter: iteration cap of every eigen-solve.
        chunk_size: samples per chunk (``None``: the whole probe set at once).
        memory_budget: bytes the cached linearisation may hold before recomputing per chunk.
        vmap: batch probes over stacked parameter copies with ``torch.func.vmap`` where possible.
        spread_subsets: disjoint subsets used for λ₀'s sampling-uncertainty figure.
    """

    seed: int = 0
    momentum: float = 0.0
    curvature: str = "ggn"
    grid: tuple[float, ...] = DEFAULT_GRID
    lrs: tuple[float, ...] | None = None
    max_steps: int = 100
    min_steps: int = 20
    bisect_tol: float = 0.05
    bisect_points: int | None = None
    tol: float = DEFAULT_TOL
    end_tol: float = 1e-2
    max_iter: int = DEFAULT_MAX_ITER
    chunk_size: int | None = None
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    vmap: bool = True
    spread_subsets: int = 3

    def to_dict(self) -> dict:
        """A plain dict for the report."""
        d = asdict(self)
        d["grid"] = list(self.grid)
        d["lrs"] = None if self.lrs is None else list(self.lrs)
        return d


#: Optimizers whose stability thresholds v1 can answer for (contract §2).
SUPPORTED_OPTIMIZERS = ("sgd", "gd")


def check_optimizer(name: str = "sgd", momentum: float = 0.0, dampening: float = 0.0,
                    nesterov: bool = False) -> None:
    """Refuse optimizer settings whose thresholds v1 cannot answer for (contract §2).

    Args:
        name: optimizer name (``"sgd"`` or ``"gd"``).
        momentum: heavy-ball β, in ``[0, 1)``.
        dampening: must be 0.
        nesterov: must be False.

    Raises:
        InputError: naming the option, with a hint.
    """
    import math

    from .errors import InputError

    hint = ("etafinder v1 answers for full-batch gradient descent and heavy-ball momentum "
            "(torch.optim.SGD(momentum=β, dampening=0, nesterov=False)) only.")
    if name.lower() not in SUPPORTED_OPTIMIZERS:
        raise InputError(f"--optimizer {name}: not supported in v1; expected one of "
                         f"{', '.join(SUPPORTED_OPTIMIZERS)}", hint)
    if not (math.isfinite(momentum) and 0.0 <= momentum < 1.0):
        raise InputError(f"--momentum {momentum}: expected a number in [0, 1)", hint)
    if dampening != 0.0:
        raise InputError(f"--dampening {dampening}: v1 supports dampening=0 only", hint)
    if nesterov:
        raise InputError("--nesterov: Nesterov momentum is not supported in v1", hint)
