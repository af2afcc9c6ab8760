"""Tests of :mod:`etafinder.loading`: model files, checkpoints and data files, as users write them.

Every model file is written into ``tmp_path`` by the test that uses it. The table
:data:`FAILURES` covers every failure mode of the contract: each must raise an ``InputError``
whose first line names the file or option and the problem, with a hint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from etafinder.errors import InputError
from etafinder.loading import LoadedProblem, load_problem

# ------------------------------------------------------------------------------------ helpers ----

HEADER = "import numpy as np\nimport torch\nfrom torch import nn\n\n"
MODEL = """
def model():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
"""


def data_returning(expr: str, *setup: str, n: int = 10) -> str:
    """A ``data()`` source: builds ``x`` (n, 3) and ``y`` (n, 2), runs ``setup``, returns ``expr``.

    Args:
        expr: the returned expression.
        *setup: statements run before returning.
        n: samples.

    Returns:
        Python source.
    """
    lines = [
        "def data():",
        "    g = torch.Generator().manual_seed(1)",
        f"    x = torch.randn({n}, 3, generator=g)",
        f"    y = torch.randn({n}, 2, generator=g)",
        *(f"    {s}" for s in setup),
        f"    return {expr}",
    ]
    return "\n" + "\n".join(lines) + "\n"


DATA = data_returning("x, y")


def source(*, model: str = MODEL, data: str = DATA, extra: str = "") -> str:
    """A model file's source from its parts.

    Args:
        model: the ``model()`` part.
        data: the ``data()`` part.
        extra: anything else (``loss``, ``forward``, ...).

    Returns:
        Python source.
    """
    return HEADER + textwrap.dedent(model) + textwrap.dedent(data) + textwrap.dedent(extra)


def write(folder: Path, text: str, name: str = "model.py") -> Path:
    """Write a file (dedented) and return its path.

    Args:
        folder: where.
        text: the contents.
        name: the file name.

    Returns:
        The path.
    """
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def base_net() -> nn.Module:
    """The architecture of :data:`MODEL`, for writing checkpoints.

    Returns:
        A fresh module.
    """
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def files(folder: Path) -> set[str]:
    """Every path below ``folder`` (relative), to check that nothing was written.

    Args:
        folder: the folder.

    Returns:
        The relative paths.
    """
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


class Marker:
    """A pickle payload that would create a file when unpickled (it must never be)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class Hyper:
    """A harmless custom class in a checkpoint: weights_only refuses it, trust allows it."""

    def __init__(self, lr: float) -> None:
        self.lr = lr


# --------------------------------------------------------------------------- failure table ----


@dataclass
class Case:
    """One failure mode.

    Attributes:
        id: the test id.
        files: file name -> source text (a model file is dedented) or a writer ``f(path)``.
        kwargs: ``load_problem`` arguments; ``{d}`` in a string becomes the test's folder.
        expect: substrings of the message's first line.
    """

    id: str
    files: dict[str, str | Callable[[Path], None]]
    kwargs: dict = field(default_factory=dict)
    expect: tuple[str, ...] = ()


def _save(obj) -> Callable[[Path], None]:
    return lambda p: torch.save(obj, p)


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def _npz(**arrays) -> Callable[[Path], None]:
    def writer(p: Path) -> None:
        with p.open("wb") as fh:
            np.savez(fh, **arrays)

    return writer


def _evil(p: Path) -> None:
    torch.save({"0.weight": torch.zeros(4, 3), "payload": Marker(p.parent / "MARKER")}, p)


_sd = base_net().state_dict()
_OK = {"model.py": source()}

