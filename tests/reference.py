"""Dense float64 references for the curvature tests, independent of etafinder's operators.

Everything here is built from ``torch.func`` and ``torch.autograd.functional`` directly:

* ``J``: the full Jacobian of the model outputs with respect to the trainable parameters
  (``torch.func.jacrev`` through ``torch.func.functional_call`` on a private deep copy);
* ``H_out``: the Hessian of the loss with respect to the outputs, by
  ``torch.autograd.functional.hessian`` (never a closed form: it checks etafinder's closed forms);
* ``G = Jᵀ H_out J`` and its spectrum by ``torch.linalg.eigvalsh``;
* the Hessian of the loss with respect to the trainable parameters, also by autograd.

The reference evaluates the model exactly as handed over, after ``eval()`` on its copy (dropout off,
BatchNorm on its running statistics): a test that wants etafinder's BatchNorm policy prepares the
model's statistics itself (see :func:`with_batch_stats`). Frozen parameters
(``requires_grad=False``) and buffers are constants. Small models only: J and G are dense.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev

LossFn = Callable[[Tensor, Tensor], Tensor]
ForwardFn = Callable[[nn.Module, Tensor], Tensor]


@dataclass(frozen=True)
class Dense:
    """A dense reference problem.

    Attributes:
        jacobian: ``J``, shaped ``(outputs, P)``.
        output_hessian: ``H_out``, shaped ``(outputs, outputs)``.
        ggn: ``G = Jᵀ H_out J``, shaped ``(P, P)``.
        eigenvalues: the eigenvalues of ``G``, ascending.
        names: the trainable parameters' names, in the flattening order.
    """

    jacobian: Tensor
    output_hessian: Tensor
    ggn: Tensor
    eigenvalues: Tensor
    names: tuple[str, ...]

    @property
    def lambda0(self) -> float:
        """The top eigenvalue of ``G``.

        Returns:
            ``max eig(G)`` as a Python float.
        """
        return float(self.eigenvalues[-1])

    @property
    def num_params(self) -> int:
        """Number of trainable parameters ``P``.

        Returns:
            ``P``.
        """
        return int(self.ggn.shape[0])


def _split(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Separate a module's state into trainable parameters and constants.

    Args:
        model: the module (a private copy).

    Returns:
        ``(trainable, constants)``: detached tensors by name; the constants are the frozen
        parameters and the buffers.
    """
    trainable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    constants = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    constants.update({n: b.detach() for n, b in model.named_buffers()})
    return trainable, constants


def _output_fn(model: nn.Module, forward: ForwardFn | None) -> tuple[
        Callable[[dict[str, Tensor], Tensor], Tensor], dict[str, Tensor]]:
    """The model as a function of its trainable parameters.

    Args:
        model: the user's module; it is deep-copied and the copy put in eval mode.
        forward: optional ``forward(model, x)`` hook (default ``model(x)``).

    Returns:
        ``(f, params)``: ``f(params, x)`` gives the output, ``params`` the trainable parameters.
    """
    net = copy.deepcopy(model).eval()
    params, constants = _split(net)

    def call(module: nn.Module, x: Tensor) -> Tensor:
        return module(x) if forward is None else forward(module, x)

    class _Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Tensor) -> Tensor:
            return call(self.net, x)

    wrap = _Wrap()

    def f(p: dict[str, Tensor], x: Tensor) -> Tensor:
        state = {f"net.{n}": t for n, t in {**p, **constants}.items()}
        return functional_call(wrap, state, (x,))

    return f, params


