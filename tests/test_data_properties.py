"""Property tests of data validation in :mod:`etafinder.loading`.

Whatever data a user hands over (random shapes, sample counts, dtypes, NaN/inf, Python objects),
``load_problem`` either returns a valid problem whose probe set and rest hold every sample
exactly once, or raises ``InputError``: never any other exception.
"""

from __future__ import annotations

import math
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from etafinder.errors import InputError
from etafinder.loading import LoadedProblem, load_problem

SETTINGS = settings(max_examples=50, deadline=None)

MODEL = """
import math
from pathlib import Path

import torch
from torch import nn

XSHAPE = {xshape!r}
YSHAPE = {yshape!r}
FORM = {form!r}


def model():
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(XSHAPE), math.prod(YSHAPE)))


def forward(model, x):
    return model(x).reshape(x.shape[0], *YSHAPE)


def data():
    d = torch.load(Path(__file__).with_name("d.pt"))
    x, y = d["x"], d["y"]
    if FORM == "arrays":
        return x.numpy(), y.numpy()
    if FORM == "dataset":
        return torch.utils.data.TensorDataset(x, y)
    if FORM == "dataloader":
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=3)
    return x, y
"""

FORMS = ("tensors", "arrays", "dataset", "dataloader", "pt", "npz")


def _write_model(folder: Path, xshape: tuple, yshape: tuple, form: str) -> Path:
    path = folder / "model.py"
    text = MODEL.format(xshape=tuple(xshape), yshape=tuple(yshape), form=form)
    path.write_text(textwrap.dedent(text))
    return path


def _write_data(folder: Path, x: np.ndarray, y: np.ndarray, form: str) -> str | None:
    """Write the arrays where the model file (or ``--data``) reads them; returns ``data=``."""
    if form == "npz":
        np.savez(folder / "d.npz", x=x, y=y)
        return str(folder / "d.npz")
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, folder / "d.pt")
    return str(folder / "d.pt") if form == "pt" else None


@st.composite
def problems(draw: st.DrawFn) -> dict:
    """Random data sets, mostly valid, some with mismatched counts, no samples or NaN/inf.

    Args:
        draw: hypothesis' draw.

    Returns:
        The arrays, shapes, form, ``samples``/``seed`` and whether the data is valid.
    """
    n = draw(st.integers(0, 12))
    m = n if draw(st.integers(0, 3)) else draw(st.integers(0, 12))  # mostly matching counts
    xshape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    yshape = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    xdtype = draw(st.sampled_from([np.float32, np.float64]))
    ydtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
    x = draw(hnp.arrays(xdtype, (n, *xshape), elements=finite))
    if np.issubdtype(ydtype, np.integer):
        y = draw(hnp.arrays(ydtype, (m, *yshape), elements=st.integers(-5, 5)))
    else:
        y = draw(hnp.arrays(ydtype, (m, *yshape), elements=finite))
    if n:
        x.reshape(n, -1)[:, 0] = np.arange(n)  # sample ids, to check that every sample is used once
    bad = draw(st.sampled_from([None] * 5 + ["nan", "inf", "-inf"]))
    where = draw(st.sampled_from(["x", "y"]))
    target = x if where == "x" or not np.issubdtype(ydtype, np.floating) else y
    if bad is not None and target.size:
        flat = target.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = float(bad)
    else:
        bad = None
    return {
        "x": x,
        "y": y,
        "xshape": xshape,
        "yshape": yshape,
        "form": draw(st.sampled_from(FORMS)),
        "samples": draw(st.one_of(st.none(), st.integers(1, 15))),
        "seed": draw(st.integers(0, 2**32)),
        "valid": n == m and n > 0 and bad is None,
    }