FAILURES = [
    # --- the model file itself
    Case("model-file-missing", {}, {"model": "{d}/nope.py"}, ("nope.py", "not found")),
    Case(
        "not-a-py-file",
        {"model.txt": "x = 1"},
        {"model": "{d}/model.txt"},
        ("model.txt", "not a .py file"),
    ),
    Case(
        "model-is-a-directory",
        {"sub/model.py": source()},
        {"model": "{d}/sub"},
        ("sub", "is a directory"),
    ),
    Case(
        "syntax-error",
        {"model.py": "import torch\n\ndef model(:\n    pass\n"},
        {},
        ("model.py", "syntax error at line 3"),
    ),
    Case(
        "import-raises",
        {"model.py": source(extra="\n1 / 0\n")},
        {},
        ("model.py", "importing it raised ZeroDivisionError", "line"),
    ),
    Case(
        "import-exits",
        {"model.py": source(extra="\nimport sys\nsys.exit(3)\n")},
        {},
        ("model.py", "SystemExit"),
    ),
    Case(
        "missing-sibling-import",
        {"model.py": "import helpers_that_do_not_exist\n"},
        {},
        ("model.py", "ModuleNotFoundError", "helpers_that_do_not_exist"),
    ),
    Case("no-model", {"model.py": source(model="")}, {}, ("model.py", "defines no `model()`")),
    Case(
        "no-such-factory",
        _OK,
        {"model": "{d}/model.py:small"},
        ("model.py", "defines no `small()`"),
    ),
    Case(
        "bad-factory-name",
        _OK,
        {"model": "{d}/model.py:1x"},
        ("model.py", "not a Python identifier"),
    ),
    Case(
        "model-is-an-instance",
        {"model.py": source(model="model = nn.Linear(3, 2)\n")},
        {},
        ("model.py", "`model` is a Linear instance"),
    ),
    Case(
        "model-raises",
        {"model.py": source(model="def model():\n    raise ValueError('bad width')\n")},
        {},
        ("model.py", "model() raised ValueError: bad width", "(line 6)"),
    ),
    Case(
        "model-returns-non-module",
        {"model.py": source(model="def model():\n    return {'w': 1}\n")},
        {},
        ("model.py", "model() returned a dict", "expected a torch.nn.Module"),
    ),
    Case(
        "no-trainable-parameters",
        {
            "model.py": source(
                model="def model():\n    return nn.Linear(3, 2).requires_grad_(False)\n"
            )
        },
        {},
        ("model.py", "no trainable parameters"),
    ),
    Case(
        "lazy-parameters",
        {"model.py": source(model="def model():\n    return nn.LazyLinear(2)\n")},
        {},
        ("model.py", "lazy parameters"),
    ),
    Case(
        "dotted-module-missing",
        {},
        {"model": "no_such_pkg_xyz.models"},
        ("no_such_pkg_xyz.models", "no module named"),
    ),
    # --- data()
    Case(
        "no-data-no-option",
        {"model.py": source(data="")},
        {},
        ("model.py", "defines no `data()`", "--data"),
    ),
    Case(
        "data-raises",
        {"model.py": source(data="def data():\n    raise FileNotFoundError('train.csv')\n")},
        {},
        ("model.py", "data() raised FileNotFoundError: train.csv"),
    ),
    Case(
        "data-unsupported-type",
        {"model.py": source(data=data_returning("'hello'"))},
        {},
        ("model.py", "data()", "returned a str", "expected (inputs, targets)"),
    ),
    Case(
        "data-triple",
        {"model.py": source(data=data_returning("x, y, y"))},
        {},
        ("model.py", "tuple of length 3"),
    ),
    Case(
        "data-list-inputs",
        {"model.py": source(data=data_returning("x.tolist(), y"))},
        {},
        ("model.py", "inputs (element 0) is a list", "expected a tensor"),
    ),
    Case(
        "data-empty",
        {"model.py": source(data=data_returning("x[:0], y[:0]"))},
        {},
        ("model.py", "empty (0 samples)"),
    ),
    Case(
        "data-zero-dim",
        {"model.py": source(data=data_returning("x, y.sum()"))},
        {},
        ("model.py", "targets are a 0-d tensor"),
    ),
    Case(
        "data-nan-inputs",
        {"model.py": source(data=data_returning("x, y", "x[4, 1] = float('nan')"))},
        {},
        ("model.py", "inputs contain 1 NaN/inf value", "sample 4"),
    ),
    Case(
        "data-inf-targets",
        {"model.py": source(data=data_returning("x, y", "y[7] = float('inf')"))},
        {},
        ("model.py", "targets contain 2 NaN/inf values", "sample 7"),
    ),
    Case(
        "data-count-mismatch",
        {"model.py": source(data=data_returning("x, y[:9]"))},
        {},
        ("model.py", "10 inputs but 9 targets"),
    ),
    Case(
        "dataset-item-not-pair",
        {
            "model.py": source(
                data="""
             class DS(torch.utils.data.Dataset):
                 def __len__(self):
                     return 3
                 def __getitem__(self, i):
                     return {"x": torch.zeros(3), "y": torch.zeros(2)}
             def data():
                 return DS()
             """
            )
        },
        {},
        ("model.py", "sample 0 is a dict", "expected an (x, y) pair"),
    ),
    Case(
        "dataset-getitem-raises",
        {
            "model.py": source(
                data="""
             class DS(torch.utils.data.Dataset):
                 def __len__(self):
                     return 3
                 def __getitem__(self, i):
                     raise KeyError(i)
             def data():
                 return DS()
             """
            )
        },
        {},
        ("model.py", "dataset[0] raised KeyError"),
    ),
    # --- loss and forward
    Case(
        "unknown-loss-in-file",
        {"model.py": source(extra="loss = 'mae'\n")},
        {},
        ("model.py", "`loss` 'mae'", "unknown loss"),
    ),
    Case("unknown-loss-option", _OK, {"loss": "hinge"}, ("--loss 'hinge'", "unknown loss")),
    Case(
        "loss-not-callable",
        {"model.py": source(extra="loss = 3\n")},
        {},
        ("model.py", "`loss` is an int"),
    ),
    Case(
        "forward-not-callable",
        {"model.py": source(extra="forward = 'model(x)'\n")},
        {},
        ("model.py", "`forward` is a str", "expected a function"),
    ),
    Case(
        "forward-wrong-signature",
        {"model.py": source(extra="def forward(x):\n    return x\n")},
        {},
        ("model.py", "forward(x)", "cannot be called as forward(model, x)"),
    ),
    # --- the trial forward pass
    Case(
        "forward-pass-fails",
        {"model.py": source(data=data_returning("torch.randn(10, 5), y"))},
        {},
        ("model.py", "forward pass failed", "(N, 5)", "RuntimeError"),
    ),
    Case(
        "integer-inputs-to-linear",
        {"model.py": source(data=data_returning("torch.arange(30).reshape(10, 3), y"))},
        {},
        ("model.py", "forward pass failed", "int64"),
    ),
    Case(
        "output-is-a-dict",
        {
            "model.py": source(
                model="""
             class Net(nn.Module):
                 def __init__(self):
                     super().__init__()
                     self.lin = nn.Linear(3, 2)
                 def forward(self, x):
                     return {"logits": self.lin(x)}
             def model():
                 return Net()
             """
            )
        },
        {},
        ("model.py", "returned a dict with keys logits", "expected a tensor"),
    ),
    Case(
        "output-nan",
        {
            "model.py": source(
                model="""
             def model():
                 net = nn.Linear(3, 2)
                 with torch.no_grad():
                     net.bias.fill_(float("nan"))
                 return net
             """
            )
        },
        {},
        ("model.py", "NaN/inf outputs"),
    ),
    Case(
        "mse-shape-mismatch",
        {
            "model.py": source(
                model="def model():\n    return nn.Linear(3, 1)\n",
                data=data_returning("x, y[:, 0]"),
            )
        },
        {},
        ("model.py", "output shape (N, 1) vs target shape (N,)", "mse"),
    ),
    Case(
        "ce-index-out-of-range",  # the bad label is far from the trial batch: all targets count
        {
            "model.py": source(
                data=data_returning("x, torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 7, 0])"),
                extra="loss = 'cross_entropy'\n",
            )
        },
        {},
        ("model.py", "class index 7", "sample 8", "outside [0, 2)"),
    ),
    Case(
        "ce-negative-index",
        {
            "model.py": source(
                data=data_returning("x, torch.zeros(10, dtype=torch.long) - 100"),
                extra="loss = 'cross_entropy'\n",
            )
        },
        {},
        ("model.py", "class index -100", "outside [0, 2)"),
    ),
    Case(
        "ce-float-targets-wrong-shape",
        {"model.py": source(data=data_returning("x, y[:, 0]"), extra="loss = 'cross_entropy'\n")},
        {},
        ("model.py", "float targets shaped (N,)", "class probabilities"),
    ),
    Case(
        "ce-one-hot-integers",
        {
            "model.py": source(
                data=data_returning("x, torch.eye(2, dtype=torch.long)[[0, 1] * 5]"),
                extra="loss = 'cross_entropy'\n",
            )
        },
        {},
        ("model.py", "integer targets shaped (N, 2)", "class indices shaped (N,)"),
    ),
    Case(
        "ce-probabilities-not-normalised",
        {"model.py": source(data=data_returning("x, y.abs()"), extra="loss = 'cross_entropy'\n")},
        {},
        ("model.py", "sum to 1"),
    ),
    Case(
        "ce-single-class",
        {
            "model.py": source(
                model="def model():\n    return nn.Linear(3, 1)\n",
                data=data_returning("x, torch.zeros(10, dtype=torch.long)"),
                extra="loss = 'cross_entropy'\n",
            )
        },
        {},
        ("model.py", "K=1 class"),
    ),
    Case(
        "custom-loss-not-scalar",
        {"model.py": source(extra="def loss(out, y):\n    return ((out - y) ** 2).mean(1)\n")},
        {},
        ("model.py", "loss returned (2,)", "expected a scalar"),
    ),
    Case(
        "custom-loss-raises",
        {"model.py": source(extra="def loss(out, y):\n    raise RuntimeError('nope')\n")},
        {},
        ("model.py", "loss failed", "RuntimeError: nope"),
    ),
    # --- options
    Case("samples-zero", _OK, {"samples": 0}, ("--samples 0", "positive")),
    Case("samples-negative", _OK, {"samples": -3}, ("--samples -3", "positive")),
    Case("seed-negative", _OK, {"seed": -1}, ("--seed -1",)),
    Case("dtype-float16", _OK, {"dtype": "float16"}, ("--dtype float16", "float32 or float64")),
    Case("device-gpu", _OK, {"device": "gpu"}, ("--device gpu", "not a torch device")),
    Case("device-meta", _OK, {"device": "meta"}, ("--device meta",)),
    # --- checkpoints
    Case(
        "checkpoint-missing",
        _OK,
        {"checkpoint": "{d}/none.pt"},
        ("--checkpoint", "none.pt", "not found"),
    ),
    Case(
        "checkpoint-suffix",
        {**_OK, "w.h5": "x"},
        {"checkpoint": "{d}/w.h5"},
        ("--checkpoint", "w.h5", "unsupported checkpoint type '.h5'"),
    ),
    Case(
        "checkpoint-malicious-pickle",
        {**_OK, "evil.pt": _evil},
        {"checkpoint": "{d}/evil.pt"},
        (
            "--checkpoint",
            "evil.pt",
            "contains pickled code",
            "it needs io.open",
            "never executes it",
        ),
    ),
    Case(
        "checkpoint-custom-class-untrusted",
        {**_OK, "h.pt": _save({"state_dict": _sd, "hp": argparse.Namespace(lr=0.1)})},
        {"checkpoint": "{d}/h.pt"},
        ("h.pt", "contains pickled code", "argparse.Namespace"),
    ),
    Case(
        "checkpoint-garbage",
        {**_OK, "g.pt": _bytes(b"hello, not a torch file")},
        {"checkpoint": "{d}/g.pt"},
        ("--checkpoint", "g.pt", "cannot be read as a torch file"),
    ),
    Case(
        "checkpoint-garbage-pickle-opcodes",
        {**_OK, "g.pt": _bytes(b"not a torch file at all")},
        {"checkpoint": "{d}/g.pt"},
        ("--checkpoint", "g.pt", "not a plain torch.save file", "never executes pickled code"),
    ),
    Case(
        "checkpoint-truncated",
        {**_OK, "t.pt": lambda p: (torch.save(_sd, p), p.write_bytes(p.read_bytes()[:200]))},
        {"checkpoint": "{d}/t.pt"},
        ("t.pt", "cannot be read as a torch file"),
    ),
    Case(
        "safetensors-corrupt",
        {**_OK, "w.safetensors": _bytes(b"\x10\0\0\0\0\0\0\0{oops}xx")},
        {"checkpoint": "{d}/w.safetensors"},
        ("--checkpoint", "w.safetensors", "not a readable safetensors file"),
    ),
    Case(
        "checkpoint-holds-a-list",
        {**_OK, "l.pt": _save([1, 2, 3])},
        {"checkpoint": "{d}/l.pt"},
        ("l.pt", "holds a list", "expected a state_dict"),
    ),
    Case(
        "checkpoint-no-tensors",
        {**_OK, "e.pt": _save({"epoch": 3})},
        {"checkpoint": "{d}/e.pt"},
        ("e.pt", "no tensors"),
    ),
    Case(
        "checkpoint-unexpected-keys",
        {
            **_OK,
            "u.pt": _save(
                {
                    **_sd,
                    "head.weight": torch.zeros(1),
                    "head.bias": torch.zeros(1),
                    "extra": torch.zeros(1),
                }
            ),
        },
        {"checkpoint": "{d}/u.pt"},
        (
            "u.pt",
            "checkpoint has 3 unexpected keys: head.weight, head.bias, extra",
            "was it saved from a different model?",
        ),
    ),
    Case(
        "checkpoint-missing-keys",
        {**_OK, "m.pt": _save({k: v for k, v in _sd.items() if not k.startswith("2.")})},
        {"checkpoint": "{d}/m.pt"},
        ("m.pt", "2 model keys missing from it: 2.weight, 2.bias"),
    ),
    Case(
        "checkpoint-wrong-shapes",
        {**_OK, "s.pt": _save({**_sd, "0.weight": torch.zeros(5, 3)})},
        {"checkpoint": "{d}/s.pt"},
        ("s.pt", "1 shape mismatch", "0.weight (checkpoint (5, 3) vs model (4, 3))"),
    ),
    Case(
        "lightning-wrong-shapes-after-prefix",
        {**_OK, "l.ckpt": _save({"state_dict": {f"model.{k}": torch.zeros(7) for k in _sd}})},
        {"checkpoint": "{d}/l.ckpt"},
        ("l.ckpt", "after stripping the prefix 'model.'", "4 shape mismatches"),
    ),
    # --- --data FILE
    Case("data-file-missing", _OK, {"data": "{d}/none.npz"}, ("--data", "none.npz", "not found")),
    Case(
        "data-file-suffix",
        {**_OK, "d.csv": "1,2\n"},
        {"data": "{d}/d.csv"},
        ("--data", "d.csv", "unsupported data file type '.csv'"),
    ),
    Case(
        "data-npz-missing-y",
        {**_OK, "d.npz": _npz(x=np.zeros((4, 3)), t=np.zeros(4))},
        {"data": "{d}/d.npz"},
        ("--data", "d.npz", "has no 'y'", "t, x"),
    ),
    Case(
        "data-npz-object-array",
        {**_OK, "d.npz": _npz(x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros((4, 2)))},
        {"data": "{d}/d.npz"},
        ("--data", "d.npz", "cannot be read as an .npz"),
    ),
    Case(
        "data-npz-garbage",
        {**_OK, "d.npz": _bytes(b"PK nonsense")},
        {"data": "{d}/d.npz"},
        ("--data", "d.npz", "not an .npz archive"),
    ),
    Case(
        "data-pt-not-a-dict",
        {**_OK, "d.pt": _save([torch.zeros(4, 3), torch.zeros(4, 2)])},
        {"data": "{d}/d.pt"},
        ("--data", "d.pt", "holds a list", "'x' and 'y'"),
    ),
    Case(
        "data-pt-pickled-code",
        {**_OK, "d.pt": _save({"x": torch.zeros(4, 3), "y": Hyper(0.1)})},
        {"data": "{d}/d.pt"},
        ("--data", "d.pt", "contains pickled code", "Hyper"),
    ),
    Case(
        "data-pt-nan",
        {**_OK, "d.pt": _save({"x": torch.full((4, 3), float("nan")), "y": torch.zeros(4, 2)})},
        {"data": "{d}/d.pt"},
        ("--data", "d.pt", "inputs contain 12 NaN/inf values"),
    ),
]
if not torch.cuda.is_available():
    FAILURES.append(
        Case(
            "device-cuda-unavailable",
            _OK,
            {"device": "cuda"},
            ("--device cuda", "CUDA is not available"),
        )
    )


