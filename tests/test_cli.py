"""The CLI end to end on a tiny MLP: --help, --json, --report, check's exit codes, determinism,
interrupts, the user's files untouched, and one subprocess run of the installed ``etafinder``."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from diagnosis_fixtures import cli_runner, make_diagnosis, make_report
from etafinder.cli import app
from etafinder.report import REQUIRED_KEYS, load_report, write_report

# `etafinder.diagnose` is the function (re-exported); the module is looked up by name
DIAGNOSE = importlib.import_module("etafinder.diagnose")
LOADING = importlib.import_module("etafinder.loading")

#: keep every diagnosis here small: the whole default suite runs on 2 CPU cores in minutes
STEPS = "30"

TINY = textwrap.dedent(
    """
    import torch
    from torch import nn

    print("the model file prints this")  # must not reach stdout


    def model():
        return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


    def data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        return x, x[:, :1] * 0.5 - x[:, 1:2]
    """
)


def invoke(*args: str, **kwargs):
    """Run the CLI in-process; stdout and stderr are captured separately."""
    return cli_runner().invoke(app, [str(a) for a in args], **kwargs)


def sha256(path: Path) -> str:
    """Content hash of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def without_runtime(report: dict) -> dict:
    """A report minus the one section that may differ between reruns."""
    return {k: v for k, v in report.items() if k != "runtime"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the tiny model file, a checkpoint of its weights and a --data file."""
    d = tmp_path_factory.mktemp("cli")
    (d / "tiny.py").write_text(TINY)
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    torch.save(net.state_dict(), d / "w.pt")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=g)
    torch.save({"x": x, "y": x[:, :1] * 0.5 - x[:, 1:2]}, d / "d.pt")
    return d


@pytest.fixture(autouse=True)
def _in_workdir(workdir, monkeypatch):
    """Every test runs in the work folder, as a user would (relative paths in the reports)."""
    monkeypatch.chdir(workdir)


@pytest.fixture(scope="module")
def user_hashes(workdir):
    """The user's files' hashes before any run."""
    return {p.name: sha256(p) for p in workdir.iterdir()}


ARGS = ("--checkpoint", "w.pt", "--data", "d.pt", "--steps", STEPS)


@pytest.fixture(scope="module")
def probed(workdir, user_hashes, monkeypatch_module):
    """One real `probe --json --report` run (with --plot when matplotlib is there)."""
    monkeypatch_module.chdir(workdir)
    plot = ("--plot", "p.png") if _has_matplotlib() else ()
    result = invoke("probe", "tiny.py", *ARGS, "--report", "r.yaml", "--json", *plot)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A module-scoped monkeypatch."""
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------- help ----
@pytest.mark.parametrize("command", [[], ["probe"], ["check"]], ids=["etafinder", "probe", "check"])
def test_help(command):
    """Every command has help, and every option is documented in it."""
    from typer.main import get_command

    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout
    cmd = get_command(app)
    if command:
        cmd = cmd.commands[command[0]]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in result.stdout, f"{opt} missing from {command[0]} --help"
            assert param.help or param.param_type_name == "argument" or param.name == "ctx"
    else:
        assert "probe" in result.stdout and "check" in result.stdout


def test_no_args_shows_help():
    """`etafinder` alone prints the usage (click's exit code 2 for a missing command)."""
    result = invoke()
    assert result.exit_code in (0, 2) and "probe" in result.output


def test_version():
    """--version prints the version."""
    from etafinder import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"etafinder {__version__}"


# ------------------------------------------------------------------------------------- probe ----
def test_json_stdout_is_clean_and_complete(probed):
    """--json: stdout is one JSON document with the contract's keys; the tables went to stderr."""
    report = json.loads(probed.stdout)
    for key in REQUIRED_KEYS:
        assert key in report
    assert report["complete"] is True and report["schema"] == "etafinder/report/v1"
    assert report["recommended_phase"] in ("lazy", "catapult")
    assert all(p["phase"] in ("lazy", "catapult", "divergent") for p in report["probes"])
    assert "Probes" in probed.stderr and "Recommendation" in probed.stderr
    assert "the model file prints this" in probed.stderr
    assert "\x1b[" not in probed.stdout + probed.stderr  # not a terminal: plain


def test_report_file_matches_json(probed, workdir):
    """The YAML report round-trips to exactly what --json printed."""
    assert load_report(workdir / "r.yaml") == json.loads(probed.stdout)


def test_report_records_provenance(probed):
    """Inputs, hashes, validity and the config are in the report."""
    r = json.loads(probed.stdout)
    assert r["inputs"]["checkpoint"] == "w.pt" and len(r["inputs"]["checkpoint_sha256"]) == 64
    assert r["inputs"]["data_source"] == "d.pt" and r["inputs"]["samples"] == 64
    assert r["valid_for"]["samples"] == 64 and r["config"]["max_steps"] == int(STEPS)
    assert r["runtime"]["timings"]["load_s"] >= 0


def test_plot_written(probed, workdir):
    """--plot wrote a PNG."""
    if not _has_matplotlib():
        pytest.skip("matplotlib not installed")
    assert (workdir / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_report_and_quiet(probed, workdir):
    """A rerun with the same seed gives an identical report apart from runtime; --quiet prints the
    recommended rate alone."""
    result = invoke("probe", "tiny.py", *ARGS, "--report", "r2.json", "--quiet")
    assert result.exit_code == 0, result.stderr
    first = json.loads(probed.stdout)
    second = load_report(workdir / "r2.json")
    assert without_runtime(first) == without_runtime(second)
    assert float(result.stdout) == first["recommended_lr"]
    assert result.stderr.strip() == "the model file prints this"


def test_user_files_untouched(probed, workdir, user_hashes):
    """Model file, checkpoint and data are byte-identical after the runs; no __pycache__ appears."""
    for name, digest in user_hashes.items():
        assert sha256(workdir / name) == digest, name
    assert not list(workdir.rglob("__pycache__"))


# ------------------------------------------------------------------------------ check: report ----
def test_check_from_report_exit_codes(probed, workdir):
    """From a saved report: 0 at the recommended rate, 1 far above η_max, 1 with --allow lazy."""
    r = json.loads(probed.stdout)
    ok = invoke("check", "--from-report", "r.yaml", "--lr", repr(r["recommended_lr"]))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("PASS lr=") and "probed at this rate" in ok.stdout
    bad = invoke("check", "--from-report", "r.yaml", "--lr", "1000")
    assert bad.exit_code == 1 and bad.stdout.startswith("FAIL lr=1000: divergent")
    if r["recommended_phase"] == "catapult":
        strict = invoke(
            "check", "--from-report", "r.yaml", "--lr", repr(r["recommended_lr"]), "--allow", "lazy"
        )
        assert strict.exit_code == 1 and "(allowed: lazy)" in strict.stdout


def test_check_from_report_unresolved_bracket(workdir):
    """Inside a lazy/divergent bracket the worse phase decides, and the verdict says so."""
    from diagnosis_fixtures import probe
    from etafinder.types import Phase

    d = make_diagnosis((probe(0.1, Phase.LAZY), probe(0.4, Phase.DIVERGENT)), bracket=(0.1, 0.4))
    write_report(workdir / "bracket.yaml", make_report(d))
    result = invoke("check", "--from-report", "bracket.yaml", "--lr", "0.2")
    assert result.exit_code == 1
    assert "worse end of a bracket" in result.stdout and "taking the worse phase" in result.stdout


def test_check_from_report_json(probed):
    """check --json: the report plus a `check` section, and nothing else on stdout."""
    result = invoke("check", "--from-report", "r.yaml", "--lr", "1000", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["check"]["phase"] == "divergent" and doc["check"]["exit_code"] == 1
    assert doc["check"]["passed"] is False and "FAIL" in result.stderr


def test_check_from_partial_report_refused(workdir):
    """A partial report is not gated on."""
    write_report(workdir / "part.yaml", make_report(complete=False))
    result = invoke("check", "--from-report", "part.yaml", "--lr", "0.1")
    assert result.exit_code == 2 and "partial report" in result.stderr


def test_check_from_report_momentum_mismatch(probed):
    """--momentum that differs from the report's is refused."""
    result = invoke("check", "--from-report", "r.yaml", "--lr", "0.1", "--momentum", "0.9")
    assert result.exit_code == 2 and "measured for momentum 0" in result.stderr


# -------------------------------------------------------------------------------- check: model ----
def test_check_model_file_probes_undecided_rate(probed, workdir):
    """From a model file, a rate the probes do not decide is probed itself (source: requested)."""
    r = json.loads(probed.stdout)
    ps = r["probes"]
    pair = next((a, b) for a, b in itertools.pairwise(ps) if a["phase"] != b["phase"])
    lr = math.sqrt(pair[0]["lr"] * pair[1]["lr"])
    result = invoke("check", "tiny.py", *ARGS, "--lr", repr(lr), "--report", "r3.yaml")
    assert result.exit_code in (0, 1), result.stderr
    r3 = load_report(workdir / "r3.yaml")
    requested = [p for p in r3["probes"] if p["source"] == "requested"]
    assert len(requested) == 1 and math.isclose(requested[0]["lr"], lr, rel_tol=1e-9)
    assert "probed at this rate" in result.stdout
    assert ("PASS" if result.exit_code == 0 else "FAIL") in result.stdout
    assert without_runtime(r3)["probes"] != r["probes"]


def test_check_model_file_passes_lazy_rate():
    """From a model file, a rate below the smallest (lazy) probe exits 0."""
    result = invoke("check", "tiny.py", *ARGS, "--lrs", "0.1,0.2", "--lr", "0.01")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS lr=0.01: lazy")
    assert "below the smallest probe" in result.stdout


def test_check_model_file_fails_divergent_rate(probed):
    """From a model file, a rate far above every probe exits 1 without an extra probe."""
    result = invoke("check", "tiny.py", *ARGS, "--lr", "1000", "--quiet")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL lr=1000: divergent")


# ----------------------------------------------------------------------------- interrupts ----
def test_interrupt_writes_partial_and_keeps_report(workdir, monkeypatch):
    """Ctrl-C mid-run: exit 130, FILE.partial with complete false, the existing FILE untouched."""
    monkeypatch.chdir(workdir)
    existing = workdir / "keep.yaml"
    existing.write_text("old report\n")
    before = sha256(existing)

    def interrupted(*_a, **_k):
        raise DIAGNOSE.Interrupted(make_diagnosis())

    monkeypatch.setattr(DIAGNOSE, "diagnose", interrupted)
    result = invoke("probe", "tiny.py", "--report", "keep.yaml")
    assert result.exit_code == 130
    assert sha256(existing) == before
    partial = load_report(workdir / "keep.yaml.partial")
    assert partial["complete"] is False and len(partial["probes"]) == 6
    assert "partial report in keep.yaml.partial" in result.stderr


def test_interrupt_while_probing_checks_rate(workdir, monkeypatch):
    """Ctrl-C while check probes its own rate: exit 130, the finished diagnosis in FILE.partial."""
    monkeypatch.setattr(DIAGNOSE, "diagnose", lambda *_a, **_k: make_diagnosis())

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(DIAGNOSE, "probe_rate", interrupted)
    result = invoke(
        "check", "tiny.py", "--lr", "0.1", "--report", "k.yaml"
    )  # 0.08 lazy < 0.1 < 0.208
    assert result.exit_code == 130
    assert not (workdir / "k.yaml").exists()
    partial = load_report(workdir / "k.yaml.partial")
    assert partial["complete"] is False and len(partial["probes"]) == 6


def test_failed_run_keeps_existing_report(workdir, tmp_path):
    """A run that fails on bad input leaves an existing report byte-identical."""
    (tmp_path / "bad.py").write_text("def model(:\n")
    existing = workdir / "kept.yaml"
    existing.write_text("an old report\n")
    result = invoke("probe", str(tmp_path / "bad.py"), "--report", "kept.yaml")
    assert result.exit_code == 2
    assert existing.read_text() == "an old report\n"
    assert not (workdir / "kept.yaml.partial").exists()


def test_interrupt_before_lambda0(workdir, monkeypatch):
    """Interrupted before λ₀: the partial report has no numbers yet, but is valid."""
    monkeypatch.chdir(workdir)

    def interrupted(*_a, **_k):
        raise DIAGNOSE.Interrupted(None)

    monkeypatch.setattr(DIAGNOSE, "diagnose", interrupted)
    result = invoke("probe", "tiny.py", "--report", "early.json")
    assert result.exit_code == 130 and not (workdir / "early.json").exists()
    partial = load_report(workdir / "early.json.partial")
    assert partial["complete"] is False and partial["lambda0"] is None


def test_interrupt_while_loading(workdir, monkeypatch):
    """Ctrl-C while the model file loads: exit 130, no traceback."""
    monkeypatch.chdir(workdir)

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(LOADING, "load_problem", interrupted)
    result = invoke("probe", "tiny.py")
    assert result.exit_code == 130 and "Traceback" not in result.output


# ----------------------------------------------------------------------------- internal errors ----
def test_internal_error_is_exit_3(workdir, monkeypatch):
    """A bug (an unexpected exception): a short message and exit 3; --debug shows the traceback."""
    monkeypatch.chdir(workdir)

    def broken(*_a, **_k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(DIAGNOSE, "diagnose", broken)
    result = invoke("probe", "tiny.py")
    assert result.exit_code == 3
    assert "\nError: internal error: ZeroDivisionError: oops\n" in result.stderr
    assert "Traceback" not in result.stderr
    debug = invoke("probe", "tiny.py", "--debug")
    assert debug.exit_code == 3 and "Traceback" in debug.stderr


def test_debug_shows_traceback_of_bad_input(tmp_path):
    """--debug adds the traceback to an input error, still exit 2."""
    (tmp_path / "m.py").write_text(
        "def model():\n    raise ValueError('inside model')\n\n\ndef data():\n    return None\n"
    )
    plain = invoke("probe", str(tmp_path / "m.py"))
    debug = invoke("probe", str(tmp_path / "m.py"), "--debug")
    assert plain.exit_code == debug.exit_code == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert "inside model" in debug.stderr


# ----------------------------------------------------------------------------- subprocess ----
def _installed() -> str:
    exe = Path(sys.executable).with_name("etafinder")
    found = str(exe) if exe.exists() else shutil.which("etafinder")
    if found is None:
        pytest.skip("the etafinder script is not installed (pip install -e .)")
    return found


def test_installed_entry_point(probed, workdir):
    """The installed `etafinder` script: --help, and a real check on the saved report."""
    exe = _installed()
    help_ = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "probe" in help_.stdout
    env = {**os.environ, "NO_COLOR": "1"}
    args = [exe, "check", "--from-report", str(workdir / "r.yaml"), "--lr", "1000"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith("FAIL lr=1000: divergent") and "\x1b[" not in run.stdout