def _check_partition(loaded: LoadedProblem, x: np.ndarray, y: np.ndarray) -> None:
    """Probe set + rest = all samples exactly once, each with its own target."""
    n = x.shape[0]
    ids = torch.cat([loaded.problem.inputs, loaded.rest_inputs]).reshape(n, -1)[:, 0]
    assert sorted(int(i) for i in ids.tolist()) == list(range(n))
    targets = torch.cat([loaded.problem.targets, loaded.rest_targets])
    for i, t in zip(ids.tolist(), targets, strict=True):
        expected = torch.from_numpy(np.asarray(y[int(i)])).to(t.dtype)
        assert torch.equal(t, expected)
    info = loaded.info
    assert info["total_samples"] == n
    assert loaded.problem.inputs.shape[0] == info["samples"]
    assert loaded.rest_inputs.shape[0] == n - info["samples"]
    assert info["samples"] == (
        n if info["samples_requested"] is None else min(n, info["samples_requested"])
    )


@SETTINGS
@given(problems())
def test_valid_or_input_error(case: dict) -> None:
    """Random shapes, counts and NaN/inf: a valid partition exactly when the data is valid.

    Args:
        case: a drawn data set.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _write_model(folder, case["xshape"], case["yshape"], case["form"])
        data = _write_data(folder, case["x"], case["y"], case["form"])
        try:
            loaded = load_problem(str(model), data=data, samples=case["samples"], seed=case["seed"])
        except InputError as err:
            event(f"InputError: {case['form']}")
            assert not case["valid"], f"valid data refused: {err}"
            assert err.hint
            return
    event(f"valid: {case['form']}")
    assert case["valid"], "invalid data accepted"
    _check_partition(loaded, case["x"], case["y"])
    again = load_problem_again(case)
    assert torch.equal(again.problem.inputs, loaded.problem.inputs)  # deterministic per seed


def load_problem_again(case: dict) -> LoadedProblem:
    """The same case loaded in a fresh folder (the probe set must not depend on the folder).

    Args:
        case: a drawn data set.

    Returns:
        The loaded problem.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _write_model(folder, case["xshape"], case["yshape"], case["form"])
        data = _write_data(folder, case["x"], case["y"], case["form"])
        return load_problem(str(model), data=data, samples=case["samples"], seed=case["seed"])


DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.bool_,
    np.complex64,
]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@SETTINGS
@given(
    xdtype=st.sampled_from(DTYPES),
    ydtype=st.sampled_from(DTYPES),
    xshape=st.lists(st.integers(0, 3), max_size=3),
    yshape=st.lists(st.integers(0, 3), max_size=2),
    data=st.data(),
)
def test_npz_of_any_dtype(xdtype, ydtype, xshape: list, yshape: list, data: st.DataObject) -> None:
    """``--data`` archives of any numeric dtype and shape: a valid problem or InputError.

    Args:
        xdtype: the inputs' dtype.
        ydtype: the targets' dtype.
        xshape: the inputs' shape (samples first; may be 0-d or empty).
        yshape: the targets' shape.
        data: hypothesis' interactive draw.
    """
    x = data.draw(hnp.arrays(xdtype, tuple(xshape)))
    y = data.draw(hnp.arrays(ydtype, tuple(yshape)))
    per_x = tuple(xshape[1:]) or (1,)
    per_y = tuple(yshape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _write_model(folder, per_x if math.prod(per_x) else (1,), per_y, "npz")
        np.savez(folder / "d.npz", x=x, y=y)
        try:
            loaded = load_problem(str(model), data=str(folder / "d.npz"), samples=4)
        except InputError as err:
            event("InputError")
            assert err.message and err.hint
            return
    event("valid")
    n = loaded.info["total_samples"]
    assert loaded.problem.inputs.shape[0] + loaded.rest_inputs.shape[0] == n == x.shape[0]
    assert torch.isfinite(loaded.problem.inputs.double()).all()
    assert loaded.problem.targets.is_floating_point()  # mse targets are floats of the model dtype


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(raw=values)
def test_arbitrary_python_values(raw: object) -> None:
    """Whatever plain Python value data() returns, the answer is an InputError (or a problem).

    Args:
        raw: the value data() returns.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.py"
        path.write_text(
            "from torch import nn\n\n"
            "def model():\n    return nn.Linear(1, 1)\n\n"
            f"def data():\n    return {raw!r}\n"
        )
        try:
            loaded = load_problem(str(path))
        except InputError as err:
            assert err.message and err.hint
            return
    assert isinstance(loaded, LoadedProblem)