def _materialise(case: Case, folder: Path) -> dict:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_text(textwrap.dedent(content))
    kwargs = {"model": "{d}/model.py", **case.kwargs}
    return {k: v.format(d=folder) if isinstance(v, str) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("case", FAILURES, ids=[c.id for c in FAILURES])
def test_failure_modes(case: Case, tmp_path: Path) -> None:
    """Every failure mode is an InputError naming the file/option and the problem, with a hint.

    Args:
        case: the failure mode.
        tmp_path: pytest's folder.
    """
    kwargs = _materialise(case, tmp_path)
    with pytest.raises(InputError) as info:
        load_problem(**kwargs)
    err = info.value
    first = err.message.splitlines()[0]
    for part in case.expect:
        assert part in first, f"{part!r} not in {first!r}"
    assert err.hint and err.hint.strip()
    assert "Traceback" not in str(err)
    assert not (tmp_path / "MARKER").exists()


def test_failure_table_is_broad() -> None:
    """The table covers at least the 25 failure modes the brief asks for."""
    assert len(FAILURES) >= 25
    assert len({c.id for c in FAILURES}) == len(FAILURES)


# ------------------------------------------------------------------------------ checkpoints ----


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    """A checkpoint whose unpickling would create a file is refused; the file never appears.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    _evil(tmp_path / "evil.pt")
    warned: list[str] = []
    for _ in range(2):  # the refusal is stable and never falls back to a full unpickle
        with pytest.raises(InputError) as info:
            load_problem(str(model), checkpoint=str(tmp_path / "evil.pt"), warn=warned.append)
        assert "--trust-checkpoint" in info.value.hint
    assert not (tmp_path / "MARKER").exists()
    assert warned == []


def test_trusted_pickle_is_loaded_with_a_warning(tmp_path: Path) -> None:
    """With trust, a harmless pickle with a custom class loads, and the warning names the risk.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net()
    torch.save({"state_dict": net.state_dict(), "hparams": Hyper(0.1)}, tmp_path / "h.pt")
    warned: list[str] = []
    loaded = load_problem(
        str(model), checkpoint=str(tmp_path / "h.pt"), trust_checkpoint=True, warn=warned.append
    )
    assert len(warned) == 1 and "arbitrary code execution" in warned[0]
    for a, b in zip(loaded.problem.model.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert loaded.info["checkpoint_trusted_pickle"] is True
    assert loaded.info["checkpoint_format"] == "torch[state_dict]"


def test_trust_is_not_exercised_for_a_safe_file(tmp_path: Path) -> None:
    """A plain state_dict never needs the unsafe path, even when trust is given.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    torch.save(base_net().state_dict(), tmp_path / "w.pt")
    warned: list[str] = []
    loaded = load_problem(
        str(model), checkpoint=str(tmp_path / "w.pt"), trust_checkpoint=True, warn=warned.append
    )
    assert warned == [] and loaded.info["checkpoint_trusted_pickle"] is False


def test_default_warn_is_a_python_warning(tmp_path: Path) -> None:
    """Without ``warn``, the trust warning is a UserWarning.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    torch.save({"state_dict": base_net().state_dict(), "hp": Hyper(1.0)}, tmp_path / "h.pt")
    with pytest.warns(UserWarning, match="arbitrary code execution"):
        load_problem(str(model), checkpoint=str(tmp_path / "h.pt"), trust_checkpoint=True)


def _params(loaded: LoadedProblem) -> dict[str, torch.Tensor]:
    return dict(loaded.problem.model.state_dict())


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_state_dict", "model"])
def test_pt_checkpoint_forms(wrap: str, tmp_path: Path) -> None:
    """A state_dict loads strictly, bare or wrapped in a dict, and its hash is recorded.

    Args:
        wrap: how the state_dict is stored.
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net()
    sd = net.state_dict()
    obj = sd if wrap == "plain" else {wrap: sd, "epoch": 3}
    ckpt = tmp_path / "w.pth"
    torch.save(obj, ckpt)
    loaded = load_problem(str(model), checkpoint=str(ckpt))
    for k, v in sd.items():
        assert torch.equal(_params(loaded)[k], v)
    assert loaded.info["checkpoint"] == str(ckpt)
    assert loaded.info["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert loaded.info["checkpoint_format"] == ("torch" if wrap == "plain" else f"torch[{wrap}]")


def test_safetensors_checkpoint(tmp_path: Path) -> None:
    """A .safetensors file loads.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net()
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_problem(str(model), checkpoint=str(tmp_path / "w.safetensors"))
    assert torch.equal(_params(loaded)["2.bias"], net.state_dict()["2.bias"])
    assert loaded.info["checkpoint_format"] == "safetensors"


def test_lightning_prefix_is_stripped(tmp_path: Path) -> None:
    """A Lightning .ckpt's ``model.`` prefix is stripped; keys of other submodules are ignored.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["loss_fn.pos_weight"] = torch.ones(2)
    ckpt = {
        "state_dict": state,
        "epoch": 7,
        "global_step": 70,
        "pytorch-lightning_version": "2.1",
        "optimizer_states": [],
        "hyper_parameters": {"lr": 0.1},
    }
    torch.save(ckpt, tmp_path / "last.ckpt")
    loaded = load_problem(str(model), checkpoint=str(tmp_path / "last.ckpt"))
    for k, v in net.state_dict().items():
        assert torch.equal(_params(loaded)[k], v)
    assert loaded.info["checkpoint_prefix_stripped"] == "model."
    assert loaded.info["checkpoint_keys_ignored"] == 1
    assert loaded.info["checkpoint_format"] == "lightning[state_dict]"


def test_dataparallel_prefix_in_pt(tmp_path: Path) -> None:
    """DataParallel's ``module.`` prefix in a plain .pt is stripped too.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dp.pt")
    loaded = load_problem(str(model), checkpoint=str(tmp_path / "dp.pt"))
    assert torch.equal(_params(loaded)["0.weight"], net.state_dict()["0.weight"])
    assert loaded.info["checkpoint_prefix_stripped"] == "module."


def test_float64_checkpoint_keeps_its_precision(tmp_path: Path) -> None:
    """With ``--dtype float64`` a float64 checkpoint is loaded after the conversion: no rounding.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    net = base_net().double()
    with torch.no_grad():
        net[0].weight.add_(1e-12)  # below float32 resolution
    torch.save(net.state_dict(), tmp_path / "w64.pt")
    loaded = load_problem(str(model), checkpoint=str(tmp_path / "w64.pt"), dtype="float64")
    assert torch.equal(_params(loaded)["0.weight"], net.state_dict()["0.weight"])


def test_factory_result_is_never_modified(tmp_path: Path) -> None:
    """A model() returning a global instance: conversion and checkpoint touch only a copy.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="""
        NET = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        def model():
            return NET
        """
        ),
    )
    torch.save(
        {k: torch.zeros_like(v) for k, v in base_net().state_dict().items()}, tmp_path / "zeros.pt"
    )
    loaded = load_problem(str(model), checkpoint=str(tmp_path / "zeros.pt"), dtype="float64")
    module = next(
        m
        for name, m in sys.modules.items()
        if name.startswith("_etafinder_model_")
        and getattr(m, "__file__", "") == str(model.resolve())
        and hasattr(m, "NET")
    )
    assert module.NET[0].weight.dtype == torch.float32
    assert module.NET[0].weight.abs().sum() > 0
    assert loaded.problem.model is not module.NET
    assert loaded.problem.model[0].weight.dtype == torch.float64


