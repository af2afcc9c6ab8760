"""Probe runs: the update rule against torch.optim.SGD, vmap vs one at a time, no mutation, determinism."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from etafinder.config import ProbeConfig
from etafinder.curvature import estimate_lambda0
from etafinder.diagnose import _context, diagnose
from etafinder.losses import resolve_loss
from etafinder.probe import dead_fraction, run_probes
from etafinder.problem import FunctionalModel, Problem


def mlp_problem(seed: int = 0, loss: str = "mse", m: int = 32) -> Problem:
    """A small float64 MLP problem.

    Args:
        seed: seeds the weights and data.
        loss: ``"mse"`` or ``"cross_entropy"``.
        m: samples.

    Returns:
        The problem.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    x = torch.randn(m, 5, generator=g, dtype=torch.float64)
    if loss == "mse":
        y = torch.randn(m, 3, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, 3, (m,), generator=g)
    return Problem(model, x, y, resolve_loss(loss))


def context(problem: Problem, config: ProbeConfig):
    """The probe context of a problem (λ₀ solved at the default tolerance)."""
    fm = FunctionalModel(problem)
    est = estimate_lambda0(fm, problem.inputs, problem.targets, problem.loss)
    return _context(problem, fm, est, config), est


@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=lambda b: f"beta={b}")
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_losses_match_torch_optim_sgd(momentum, loss):
    """Every recorded loss equals full-batch torch.optim.SGD(momentum=β) on a copy of the model."""
    problem = mlp_problem(loss=loss)
    steps = 12
    config = ProbeConfig(momentum=momentum, max_steps=steps, min_steps=steps)
    ctx, est = context(problem, config)
    lr = 0.7 * 2 * (1 + momentum) / est.value
    (tr,) = run_probes(ctx, [lr], config)
    ref = copy.deepcopy(problem.model)
    opt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=momentum, dampening=0, nesterov=False)
    lossfn = F.mse_loss if loss == "mse" else F.cross_entropy
    expected = []
    for _ in range(tr.steps + 1):
        opt.zero_grad()
        value = lossfn(ref(problem.inputs), problem.targets)
        expected.append(float(value.detach()))
        value.backward()
        opt.step()
    assert tr.steps == len(tr.losses) - 1
    torch.testing.assert_close(torch.tensor(tr.losses), torch.tensor(expected), rtol=1e-12, atol=0)


def test_vmap_and_one_at_a_time_agree():
    """Batched (vmap) and sequential probes give the same losses, steps and end curvature."""
    problem = mlp_problem(seed=1)
    config = ProbeConfig(max_steps=60)
    ctx, est = context(problem, config)
    lrs = [m * 2 / est.value for m in (0.5, 1.3, 2.0, 3.0, 6.0)]
    batched = run_probes(ctx, lrs, config, use_vmap=True)
    single = run_probes(ctx, lrs, config, use_vmap=False)
    for a, b in zip(batched, single, strict=True):
        assert a.steps == b.steps and a.settled == b.settled
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-10, atol=0,
                                   equal_nan=True)
        if a.curvature_end is not None:
            assert a.curvature_end == pytest.approx(b.curvature_end, rel=1e-8)


def test_chunked_probes_equal_unchunked():
    """Chunking changes memory, not results (float64)."""
    problem = mlp_problem(seed=2, m=30)
    base = ProbeConfig(max_steps=30)
    ctx, est = context(problem, base)
    lrs = [0.5 * 2 / est.value, 1.5 * 2 / est.value]
    whole = run_probes(ctx, lrs, base)
    chunked = run_probes(ctx, lrs, ProbeConfig(max_steps=30, chunk_size=7))
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-10, atol=0)


class BNDrop(nn.Module):
    """A model with BatchNorm and dropout, to check nothing of the user's is touched."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(16, 2))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        """Body then a frozen layer."""
        return self.frozen(self.body(x))


def test_diagnose_leaves_the_model_bit_identical():
    """Parameters, buffers, requires_grad and train/eval flags are exactly as before."""
    torch.manual_seed(0)
    model = BNDrop()
    model.train()
    model.body[3].eval()  # a mixed-mode model must stay mixed
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before_flags = [(n, m.training) for n, m in model.named_modules()]
    before_grad = [(n, p.requires_grad) for n, p in model.named_parameters()]
    x = torch.randn(40, 4)
    y = torch.randn(40, 2)
    diagnose(Problem(model, x, y, resolve_loss("mse")), ProbeConfig(max_steps=20, grid=(0.5, 2.0, 8.0)))
    after = model.state_dict()
    assert before_state.keys() == after.keys()
    for k, v in before_state.items():
        assert torch.equal(v, after[k]), k
    assert before_flags == [(n, m.training) for n, m in model.named_modules()]
    assert before_grad == [(n, p.requires_grad) for n, p in model.named_parameters()]
    assert all(p.grad is None for p in model.parameters())


def test_diagnosis_is_deterministic():
    """Same problem and seed: identical λ₀, probes and recommendation."""
    config = ProbeConfig(max_steps=40, grid=(0.5, 1.3, 3.0, 8.0))
    a = diagnose(mlp_problem(seed=3), config)
    b = diagnose(mlp_problem(seed=3), config)
    assert a.lambda0.value == b.lambda0.value
    assert [p.trace.losses for p in a.probes] == [p.trace.losses for p in b.probes]
    assert [p.phase for p in a.probes] == [p.phase for p in b.probes]
    assert (a.recommended_lr, a.eta_max) == (b.recommended_lr, b.eta_max)


def test_dead_fraction_counts_relu_units_off_on_every_sample():
    """All units dead with a huge negative bias; none dead with a huge positive one."""
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    problem = Problem(net, x, torch.zeros(16, 1, dtype=torch.float64), resolve_loss("mse"))
    fm = FunctionalModel(problem)
    params = fm.params0.clone()
    bias = fm.unflatten(params)["0.bias"]
    bias.fill_(-100.0)
    assert dead_fraction(fm, params, x) == 1.0
    bias.fill_(100.0)
    assert dead_fraction(fm, params, x) == 0.0
    tanh = Problem(nn.Sequential(nn.Linear(3, 2), nn.Tanh()).double(), x, torch.zeros(16, 2).double(),
                   resolve_loss("mse"))
    assert dead_fraction(FunctionalModel(tanh), FunctionalModel(tanh).params0, x) is None
