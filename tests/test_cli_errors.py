"""Bad inputs through the CLI: exit 2, a first line that names the file or option and the problem, a
hint after a blank line, and never a traceback (contract §5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from diagnosis_fixtures import cli_runner
from etafinder.cli import app

HEAD = "import torch\nfrom torch import nn\n\n"
MODEL = "def model():\n    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))\n\n"
DATA = "def data():\n    return torch.randn(16, 4), torch.randn(16, 2)\n\n"
GOOD = HEAD + MODEL + DATA
CE_MODEL = "loss = 'cross_entropy'\n\n" + MODEL


def _state_dict() -> dict:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    return net.state_dict()


class _Evil:
    """A pickle that would create a marker file when loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _evil_checkpoint(d: Path) -> bytes:
    path = d / "evil.pt"
    torch.save({"weight": _Evil(str(d / "PWNED"))}, path)
    return path.read_bytes()


def _wrong_keys(d: Path) -> bytes:
    torch.save({"encoder.weight": torch.zeros(8, 4)}, d / "keys.pt")
    return (d / "keys.pt").read_bytes()


def _wrong_shapes(d: Path) -> bytes:
    sd = _state_dict()
    sd["0.weight"] = torch.zeros(3, 3)
    torch.save(sd, d / "shapes.pt")
    return (d / "shapes.pt").read_bytes()


@dataclass
class Case:
    """One bad input: the files to create, the arguments, and what the message must say."""

    id: str
    args: list[str]
    words: list[str]
    files: dict[str, str | bytes | Callable[[Path], bytes]] = field(default_factory=dict)