# ------------------------------------------------------------------------------------- data ----


def test_tensors_and_info(tmp_path: Path) -> None:
    """The plain form: shapes, dtype, info keys, and info is JSON-able.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    loaded = load_problem(str(model))
    p = loaded.problem
    assert p.inputs.shape == (10, 3) and p.targets.shape == (10, 2)
    assert loaded.rest_inputs.shape == (0, 3) and loaded.rest_targets.shape == (0, 2)
    info = loaded.info
    expected = {
        "model_file",
        "model_sha256",
        "factory",
        "checkpoint",
        "checkpoint_sha256",
        "checkpoint_format",
        "data_source",
        "data_sha256",
        "total_samples",
        "samples",
        "seed",
        "dtype",
        "device",
        "loss",
        "num_params",
        "forward_hook",
    }
    assert expected <= set(info)
    assert info["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert info["num_params"] == 3 * 4 + 4 + 4 * 2 + 2
    assert (info["loss"], info["dtype"], info["device"], info["data_source"]) == (
        "mse",
        "float32",
        "cpu",
        "data()",
    )
    assert (info["total_samples"], info["samples"], info["forward_hook"]) == (10, 10, False)
    json.dumps(info)


def test_numpy_arrays_become_tensors_of_the_model_dtype(tmp_path: Path) -> None:
    """float64 numpy arrays are converted to the float32 model's dtype.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data="""
        def data():
            rng = np.random.default_rng(0)
            return rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
        """
        ),
    )
    loaded = load_problem(str(model))
    assert loaded.problem.inputs.dtype == torch.float32
    assert loaded.info["data_form"] == "arrays"


def test_dataset_form(tmp_path: Path) -> None:
    """A map-style Dataset yielding (tensor, int) pairs, as torchvision does.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data="""
        class DS(torch.utils.data.Dataset):
            def __len__(self):
                return 7
            def __getitem__(self, i):
                return torch.full((3,), float(i)), i % 2
        def data():
            return DS()
        """,
            extra="loss = 'cross_entropy'\n",
        ),
    )
    loaded = load_problem(str(model))
    assert loaded.problem.inputs[:, 0].tolist() == [float(i) for i in range(7)]
    assert loaded.problem.targets.tolist() == [i % 2 for i in range(7)]
    assert loaded.problem.targets.dtype == torch.int64
    assert loaded.info["data_form"] == "dataset"


