"""The problem and its evaluation policy: chunk weights, the private functional copy, forward hooks.

BatchNorm statistics are checked against :func:`reference.with_batch_stats`, which rebuilds the
policy by hand (layer by layer, biased batch variance of the whole set), not through etafinder.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from etafinder.losses import resolve_loss
from etafinder.problem import FunctionalModel, Problem, chunks
from reference import trainable_params, with_batch_stats

pytestmark = pytest.mark.usefixtures("single_thread")

DT = torch.float64
M = 20


def _data(seed: int = 0, shape: tuple[int, ...] = (M, 5)) -> tuple[Tensor, Tensor]:
    """Seeded float64 inputs and 3-output regression targets.

    Args:
        seed: the seed.
        shape: the inputs' shape.

    Returns:
        ``(x, y)``.
    """
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=DT),
            torch.randn(shape[0], 3, generator=gen, dtype=DT))


# ------------------------------------------------------------------------------------ chunks ----
@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 60), size=st.none() | st.integers(1, 80))
def test_chunks_cover_the_set_with_weights_summing_to_one(m: int, size: int | None) -> None:
    """Chunks partition the set in order, each weighted by its share ``c/m``; the weights sum to 1.

    Args:
        m: samples.
        size: chunk size (``None``: one chunk).
    """
    x = torch.arange(m * 2, dtype=DT).reshape(m, 2)
    y = torch.arange(m)
    parts = list(chunks(x, y, size))
    assert len(parts) == (1 if size is None else math.ceil(m / size))
    assert math.isclose(sum(w for _, _, w in parts), 1.0, rel_tol=0, abs_tol=1e-12)
    for xc, yc, w in parts:
        assert xc.shape[0] == yc.shape[0] <= (m if size is None else size)
        assert w == xc.shape[0] / m
    assert torch.equal(torch.cat([xc for xc, _, _ in parts]), x)
    assert torch.equal(torch.cat([yc for _, yc, _ in parts]), y)


def test_problem_samples() -> None:
    """``Problem.samples`` is the number of probe-set samples."""
    x, y = _data()
    assert Problem(nn.Linear(5, 3), x, y, resolve_loss("mse")).samples == M


# ----------------------------------------------------------------------- the functional copy ----
def test_dropout_is_off_and_deterministic() -> None:
    """A model with dropout, handed over in train mode, runs with dropout off: deterministic."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 3)).to(DT)
    model.train()
    x, y = _data()
    fm = FunctionalModel(Problem(model, x, y, resolve_loss("mse")))
    rng = torch.get_rng_state()
    first, second = fm(fm.params0, x), fm(fm.params0, x)
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), rng), "no dropout mask was drawn"
    assert model.training and model[1].training, "the user's model keeps its mode"
    expected = copy.deepcopy(model).eval()(x)
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-14)


def test_frozen_parameters_are_constants() -> None:
    """Only trainable parameters are in ``params0``; ``unflatten`` gives them back by name."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DT)
    model[0].weight.requires_grad_(False)
    x, y = _data()
    fm = FunctionalModel(Problem(model, x, y, resolve_loss("mse")))
    assert fm.names == ("0.bias", "2.weight", "2.bias")
    assert fm.num_params == 8 + 8 * 3 + 3
    assert torch.equal(fm.params0, trainable_params(model))
    named = fm.unflatten(fm.params0)
    for name, tensor in model.named_parameters():
        if tensor.requires_grad:
            assert torch.equal(named[name], tensor.detach())
    moved = fm.params0 + 1.0
    changed = copy.deepcopy(model)
    nn.utils.vector_to_parameters(moved, [t for t in changed.parameters() if t.requires_grad])
    torch.testing.assert_close(fm(moved, x), changed(x), rtol=0, atol=1e-13)


class _DictOut(nn.Module):
    """A model whose forward returns a dict (like a Hugging Face output)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DT)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits and an extra entry.

        Args:
            x: inputs.

        Returns:
            ``{"logits": ..., "hidden": ...}``.
        """
        return {"logits": self.body(x), "hidden": torch.tanh(x)}


def test_forward_hook_for_a_dict_output() -> None:
    """``forward(model, x)`` picks the loss's output from a dict; λ₀ then runs on it."""
    torch.manual_seed(2)
    model = _DictOut()
    x, y = _data()
    loss = resolve_loss("mse")
    problem = Problem(model, x, y, loss, forward=lambda mod, inp: mod(inp)["logits"])
    fm = FunctionalModel(problem)
    assert fm.num_params == sum(t.numel() for t in model.parameters())
    torch.testing.assert_close(fm(fm.params0, x), model(x)["logits"], rtol=0, atol=0)
    assert torch.equal(fm.loss(fm.params0, x, y, loss, None), F.mse_loss(model(x)["logits"], y))