def flatten(tensors: dict[str, Tensor]) -> Tensor:
    """Concatenate named tensors into one flat vector, in dict order.

    Args:
        tensors: the tensors.

    Returns:
        The flat vector.
    """
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(flat: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    """Split a flat vector into tensors shaped like ``like``.

    Args:
        flat: the flat vector.
        like: the named tensors whose shapes (and order) to use.

    Returns:
        Named views of ``flat``.
    """
    out, start = {}, 0
    for n, t in like.items():
        out[n] = flat[start : start + t.numel()].view(t.shape)
        start += t.numel()
    return out


def trainable_params(model: nn.Module) -> Tensor:
    """The model's trainable parameters, flattened in ``named_parameters`` order.

    Args:
        model: the module.

    Returns:
        A detached flat copy.
    """
    flat = [p.detach().reshape(-1) for p in model.parameters() if p.requires_grad]
    return torch.cat(flat).clone()


def jacobian(model: nn.Module, inputs: Tensor, forward: ForwardFn | None = None) -> Tensor:
    """The full Jacobian of the outputs with respect to the trainable parameters.

    Args:
        model: the module (not modified).
        inputs: the inputs.
        forward: optional ``forward(model, x)`` hook.

    Returns:
        ``J`` shaped ``(number of output entries, P)``.
    """
    f, params = _output_fn(model, forward)
    jac = jacrev(lambda p: f(p, inputs))(params)
    rows = f(params, inputs).numel()
    return torch.cat([jac[n].reshape(rows, -1) for n in params], dim=1)


def output_hessian(loss: LossFn, outputs: Tensor, targets: Tensor) -> Tensor:
    """The Hessian of the loss with respect to the outputs, by autograd.

    Args:
        loss: ``loss(outputs, targets) -> scalar``.
        outputs: the model outputs.
        targets: the targets.

    Returns:
        ``H_out`` shaped ``(outputs.numel(), outputs.numel())``.
    """
    out = outputs.detach()
    h = torch.autograd.functional.hessian(lambda o: loss(o, targets), out, vectorize=True)
    return h.reshape(out.numel(), out.numel())


def outputs(model: nn.Module, inputs: Tensor, forward: ForwardFn | None = None) -> Tensor:
    """The model outputs under the reference's evaluation (eval mode, on a copy).

    Args:
        model: the module.
        inputs: the inputs.
        forward: optional ``forward(model, x)`` hook.

    Returns:
        The detached outputs.
    """
    f, params = _output_fn(model, forward)
    with torch.no_grad():
        return f(params, inputs).detach()


def dense_ggn(model: nn.Module, inputs: Tensor, targets: Tensor, loss: LossFn,
              forward: ForwardFn | None = None) -> Dense:
    """The dense Gauss–Newton matrix ``G = Jᵀ H_out J`` and its spectrum.

    Args:
        model: the module (not modified; evaluated in eval mode on a copy).
        inputs: the probe set's inputs.
        targets: its targets.
        loss: ``loss(outputs, targets) -> scalar``, the mean loss of the whole set.
        forward: optional ``forward(model, x)`` hook.

    Returns:
        The :class:`Dense` reference.
    """
    jac = jacobian(model, inputs, forward)
    h = output_hessian(loss, outputs(model, inputs, forward), targets)
    g = jac.T @ h @ jac
    g = 0.5 * (g + g.T)
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    return Dense(jac, h, g, torch.linalg.eigvalsh(g), names)


def dense_hessian(model: nn.Module, inputs: Tensor, targets: Tensor, loss: LossFn,
                  forward: ForwardFn | None = None) -> Tensor:
    """The dense Hessian of the loss with respect to the trainable parameters.

    Args:
        model: the module (not modified; evaluated in eval mode on a copy).
        inputs: the inputs.
        targets: the targets.
        loss: ``loss(outputs, targets) -> scalar``.
        forward: optional ``forward(model, x)`` hook.

    Returns:
        The symmetric ``(P, P)`` Hessian.
    """
    f, params = _output_fn(model, forward)
    flat0 = flatten(params)

    def total(flat: Tensor) -> Tensor:
        return loss(f(unflatten(flat, params), inputs), targets)

    h = torch.autograd.functional.hessian(total, flat0, vectorize=True)
    return 0.5 * (h + h.T)


def with_batch_stats(model: nn.Sequential, inputs: Tensor) -> nn.Sequential:
    """A copy of a ``Sequential`` whose BatchNorms hold the whole set's biased batch statistics.

    This is etafinder's BatchNorm policy rebuilt by hand: walking the layers in eval mode, each
    BatchNorm's running mean and (biased) variance are set to the statistics of its input over the
    whole set at the current weights; a layer built with ``track_running_stats=False`` is
    replaced by one that tracks, with the same affine parameters (and ``requires_grad`` flags).

    Args:
        model: a ``Sequential`` (BatchNorm layers at its top level only).
        inputs: the whole probe set.

    Returns:
        The prepared copy, in eval mode.
    """
    net = copy.deepcopy(model).eval()
    h = inputs
    with torch.no_grad():
        for i, layer in enumerate(net):
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                dims = [d for d in range(h.ndim) if d != 1]
                if not layer.track_running_stats:
                    fixed = type(layer)(layer.num_features, eps=layer.eps, affine=layer.affine,
                                        dtype=h.dtype)
                    if layer.affine:
                        fixed.weight = layer.weight
                        fixed.bias = layer.bias
                    net[i] = layer = fixed.eval()
                layer.running_mean.copy_(h.mean(dim=dims))
                layer.running_var.copy_(h.var(dim=dims, unbiased=False))
            h = layer(h)
    return net