def test_dataloader_form(tmp_path: Path) -> None:
    """A shuffling DataLoader is iterated once and concatenated: the same samples, any order.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data="""
        def data():
            x = torch.arange(33, dtype=torch.float32).reshape(11, 3)
            y = x[:, :2] * 2
            ds = torch.utils.data.TensorDataset(x, y)
            return torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
        """
        ),
    )
    loaded = load_problem(str(model))
    x, y = loaded.problem.inputs, loaded.problem.targets
    assert sorted(x[:, 0].tolist()) == [3.0 * i for i in range(11)]
    assert torch.equal(y, x[:, :2] * 2)
    assert loaded.info["data_form"] == "dataloader"
    again = load_problem(str(model))
    assert torch.equal(again.problem.inputs, x)  # the shuffle is seeded


def test_iterable_dataset_form(tmp_path: Path) -> None:
    """An IterableDataset yields samples, which are stacked.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data="""
        class Stream(torch.utils.data.IterableDataset):
            def __iter__(self):
                for i in range(5):
                    yield torch.ones(3) * i, torch.zeros(2)
        def data():
            return Stream()
        """
        ),
    )
    loaded = load_problem(str(model))
    assert loaded.problem.inputs.shape == (5, 3)
    assert loaded.info["data_form"] == "iterable_dataset"