CASES = [
    Case("missing-file", ["probe", "nope.py"], ["nope.py", "not found"]),
    Case("not-python", ["probe", "model.txt"], ["model.txt", ".py"], {"model.txt": GOOD}),
    Case(
        "syntax-error",
        ["probe", "m.py"],
        ["m.py", "syntax error", "line 1"],
        {"m.py": "def model(:\n"},
    ),
    Case(
        "import-error",
        ["probe", "m.py"],
        ["m.py", "importing it raised", "not_a_module_xyz"],
        {"m.py": "import not_a_module_xyz\n" + GOOD},
    ),
    Case("no-model", ["probe", "m.py"], ["m.py", "defines no `model()`"], {"m.py": HEAD + DATA}),
    Case(
        "model-raises",
        ["probe", "m.py"],
        ["m.py", "model() raised", "bad init"],
        {"m.py": HEAD + "def model():\n    raise RuntimeError('bad init')\n\n" + DATA},
    ),
    Case(
        "model-not-module",
        ["probe", "m.py"],
        ["m.py", "model() returned", "expected a torch.nn.Module"],
        {"m.py": HEAD + "def model():\n    return 42\n\n" + DATA},
    ),
    Case(
        "no-trainable",
        ["probe", "m.py"],
        ["m.py", "no trainable parameters"],
        {
            "m.py": HEAD + "def model():\n    n = nn.Linear(4, 2)\n    n.requires_grad_(False)\n"
            "    return n\n\n" + DATA
        },
    ),
    Case("no-data", ["probe", "m.py"], ["m.py", "no `data()`", "--data"], {"m.py": HEAD + MODEL}),
    Case(
        "empty-data",
        ["probe", "m.py"],
        ["m.py", "data()", "empty"],
        {"m.py": HEAD + MODEL + "def data():\n    return torch.zeros(0, 4), torch.zeros(0, 2)\n"},
    ),
    Case(
        "nan-inputs",
        ["probe", "m.py"],
        ["m.py", "data()", "NaN"],
        {
            "m.py": HEAD
            + MODEL
            + "def data():\n    x = torch.randn(16, 4)\n    x[3, 1] = float('nan')\n"
            "    return x, torch.randn(16, 2)\n"
        },
    ),
    Case(
        "inf-inputs",
        ["probe", "m.py"],
        ["m.py", "data()", "inf"],
        {
            "m.py": HEAD
            + MODEL
            + "def data():\n    x = torch.randn(16, 4)\n    x[0, 0] = float('inf')\n"
            "    return x, torch.randn(16, 2)\n"
        },
    ),
    Case(
        "mismatched-counts",
        ["probe", "m.py"],
        ["m.py", "16", "15"],
        {"m.py": HEAD + MODEL + "def data():\n    return torch.randn(16, 4), torch.randn(15, 2)\n"},
    ),
    Case(
        "shape-mismatch",
        ["probe", "m.py"],
        ["m.py", "shape"],
        {"m.py": HEAD + MODEL + "def data():\n    return torch.randn(16, 4), torch.randn(16, 3)\n"},
    ),
    Case(
        "float-targets-ce",
        ["probe", "m.py"],
        ["m.py", "cross_entropy", "targets"],
        {"m.py": HEAD + CE_MODEL + "def data():\n    return torch.randn(16, 4), torch.randn(16)\n"},
    ),
    Case(
        "class-out-of-range",
        ["probe", "m.py"],
        ["m.py", "class", "5"],
        {
            "m.py": HEAD + CE_MODEL + "def data():\n    y = torch.zeros(16, dtype=torch.long)\n"
            "    y[2] = 5\n    return torch.randn(16, 4), y\n"
        },
    ),
    Case(
        "unknown-loss",
        ["probe", "m.py", "--loss", "hinge"],
        ["--loss", "hinge", "unknown loss"],
        {"m.py": GOOD},
    ),
    Case(
        "nesterov",
        ["probe", "m.py", "--nesterov", "--momentum", "0.9"],
        ["--nesterov", "not supported"],
        {"m.py": GOOD},
    ),
    Case(
        "dampening",
        ["probe", "m.py", "--dampening", "0.5"],
        ["--dampening 0.5", "dampening=0"],
        {"m.py": GOOD},
    ),
    Case(
        "optimizer-adam",
        ["probe", "m.py", "--optimizer", "adam"],
        ["--optimizer adam", "not supported"],
        {"m.py": GOOD},
    ),
    Case(
        "momentum-out-of-range",
        ["probe", "m.py", "--momentum", "1.5"],
        ["--momentum 1.5", "[0, 1)"],
        {"m.py": GOOD},
    ),
    Case(
        "checkpoint-missing",
        ["probe", "m.py", "--checkpoint", "none.pt"],
        ["--checkpoint", "none.pt", "not found"],
        {"m.py": GOOD},
    ),
    Case(
        "checkpoint-wrong-keys",
        ["probe", "m.py", "--checkpoint", "keys.pt"],
        ["keys.pt", "keys"],
        {"m.py": GOOD, "keys.pt": _wrong_keys},
    ),
    Case(
        "checkpoint-wrong-shapes",
        ["probe", "m.py", "--checkpoint", "shapes.pt"],
        ["shapes.pt", "shape"],
        {"m.py": GOOD, "shapes.pt": _wrong_shapes},
    ),
    Case(
        "checkpoint-malicious-pickle",
        ["probe", "m.py", "--checkpoint", "evil.pt"],
        ["evil.pt", "--trust-checkpoint"],
        {"m.py": GOOD, "evil.pt": _evil_checkpoint},
    ),
    Case(
        "corrupt-safetensors",
        ["probe", "m.py", "--checkpoint", "w.safetensors"],
        ["w.safetensors"],
        {"m.py": GOOD, "w.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}garbage"},
    ),
    Case(
        "unreadable-data",
        ["probe", "m.py", "--data", "d.pt"],
        ["--data", "d.pt"],
        {"m.py": GOOD, "d.pt": b"this is not a torch file"},
    ),
    Case(
        "data-wrong-suffix",
        ["probe", "m.py", "--data", "d.csv"],
        ["--data", "d.csv"],
        {"m.py": GOOD, "d.csv": "1,2,3\n"},
    ),
    Case("lr-zero", ["check", "m.py", "--lr", "0"], ["--lr 0", "positive"], {"m.py": GOOD}),
    Case(
        "lr-negative", ["check", "m.py", "--lr", "-0.1"], ["--lr -0.1", "positive"], {"m.py": GOOD}
    ),
    Case("lr-nan", ["check", "m.py", "--lr", "nan"], ["--lr nan", "finite"], {"m.py": GOOD}),
    Case("lr-inf", ["check", "--from-report", "r.yaml", "--lr", "inf"], ["--lr inf", "finite"]),
    Case(
        "unknown-device", ["probe", "m.py", "--device", "tpu9"], ["--device tpu9"], {"m.py": GOOD}
    ),
    Case(
        "unavailable-cuda",
        ["probe", "m.py", "--device", "cuda:7"],
        ["--device cuda:7"],
        {"m.py": GOOD},
    ),
    Case(
        "unknown-dtype",
        ["probe", "m.py", "--dtype", "float16"],
        ["--dtype float16", "float64"],
        {"m.py": GOOD},
    ),
    Case(
        "samples-zero",
        ["probe", "m.py", "--samples", "0"],
        ["--samples 0", "positive"],
        {"m.py": GOOD},
    ),
    Case(
        "steps-zero", ["probe", "m.py", "--steps", "0"], ["--steps 0", "positive"], {"m.py": GOOD}
    ),
    Case("bad-lrs", ["probe", "m.py", "--lrs", "0.1,fast"], ["--lrs", "'fast'"], {"m.py": GOOD}),
    Case("mixed-lrs", ["probe", "m.py", "--lrs", "0.1,x2"], ["--lrs", "mixes"], {"m.py": GOOD}),
    Case(
        "report-folder-missing",
        ["probe", "m.py", "--report", "no/such/r.yaml"],
        ["--report", "does not exist"],
        {"m.py": GOOD},
    ),
    Case(
        "plot-wrong-suffix",
        ["probe", "m.py", "--plot", "p.txt"],
        ["--plot", "p.txt", ".png"],
        {"m.py": GOOD},
    ),
    Case(
        "report-not-a-report",
        ["check", "--from-report", "notes.yaml", "--lr", "0.1"],
        ["notes.yaml", "not an etafinder report"],
        {"notes.yaml": "shopping:\n  - milk\n"},
    ),
    Case(
        "report-missing",
        ["check", "--from-report", "gone.yaml", "--lr", "0.1"],
        ["gone.yaml", "no such report file"],
    ),
    Case(
        "report-newer-schema",
        ["check", "--from-report", "v9.json", "--lr", "0.1"],
        ["v9.json", "unknown report schema"],
        {"v9.json": '{"schema": "etafinder/report/v9"}'},
    ),
    Case(
        "check-both-sources",
        ["check", "m.py", "--from-report", "r.yaml", "--lr", "0.1"],
        ["both", "--from-report"],
        {"m.py": GOOD},
    ),
    Case("check-no-source", ["check", "--lr", "0.1"], ["no model file", "--from-report"]),
    Case(
        "check-model-options-with-report",
        ["check", "--from-report", "r.yaml", "--lr", "0.1", "--samples", "8"],
        ["--from-report", "--samples", "cannot be combined"],
    ),
    Case(
        "allow-unknown",
        ["check", "--from-report", "r.yaml", "--lr", "0.1", "--allow", "lazy,wild"],
        ["--allow", "lazy,wild"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch):
    """Exit 2; the first line names the file or option and the problem; a hint; no traceback."""
    monkeypatch.chdir(tmp_path)
    for name, content in case.files.items():
        data = content(tmp_path) if callable(content) else content
        (tmp_path / name).write_bytes(data.encode() if isinstance(data, str) else data)
    result = cli_runner().invoke(app, case.args)
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    assert result.stdout == "", "errors go to stderr only"
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: "), result.stderr
    for word in case.words:
        assert word.lower() in result.stderr.lower(), f"{word!r} not in:\n{result.stderr}"
    assert case.words[0].lower() in first.lower(), (
        f"first line does not name {case.words[0]!r}: {first}"
    )
    assert not (tmp_path / "PWNED").exists(), "a pickled checkpoint ran code"


def test_enough_cases():
    """The table covers at least twenty distinct bad inputs."""
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


def test_hint_after_blank_line(tmp_path, monkeypatch):
    """The message is: the error line, a blank line, then the hint."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(HEAD + DATA)
    result = cli_runner().invoke(app, ["probe", "m.py"])
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: model file m.py: defines no `model()`")
    assert lines[1] == "" and lines[2].startswith("Add `def model()")


@pytest.mark.parametrize(
    "args",
    [
        ["probe"],
        ["probe", "m.py", "--samples", "many"],
        ["check", "--from-report", "r.yaml"],
        ["probe", "m.py", "--bogus"],
    ],
    ids=["no-path", "samples-not-int", "no-lr", "unknown-option"],
)
def test_usage_errors_exit_2(args):
    """Usage errors (click's) exit 2 too."""
    result = cli_runner().invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