def test_forward_hook_for_a_tuple_output() -> None:
    """The hook works the same for a model returning a tuple (``outputs[0]``)."""
    torch.manual_seed(3)

    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 3).to(DT)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return self.lin(x), x

    model = TupleOut()
    x, y = _data()
    fm = FunctionalModel(Problem(model, x, y, resolve_loss("mse"), forward=lambda m, i: m(i)[0]))
    torch.testing.assert_close(fm(fm.params0, x), model(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7, M], ids=lambda c: f"chunk_size={c}")
def test_chunked_loss_is_the_whole_sets_mean(loss_name: str, chunk_size: int | None) -> None:
    """``FunctionalModel.loss``, summed over chunks with weights ``c/m``, is the whole set's mean.

    Args:
        loss_name: the built-in loss.
        chunk_size: samples per chunk.
    """
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DT)
    x, y = _data()
    if loss_name == "cross_entropy":
        y = torch.randint(0, 3, (M,))
    loss = resolve_loss(loss_name)
    fm = FunctionalModel(Problem(model, x, y, loss))
    whole = loss(model(x), y)
    torch.testing.assert_close(fm.loss(fm.params0, x, y, loss, chunk_size), whole,
                               rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------- BatchNorm ----
def _batchnorm_model(kind: str) -> tuple[nn.Sequential, Tensor]:
    """A small model with BatchNorm, its running statistics trained away from the probe set's.

    Args:
        kind: ``"bn1d"``, ``"bn1d-untracked"`` or ``"bn2d"``.

    Returns:
        ``(model, inputs)``.
    """
    torch.manual_seed(5)
    if kind == "bn2d":
        model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(3 * 4 * 4, 3)).to(DT)
        x = torch.randn(M, 1, 6, 6, dtype=DT)
    else:
        bn = nn.BatchNorm1d(8, track_running_stats=kind == "bn1d")
        model = nn.Sequential(nn.Linear(5, 8), bn, nn.Tanh(), nn.Linear(8, 3)).to(DT)
        x = torch.randn(M, 5, dtype=DT)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(2.0 * torch.randn_like(x) + 1.0)
    return model, x


@pytest.mark.parametrize("kind", ["bn1d", "bn1d-untracked", "bn2d"])
def test_batchnorm_uses_the_whole_sets_batch_statistics(kind: str) -> None:
    """BatchNorm normalises with the whole probe set's (biased) batch statistics, held fixed.

    So the output equals the hand-built reference, is not the running-statistics output, and is a
    per-sample function: a chunk's output is the chunk of the whole set's output.

    Args:
        kind: the BatchNorm flavour.
    """
    model, x = _batchnorm_model(kind)
    y = torch.zeros(M, 3, dtype=DT)
    fm = FunctionalModel(Problem(model, x, y, resolve_loss("mse")))
    out = fm(fm.params0, x)
    expected = with_batch_stats(model, x)(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        train_mode = copy.deepcopy(model).train()(x)  # batch statistics of this very batch
    torch.testing.assert_close(out, train_mode, rtol=1e-12, atol=1e-12)
    if kind != "bn1d-untracked":
        running = copy.deepcopy(model).eval()(x)
        assert not torch.allclose(out, running, atol=1e-3), "the running statistics were used"
    torch.testing.assert_close(fm(fm.params0, x[:3]), out[:3], rtol=1e-12, atol=1e-12)
    moved = fm.params0 + 0.1
    torch.testing.assert_close(fm(moved, x[:3]), fm(moved, x)[:3], rtol=1e-12, atol=1e-12,
                               msg="the statistics stay fixed as θ moves")