@pytest.mark.parametrize("kind", ["pt", "npz"])
def test_data_file(kind: str, tmp_path: Path) -> None:
    """``--data`` replaces data() (which need not exist) and its hash is recorded.

    Args:
        kind: ``pt`` or ``npz``.
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source(data=""))
    x = np.arange(24, dtype=np.float64).reshape(8, 3)
    y = np.ones((8, 2))
    path = tmp_path / f"d.{kind}"
    if kind == "pt":
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    else:
        np.savez(path, x=x, y=y)
    loaded = load_problem(str(model), data=str(path))
    assert torch.equal(loaded.problem.inputs, torch.from_numpy(x).float())
    assert loaded.info["data_source"] == str(path)
    assert loaded.info["data_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.info["data_form"] == kind


def test_data_file_overrides_data_function(tmp_path: Path) -> None:
    """With ``--data``, data() is not called (it would raise here).

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source(data="def data():\n    raise RuntimeError('not me')\n"))
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3)), y=np.zeros((4, 2)))
    assert load_problem(str(model), data=str(tmp_path / "d.npz")).info["total_samples"] == 4


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_wide_unsigned_data_is_widened(dtype: str, tmp_path: Path) -> None:
    """torch's uint16/32/64 lack most operations: such arrays load as int64 (here: mse targets).

    Args:
        dtype: the numpy dtype of the targets.
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source(data=""))
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3)), y=np.arange(8, dtype=dtype).reshape(4, 2))
    loaded = load_problem(str(model), data=str(tmp_path / "d.npz"), samples=3)
    assert loaded.problem.targets.shape == (3, 2) and loaded.rest_targets.shape == (1, 2)


def test_mse_integer_targets_are_converted(tmp_path: Path) -> None:
    """mse with integer targets: converted to the output dtype, and the info says so.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source(data=data_returning("x, torch.ones(10, 2, dtype=torch.int32)")))
    loaded = load_problem(str(model))
    assert loaded.problem.targets.dtype == torch.float32
    assert loaded.info["targets_converted"] == "int32 -> float32"


