"""Loss specifications and their output-space curvature, against autograd Hessians on the outputs.

The output Hessian ``H_out`` sets the normalisation of λ₀, so each closed form (mse ``2/(m·k)·I``,
cross-entropy ``(diag p − p pᵀ)/m`` per sample and position) and the autograd path of a custom loss
are checked entry by entry against ``torch.autograd.functional.hessian`` of the loss itself
(:func:`reference.output_hessian`), in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from etafinder.errors import InputError
from etafinder.losses import Loss, output_hvp, resolve_loss, sqrt_factor
from reference import output_hessian

pytestmark = pytest.mark.usefixtures("single_thread")

DT = torch.float64
WEIGHT = 0.3  # a chunk's share c/m; any value in (0, 1] must scale H_out linearly


def _log_cosh(output: Tensor, target: Tensor) -> Tensor:
    """A smooth custom regression loss (mean over samples) whose output Hessian is not constant.

    Args:
        output: model outputs.
        target: targets.

    Returns:
        The mean loss.
    """
    return torch.log(torch.cosh(output - target)).mean()


def _linear(output: Tensor, target: Tensor) -> Tensor:
    """A custom loss that is linear in the output (its output Hessian is exactly zero).

    Args:
        output: model outputs.
        target: targets.

    Returns:
        The mean loss.
    """
    return -(output * target).mean()


@dataclass(frozen=True)
class LossCase:
    """One loss on one output shape.

    Attributes:
        id: the parametrize id.
        spec: what the user writes (``"mse"``, ``"cross_entropy"`` or a callable).
        shape: the output shape.
        target: makes the targets from a generator and the outputs.
        fn: the loss as torch computes it, for the autograd reference.
    """

    id: str
    spec: str | Callable[[Tensor, Tensor], Tensor]
    shape: tuple[int, ...]
    target: Callable[[torch.Generator, Tensor], Tensor]
    fn: Callable[[Tensor, Tensor], Tensor]


def _regression(gen: torch.Generator, out: Tensor) -> Tensor:
    """Real targets shaped like the outputs.

    Args:
        gen: the generator.
        out: the outputs.

    Returns:
        The targets.
    """
    return torch.randn(out.shape, generator=gen, dtype=DT)


def _indices(gen: torch.Generator, out: Tensor) -> Tensor:
    """Class-index targets for logits with the class dimension 1 (or 0 when unbatched).

    Args:
        gen: the generator.
        out: the logits.

    Returns:
        The class indices.
    """
    if out.ndim == 1:
        return torch.randint(0, out.shape[0], (), generator=gen)
    shape = (out.shape[0], *out.shape[2:])
    return torch.randint(0, out.shape[1], shape, generator=gen)


def _probabilities(gen: torch.Generator, out: Tensor) -> Tensor:
    """Class-probability targets shaped like the logits.

    Args:
        gen: the generator.
        out: the logits.

    Returns:
        Probabilities summing to one along the class dimension.
    """
    dim = 0 if out.ndim == 1 else 1
    return torch.softmax(torch.randn(out.shape, generator=gen, dtype=DT), dim=dim)


CASES = [
    LossCase("mse-(6,3)", "mse", (6, 3), _regression, F.mse_loss),
    LossCase("mse-(4,2,3)", "mse", (4, 2, 3), _regression, F.mse_loss),
    LossCase("cross_entropy-indices-(6,4)", "cross_entropy", (6, 4), _indices, F.cross_entropy),
    LossCase("cross_entropy-probs-(6,4)", "cross_entropy", (6, 4), _probabilities, F.cross_entropy),
    LossCase("cross_entropy-indices-(3,4,5)", "cross_entropy", (3, 4, 5), _indices,
             F.cross_entropy),
    LossCase("cross_entropy-probs-(3,4,5)", "cross_entropy", (3, 4, 5), _probabilities,
             F.cross_entropy),
    LossCase("cross_entropy-indices-(2,3,2,2)", "cross_entropy", (2, 3, 2, 2), _indices,
             F.cross_entropy),
    LossCase("cross_entropy-unbatched-(4,)", "cross_entropy", (4,), _indices, F.cross_entropy),
    LossCase("custom-logcosh-(6,3)", _log_cosh, (6, 3), _regression, _log_cosh),
    LossCase("custom-linear-(6,3)", _linear, (6, 3), _regression, _linear),
]
BUILTIN = [c for c in CASES if isinstance(c.spec, str)]


def _draw(case: LossCase, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Seeded outputs (logits of a moderate scale) and targets for a case.

    Args:
        case: the case.
        seed: the seed.

    Returns:
        ``(outputs, targets)``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = 2.0 * torch.randn(case.shape, generator=gen, dtype=DT)
    return out, case.target(gen, out)


def _dense(apply: Callable[[Tensor], Tensor], like: Tensor) -> Tensor:
    """The matrix of a linear map on tensors shaped like ``like``, column by column.

    Args:
        apply: the linear map.
        like: a tensor of the map's input (and output) shape.

    Returns:
        The ``(numel, numel)`` matrix.
    """
    basis = torch.eye(like.numel(), dtype=like.dtype)
    return torch.stack([apply(e.view(like.shape)).reshape(-1) for e in basis], dim=1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_output_hvp_matches_autograd_hessian(case: LossCase) -> None:
    """``output_hvp`` is ``weight`` times the autograd Hessian of the loss on the outputs.

    Args:
        case: the loss and output shape.
    """
    out, target = _draw(case)
    loss = resolve_loss(case.spec)
    expected = WEIGHT * output_hessian(case.fn, out, target)
    got = _dense(lambda u: output_hvp(loss, out, target, u, WEIGHT), out)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", BUILTIN, ids=lambda c: c.id)
def test_sqrt_factor_squares_to_output_hessian(case: LossCase) -> None:
    """``B`` from ``sqrt_factor`` satisfies ``BᵀB = weight · H_out``, and ``apply_Bt`` is ``Bᵀ``.

    Args:
        case: a built-in loss and output shape.
    """
    out, target = _draw(case)
    apply_b, apply_bt = sqrt_factor(resolve_loss(case.spec), out, WEIGHT)
    b = _dense(apply_b, out)
    bt = _dense(apply_bt, out)
    torch.testing.assert_close(bt, b.T, rtol=0, atol=1e-14)
    expected = WEIGHT * output_hessian(case.fn, out, target)
    torch.testing.assert_close(b.T @ b, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("weight", [1.0, 0.25], ids=lambda w: f"weight={w}")
def test_mse_output_hessian_is_2_over_mk(weight: float) -> None:
    """mse (``F.mse_loss``, mean, no ½): ``H_out = 2·weight/(m·k) · I`` (contract §2).

    Args:
        weight: the chunk's share of the probe set.
    """
    out, target = _draw(CASES[0])
    m, k = out.shape
    got = _dense(lambda u: output_hvp(resolve_loss("mse"), out, target, u, weight), out)
    torch.testing.assert_close(got, 2 * weight / (m * k) * torch.eye(m * k, dtype=DT))


def test_sqrt_factor_refuses_custom_losses() -> None:
    """A callable's ``H_out`` has no known square root (it need not be PSD): ``ValueError``."""
    out, _ = _draw(CASES[0])
    with pytest.raises(ValueError, match="square-root factor"):
        sqrt_factor(resolve_loss(_log_cosh), out, 1.0)


