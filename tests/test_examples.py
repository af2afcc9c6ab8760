"""The examples run: every model file loads and survives a short probe, the checkpoint example
matches the script that made it, and the CI workflow's gate does what its comments say."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from diagnosis_fixtures import cli_runner
from etafinder.cli import app
from etafinder.config import ProbeConfig
from etafinder.diagnose import diagnose
from etafinder.loading import load_problem
from etafinder.report import load_report

pytest.importorskip("sklearn", reason="the examples use scikit-learn's bundled digits")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHECKPOINT = EXAMPLES / "checkpoint" / "mlp_digits_trained.safetensors"
SAVED_REPORT = EXAMPLES / "ci" / "mlp_digits.report.yaml"
WORKFLOW = EXAMPLES / "ci" / "etafinder.yml"

MODEL_FILES = {
    "mlp_digits": (EXAMPLES / "mlp_digits.py", None, "mse"),
    "cnn_digits": (EXAMPLES / "cnn_digits.py", None, "cross_entropy"),
    "checkpoint": (EXAMPLES / "checkpoint" / "model.py", CHECKPOINT, "mse"),
}


def _tree_hashes() -> dict[str, str]:
    return {
        str(p.relative_to(EXAMPLES)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(EXAMPLES.rglob("*"))
        if p.is_file()
    }


def test_every_example_is_listed():
    """No example model file escapes these tests."""
    found = {p for p in EXAMPLES.rglob("*.py") if "def model" in p.read_text()}
    assert found == {path for path, _, _ in MODEL_FILES.values()}


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_example_loads_and_probes(name):
    """Each example loads and a short diagnosis on a subset finds λ₀ > 0 and a recommendation."""
    path, checkpoint, loss = MODEL_FILES[name]
    before = _tree_hashes()
    loaded = load_problem(
        str(path), checkpoint=None if checkpoint is None else str(checkpoint), samples=128
    )
    assert loaded.info["loss"] == loss and loaded.info["total_samples"] == 1797
    config = ProbeConfig(max_steps=15, min_steps=5, grid=(0.5, 3.0), bisect_tol=0.5)
    d = diagnose(loaded.problem, config)
    assert d.lambda0.value > 0 and d.recommended_lr > 0
    assert _tree_hashes() == before, "the examples folder changed"
    assert not list(EXAMPLES.rglob("__pycache__"))


@pytest.mark.slow
def test_quickstart_command(monkeypatch):
    """The README's quickstart, `etafinder probe examples/mlp_digits.py`, finds all three phases and
    recommends the rule's rate, 0.3·η_max or below, measured usable (--json to read it; .ci/run also
    runs it exactly as written). Slow: ~20 s."""
    monkeypatch.chdir(ROOT)
    start = time.perf_counter()
    result = cli_runner().invoke(app, ["probe", "examples/mlp_digits.py", "--json"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["eta_max"] is not None
    assert {p["phase"] for p in report["probes"]} == {"lazy", "catapult", "divergent"}
    rec = [p for p in report["probes"] if p["lr"] == report["recommended_lr"]]
    assert rec and rec[0]["phase"] == report["recommended_phase"] and not rec[0]["collapsed"]
    assert report["recommended_lr"] <= 0.3 * report["eta_max"] * (1 + 1e-9)
    print(f"quickstart: {elapsed:.1f} s")


def test_checkpoint_script_reproduces_the_checkpoint(tmp_path, monkeypatch):
    """make_checkpoint.py, rerun, writes the committed weights (to float32 round-off)."""
    import runpy

    import torch
    from safetensors.torch import load_file

    script = EXAMPLES / "checkpoint" / "make_checkpoint.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as when run as a script
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)  # the script sets it
    monkeypatch.delitem(sys.modules, "model", raising=False)
    namespace = runpy.run_path(str(script), run_name="not_main")
    out = tmp_path / "again.safetensors"
    monkeypatch.setitem(namespace["main"].__globals__, "OUT", out)
    namespace["main"]()
    sys.modules.pop("model", None)  # the example's sibling module, not ours to keep
    committed, again = load_file(str(CHECKPOINT)), load_file(str(out))
    assert committed.keys() == again.keys()
    for key in committed:
        torch.testing.assert_close(again[key], committed[key], rtol=1e-4, atol=1e-5)
    assert not list(script.parent.rglob("__pycache__"))


def _workflow_steps() -> list[str]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    return [step.get("run", "") for job in flow["jobs"].values() for step in job["steps"]]


def test_ci_workflow_gates_on_the_saved_report():
    """The workflow runs `etafinder check --from-report` on the committed report with $LR."""
    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["lr-gate"]
    runs = [s.get("run", "") for s in job["steps"]]
    gate = next(r for r in runs if r.startswith("etafinder check"))
    assert gate == 'etafinder check --from-report examples/ci/mlp_digits.report.yaml --lr "$LR"'
    assert any("pip install" in r for r in runs)
    assert any(r.startswith("etafinder check examples/mlp_digits.py") for r in _workflow_steps())


def test_ci_gate_passes_the_configured_rate_and_fails_a_divergent_one(monkeypatch):
    """At the workflow's LR the gate passes (exit 0); at a divergent rate it fails the build."""
    monkeypatch.chdir(ROOT)
    lr = yaml.safe_load(WORKFLOW.read_text())["jobs"]["lr-gate"]["env"]["LR"]
    report = load_report(SAVED_REPORT)
    assert report["complete"] and report["eta_max"] is not None
    ok = cli_runner().invoke(app, ["check", "--from-report", str(SAVED_REPORT), "--lr", lr])
    assert ok.exit_code == 0, ok.output
    divergent = min(p["lr"] for p in report["probes"] if p["phase"] == "divergent")
    bad = cli_runner().invoke(
        app, ["check", "--from-report", str(SAVED_REPORT), "--lr", repr(divergent * 1.5)]
    )
    assert bad.exit_code == 1 and "divergent" in bad.stdout