def test_cross_entropy_forms(tmp_path: Path) -> None:
    """Class indices (any integer dtype -> int64), and probabilities shaped like the outputs.

    Args:
        tmp_path: pytest's folder.
    """
    idx = write(
        tmp_path,
        source(
            data=data_returning("x, torch.tensor([0, 1] * 5, dtype=torch.int32)"),
            extra="loss = 'cross_entropy'\n",
        ),
        "idx.py",
    )
    loaded = load_problem(str(idx))
    assert loaded.problem.targets.dtype == torch.int64
    assert loaded.info["loss"] == "cross_entropy"
    prob = write(
        tmp_path,
        source(data=data_returning("x, torch.softmax(y, 1)"), extra="loss = 'cross_entropy'\n"),
        "prob.py",
    )
    assert load_problem(str(prob)).problem.targets.shape == (10, 2)


def test_loss_option_overrides_file(tmp_path: Path) -> None:
    """``--loss`` wins over the file's ``loss``; F.mse_loss is recognised as the built-in.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data=data_returning("x, torch.tensor([0, 1] * 5)"),
            extra="loss = torch.nn.functional.mse_loss\n",
        ),
    )
    assert load_problem(str(model), loss="cross_entropy").info["loss"] == "cross_entropy"
    other = write(tmp_path, source(extra="loss = torch.nn.functional.mse_loss\n"), "other.py")
    assert load_problem(str(other)).info["loss"] == "mse"
    custom = write(
        tmp_path, source(extra="def loss(o, y):\n    return ((o - y) ** 2).mean()\n"), "custom.py"
    )
    assert load_problem(str(custom)).info["loss"] == "custom"


def test_forward_hook(tmp_path: Path) -> None:
    """A model returning a dict works through ``forward(model, x)``.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(3, 2)
            def forward(self, x):
                return {"logits": self.lin(x)}
        def model():
            return Net()
        """,
            extra="def forward(model, x):\n    return model(x)['logits']\n",
        ),
    )
    loaded = load_problem(str(model))
    assert loaded.info["forward_hook"] is True
    assert loaded.problem.forward is not None


def test_integer_inputs_stay_integer(tmp_path: Path) -> None:
    """Token ids for an embedding are not converted, even with ``--dtype float64``.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="def model():\n    return nn.Sequential(nn.Embedding(5, 2), nn.Flatten())\n",
            data=data_returning("torch.randint(0, 5, (10, 1)), y"),
        ),
    )
    loaded = load_problem(str(model), dtype="float64")
    assert loaded.problem.inputs.dtype == torch.int64
    assert loaded.problem.targets.dtype == torch.float64


# ---------------------------------------------------------------------- samples and seeding ----


def test_samples_subset_is_seeded_and_disjoint(tmp_path: Path) -> None:
    """The probe set is a seeded subset; probe + rest hold every sample exactly once.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            data="""
        def data():
            x = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)
            return x, x[:, :2] + 0.5
        """
        ),
    )
    a = load_problem(str(model), samples=12, seed=3)
    b = load_problem(str(model), samples=12, seed=3)
    c = load_problem(str(model), samples=12, seed=4)
    probe = a.problem.inputs[:, 0].tolist()
    rest = a.rest_inputs[:, 0].tolist()
    assert len(probe) == 12 and len(rest) == 38
    assert sorted(probe + rest) == [float(i) for i in range(50)]
    assert probe == sorted(probe) and rest == sorted(rest)
    assert torch.equal(a.problem.targets, a.problem.inputs[:, :2] + 0.5)  # pairs stay together
    assert torch.equal(a.rest_targets, a.rest_inputs[:, :2] + 0.5)
    assert torch.equal(a.problem.inputs, b.problem.inputs)
    assert not torch.equal(a.problem.inputs, c.problem.inputs)
    assert (a.info["samples"], a.info["total_samples"], a.info["seed"]) == (12, 50, 3)


def test_samples_beyond_the_data_use_all(tmp_path: Path) -> None:
    """Asking for more samples than exist uses them all, and the info says so.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    loaded = load_problem(str(model), samples=1000)
    assert loaded.info["samples"] == 10 and loaded.info["samples_requested"] == 1000
    assert "only 10 samples" in loaded.info["samples_note"]
    assert loaded.rest_inputs.shape[0] == 0


def test_seeding_makes_global_rng_reproducible(tmp_path: Path) -> None:
    """model() and data() drawing from torch, numpy and random are reproducible per seed.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="""
        import random
        def model():
            net = nn.Linear(3, 2)  # torch's global RNG
            with torch.no_grad():
                net.bias.add_(float(np.random.rand()) + random.random())
            return net
        """,
            data="""
        def data():
            return torch.randn(6, 3), torch.from_numpy(np.random.rand(6, 2))
        """,
        ),
    )
    before = torch.get_rng_state()
    a, b = load_problem(str(model), seed=5), load_problem(str(model), seed=5)
    c = load_problem(str(model), seed=6)
    for x, y in zip(a.problem.model.parameters(), b.problem.model.parameters(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.problem.inputs, b.problem.inputs)
    assert torch.equal(a.problem.targets, b.problem.targets)
    assert not torch.equal(a.problem.model.weight, c.problem.model.weight)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left as it was


def test_model_and_data_run_under_float32(tmp_path: Path) -> None:
    """``--dtype float64`` converts afterwards: model() and data() see float32 defaults.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="""
        def model():
            assert torch.get_default_dtype() == torch.float32
            return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        """
        ),
    )
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # even when the caller's default differs
    try:
        loaded = load_problem(str(model), dtype="float64")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(saved)
    assert all(p.dtype == torch.float64 for p in loaded.problem.model.parameters())
    assert loaded.problem.inputs.dtype == torch.float64
    assert loaded.rest_inputs.dtype == torch.float64
    assert loaded.info["dtype"] == "float64"
    plain = load_problem(str(model))
    assert plain.info["dtype"] == "float32"