@pytest.mark.parametrize(
    ("spec", "name", "case", "torch_fn"),
    [
        (None, "mse", CASES[0], F.mse_loss),
        ("mse", "mse", CASES[0], F.mse_loss),
        ("cross_entropy", "cross_entropy", CASES[2], F.cross_entropy),
        ("cross_entropy", "cross_entropy", CASES[3], F.cross_entropy),
        (_log_cosh, "custom", CASES[0], _log_cosh),
    ],
    ids=["None", "mse", "cross_entropy-indices", "cross_entropy-probs", "callable"],
)
def test_resolve_loss_known(spec: object, name: str, case: LossCase,
                            torch_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Known specifications resolve to the matching :class:`Loss`, which computes the torch loss.

    Args:
        spec: what the user wrote.
        name: the expected resolved name.
        case: outputs and targets to evaluate it on.
        torch_fn: the loss as torch computes it (mean reduction).
    """
    loss = resolve_loss(spec)
    assert isinstance(loss, Loss)
    assert loss.name == name
    assert loss.builtin == (name != "custom")
    out, target = _draw(case)
    assert torch.equal(loss(out, target), torch_fn(out, target))


@pytest.mark.parametrize("spec", ["MSE", "l1", "crossentropy", ""], ids=repr)
def test_resolve_loss_unknown_name(spec: str) -> None:
    """An unknown name is an :class:`InputError` that names it and hints at the alternatives.

    Args:
        spec: the unknown name.
    """
    with pytest.raises(InputError, match="unknown loss") as info:
        resolve_loss(spec)
    assert repr(spec) in info.value.message
    assert "'mse'" in info.value.message and "'cross_entropy'" in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("spec", [3, 2.5, ["mse"]], ids=lambda s: type(s).__name__)
def test_resolve_loss_not_callable(spec: object) -> None:
    """A non-callable, non-string loss is an :class:`InputError` naming its type.

    Args:
        spec: the bad specification.
    """
    with pytest.raises(InputError, match=type(spec).__name__) as info:
        resolve_loss(spec)
    assert info.value.hint