def test_batchnorm_statistics_untouched(tmp_path: Path) -> None:
    """The trial pass runs on a copy in eval mode: the model's BatchNorm stats and mode survive.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(
        tmp_path,
        source(
            model="""
        def model():
            return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        """
        ),
    )
    net = load_problem(str(model)).problem.model
    assert net.training
    assert int(net[1].num_batches_tracked) == 0
    assert torch.equal(net[1].running_mean, torch.zeros(4))


# ------------------------------------------------------------- the model file and its folder ----


def test_nothing_is_written_and_globals_are_restored(tmp_path: Path) -> None:
    """No __pycache__ (model file or sibling), unchanged bytes, sys.path/argv restored.

    Args:
        tmp_path: pytest's folder.
    """
    write(
        tmp_path,
        "def make():\n    import torch\n    return torch.nn.Linear(3, 2)\n",
        "helpers_nowrite.py",
    )
    model = write(
        tmp_path,
        "import helpers_nowrite\n"
        + source(model="def model():\n    return helpers_nowrite.make()\n"),
    )
    before_bytes = model.read_bytes()
    before_files = files(tmp_path)
    path, argv, bytecode = list(sys.path), sys.argv, sys.dont_write_bytecode
    load_problem(str(model))
    assert files(tmp_path) == before_files
    assert not (tmp_path / "__pycache__").exists()
    assert model.read_bytes() == before_bytes
    assert sys.path == path and sys.argv is argv and sys.dont_write_bytecode == bytecode
    assert "helpers_nowrite" not in sys.modules


def test_sys_path_restored_after_a_failure(tmp_path: Path) -> None:
    """sys.path is restored when the import fails too.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, "raise ImportError('nope')\n")
    path = list(sys.path)
    with pytest.raises(InputError):
        load_problem(str(model))
    assert sys.path == path


def test_sibling_modules_do_not_collide(tmp_path: Path) -> None:
    """Two model folders with their own ``helpers.py`` (and same-named model files) each get theirs.

    Args:
        tmp_path: pytest's folder.
    """
    for width in (2, 5):
        folder = tmp_path / f"m{width}"
        folder.mkdir()
        write(folder, f"WIDTH = {width}\n", "helpers.py")
        write(
            folder,
            "import helpers\n"
            + source(
                model="def model():\n    return nn.Linear(3, helpers.WIDTH)\n",
                data=f"def data():\n    return torch.zeros(4, 3), torch.zeros(4, {width})\n",
            ),
        )
    a = load_problem(str(tmp_path / "m2" / "model.py"))
    b = load_problem(str(tmp_path / "m5" / "model.py"))
    assert a.problem.model.out_features == 2 and b.problem.model.out_features == 5


def test_top_level_argparse_sees_no_etafinder_flags(tmp_path: Path, monkeypatch) -> None:
    """A model file that parses arguments at import gets ``sys.argv = [PATH]``.

    Args:
        tmp_path: pytest's folder.
        monkeypatch: pytest's monkeypatch.
    """
    monkeypatch.setattr(sys, "argv", ["etafinder", "probe", "model.py", "--samples", "3"])
    model = write(
        tmp_path,
        "import argparse\n"
        + source(
            extra="""
        parser = argparse.ArgumentParser()
        parser.add_argument("--width", type=int, default=4)
        ARGS = parser.parse_args()
        """
        ),
    )
    assert load_problem(str(model)).info["total_samples"] == 10


def test_factory_name_and_dotted_module(tmp_path: Path, monkeypatch) -> None:
    """``PATH.py:factory`` and ``package.module:factory`` (importable from the current directory).

    Args:
        tmp_path: pytest's folder.
        monkeypatch: pytest's monkeypatch.
    """
    text = source(extra="def small():\n    return nn.Linear(3, 2)\n")
    model = write(tmp_path, text)
    loaded = load_problem(f"{model}:small")
    assert loaded.info["factory"] == "small" and loaded.info["num_params"] == 8
    pkg = tmp_path / "mypkg_loading"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write(pkg, text, "nets.py")
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    dotted = load_problem("mypkg_loading.nets:small")
    assert dotted.info["num_params"] == 8
    assert dotted.info["model_sha256"] == hashlib.sha256((pkg / "nets.py").read_bytes()).hexdigest()
    assert sys.path == path
    assert not (pkg / "__pycache__").exists()


def test_two_loads_of_one_file_are_independent(tmp_path: Path) -> None:
    """Each load imports the file afresh, under its own module name.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source(extra="CALLS = []\n"))
    a = load_problem(str(model))
    b = load_problem(str(model))
    assert a.problem.model is not b.problem.model
    names = [n for n in sys.modules if n.startswith("_etafinder_model_") and n.endswith("_model")]
    assert len(names) == len(set(names)) >= 2


@pytest.mark.gpu
def test_cuda_device(tmp_path: Path) -> None:
    """On a CUDA machine everything lands on the GPU.

    Args:
        tmp_path: pytest's folder.
    """
    model = write(tmp_path, source())
    loaded = load_problem(str(model), device="cuda", samples=4)
    assert loaded.problem.inputs.is_cuda and loaded.rest_inputs.is_cuda
    assert next(loaded.problem.model.parameters()).is_cuda
    assert loaded.info["device"] == "cuda"
