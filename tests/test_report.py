"""The report: required keys, rounding, YAML/JSON round trips, atomic writes, validation on load."""

from __future__ import annotations

import json
import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnosis_fixtures import make_diagnosis, make_report, probe
from etafinder.config import ProbeConfig
from etafinder.errors import InputError, ReportError
from etafinder.report import (
    REQUIRED_KEYS,
    SCHEMA,
    TRACE_POINTS,
    atomic_write,
    clean_float,
    downsample,
    dump_json,
    dump_yaml,
    load_report,
    parse_report,
    partial_path,
    plain,
    write_report,
)
from etafinder.types import Phase


def test_contract_keys_and_values():
    """Every contract key is there, with the diagnosis' values and probes sorted by lr."""
    r = make_report()
    for key in REQUIRED_KEYS:
        assert key in r
    assert r["schema"] == SCHEMA
    assert r["complete"] is True
    assert r["lambda0"] == 12.5
    assert r["eta_crit"] == 0.16
    assert r["eta_max"] == clean_float(math.sqrt(0.58 * 0.62))
    assert r["recommended_lr"] == 0.32 and r["recommended_phase"] == "catapult"
    lrs = [p["lr"] for p in r["probes"]]
    assert lrs == sorted(lrs) and len(lrs) == 6
    assert {p["phase"] for p in r["probes"]} == {"lazy", "catapult", "divergent"}
    assert all(p["collapsed"] is False for p in r["probes"])


def test_reader_sections():
    """What a reader needs to trust and reproduce it is in the report."""
    r = make_report()
    assert r["valid_for"]["optimizer"] == "torch.optim.SGD"
    assert r["valid_for"]["momentum"] == 0.0 and r["valid_for"]["samples"] == 64
    assert r["valid_for"]["full_batch"] is True
    assert set(r["environment"]) == {"etafinder", "python", "torch", "numpy"}
    assert r["inputs"]["model_sha256"] == "0" * 64
    assert r["thresholds"]["rise"]["description"]
    assert (
        r["lambda0_solver"]["method"] == "lanczos"
        and r["lambda0_solver"]["spread"]["subset_size"] == 64
    )
    assert r["lambda0_std"] == 0.37
    assert r["cost"]["total"] == r["cost"]["lambda0"] + r["cost"]["spread"] + r["cost"]["probes"]
    assert r["config"]["max_steps"] == ProbeConfig().max_steps


def test_probe_entries():
    """Each probe carries its trace (downsampled), steps, reason and derived numbers."""
    r = make_report()
    cat = next(p for p in r["probes"] if p["lr"] == 0.32)
    assert cat["lr_over_eta_crit"] == 2.0
    assert cat["peak_loss"] > 10 * cat["start_loss"]
    assert cat["curvature_end_over_edge"] == clean_float((1.5 / 0.32) / (2 / 0.32))
    assert cat["reason"] == "synthetic catapult" and cat["steps"] == 60
    assert len(cat["loss_trace"]["loss"]) <= TRACE_POINTS + 2
    div = r["probes"][-1]
    assert div["phase"] == "divergent" and div["peak_loss"] is None and div["curvature_end"] is None
    assert div["loss_trace"]["loss"][-1] is None  # the overflow is kept, as null


def test_eta_max_null_round_trips(tmp_path):
    """No divergent probe: eta_max is null and stays null through YAML and JSON."""
    d = make_diagnosis((probe(0.08, Phase.LAZY), probe(0.3, Phase.CATAPULT)), bracket=None)
    r = make_report(d)
    assert r["eta_max"] is None and r["eta_max_bracket"] is None
    for name in ("r.yaml", "r.json"):
        write_report(tmp_path / name, r)
        assert load_report(tmp_path / name) == r
    assert "eta_max: null" in dump_yaml(r)


def test_partial_report_without_diagnosis():
    """Interrupted before λ₀: a valid report with complete false and nulls."""
    r = make_report(None, complete=False)
    assert r["complete"] is False and r["lambda0"] is None and r["probes"] == []
    assert parse_report(dump_yaml(r), "x") == r


def test_floats_rounded_deterministically():
    """Floats keep 10 significant digits; non-finite become null; ints and bools stay."""
    assert clean_float(0.1 + 0.2) == 0.3
    assert clean_float(1 / 3) == 0.3333333333
    assert clean_float(math.inf) is None and clean_float(math.nan) is None
    assert plain({"a": (1, True, 2.0, None), "b": Phase.LAZY}) == {
        "a": [1, True, 2.0, None],
        "b": "lazy",
    }
    import numpy as np
    import torch

    assert plain([np.float32(0.5), np.int64(3), torch.tensor(2.5)]) == [0.5, 3, 2.5]
    with pytest.raises(TypeError):
        plain(object())


def test_downsample_keeps_peak_and_overflow():
    """A long trace keeps its first and last step, its peak and its first non-finite step."""
    losses = [1.0] * 500
    losses[123] = 99.0
    losses[400:] = [math.inf] * 100
    d = downsample(losses)
    assert d["step"][0] == 0 and d["step"][-1] == 499
    assert 123 in d["step"] and 400 in d["step"]
    assert len(d["step"]) <= TRACE_POINTS + 2
    assert d["loss"][d["step"].index(123)] == 99.0 and d["loss"][d["step"].index(400)] is None
    assert downsample([1.0, 2.0]) == {"step": [0, 1], "loss": [1.0, 2.0]}


def test_yaml_is_readable_and_strict_json():
    """YAML keeps key order and writes traces on one line; JSON has no NaN/Infinity."""
    r = make_report()
    text = dump_yaml(r)
    assert text.startswith("schema: etafinder/report/v1\ncomplete: true\nlambda0: 12.5\n")
    assert "  loss: [" in text
    j = dump_json(r)
    assert "NaN" not in j and "Infinity" not in j
    assert json.loads(j) == r


def test_identical_inputs_identical_text():
    """Two reports of the same diagnosis are byte-identical apart from runtime."""
    a, b = make_report(), make_report()
    b["runtime"] = {"wall_seconds": 99.0}
    a.pop("runtime"), b.pop("runtime")
    assert dump_yaml(a) == dump_yaml(b)


# --------------------------------------------------------------------------------- hypothesis ----
finite = st.floats(allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)
text = st.text(max_size=20)
scalars = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | finite | text
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4), max_leaves=20
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.dictionaries(text, values, max_size=5))
def test_round_trip_any_plain_content(extra):
    """Any plain content a report may hold survives YAML and JSON unchanged."""
    r = make_report(None, complete=False)  # small, so that many examples run
    r["extra"] = plain(extra)
    assert parse_report(dump_yaml(r), "r.yaml") == r
    assert parse_report(dump_json(r), "r.json", as_json=True) == r


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lambda0=st.floats(1e-6, 1e6),
    runs=st.lists(
        st.tuples(
            st.floats(1e-6, 1e3),
            st.sampled_from(list(Phase)),
            st.booleans(),
            st.lists(any_float, min_size=1, max_size=80),
        ),
        min_size=1,
        max_size=6,
    ),
    eta_max=st.none() | st.floats(1e-6, 1e3),
    momentum=st.floats(0, 0.99),
)
def test_round_trip_built_reports(lambda0, runs, eta_max, momentum):
    """Reports built from arbitrary diagnoses (nan/inf losses, null eta_max) round-trip exactly."""
    probes = tuple(
        probe(lr, ph, collapsed=c, losses=tuple(ls), momentum=momentum) for lr, ph, c, ls in runs
    )
    d = make_diagnosis(probes, eta_max=eta_max, bracket=None, lambda0=lambda0, momentum=momentum)
    r = make_report(d)
    assert parse_report(dump_yaml(r), "r.yaml") == r
    assert parse_report(dump_json(r), "r.json", as_json=True) == r


# -------------------------------------------------------------------------------------- files ----
def test_atomic_write_never_clobbers_on_failure(tmp_path, monkeypatch):
    """A write that fails half-way leaves the old file byte-identical and no temporary file."""
    target = tmp_path / "r.yaml"
    target.write_bytes(b"old")

    def boom(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(InputError, match="No space left"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.yaml"]


def test_write_into_missing_folder(tmp_path):
    """A report into a folder that does not exist is a clear InputError."""
    with pytest.raises(InputError, match="cannot write"):
        write_report(tmp_path / "nope" / "r.yaml", make_report())


def test_partial_path():
    """FILE.partial sits beside FILE."""
    assert str(partial_path("out/r.yaml")) == os.path.join("out", "r.yaml.partial")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("just text", "not an etafinder report"),
        ("- a\n- b\n", "not an etafinder report"),
        ("schema: something/else\n", "not an etafinder report"),
        ("schema: etafinder/report/v9\n", "unknown report schema 'etafinder/report/v9'"),
        ("schema: etafinder/report/v1\nlambda0: 1.0\n", "missing eta_crit"),
        ("a: [unclosed", "cannot parse"),
    ],
    ids=["text", "list", "other-schema", "newer-schema", "missing-keys", "bad-yaml"],
)
def test_load_rejects_non_reports(tmp_path, content, match):
    """Files that are not v1 reports are ReportErrors naming the file."""
    path = tmp_path / "r.yaml"
    path.write_text(content)
    with pytest.raises(ReportError, match=match) as e:
        load_report(path)
    assert str(path) in e.value.message


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("lambda0", "big", "`lambda0` must be a number"),
        ("eta_max", "x", "`eta_max` must be a number or null"),
        ("recommended_phase", "divergent", "`recommended_phase` must be lazy or catapult"),
        ("complete", "yes", "`complete` must be true or false"),
        ("probes", {"a": 1}, "`probes` must be a list"),
    ],
)
def test_load_rejects_bad_values(tmp_path, key, value, match):
    """Wrongly typed contract keys are rejected with the key's name."""
    r = make_report()
    r[key] = value
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    with pytest.raises(ReportError, match=match):
        load_report(path)


def test_load_rejects_bad_probe(tmp_path):
    """A probe with an unknown phase names its index."""
    r = make_report()
    r["probes"][2]["phase"] = "chaotic"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(r))
    with pytest.raises(ReportError, match=r"probes\[2\]\.phase"):
        load_report(path)


def test_load_missing_and_binary(tmp_path):
    """A missing file and a binary file are ReportErrors, not tracebacks."""
    with pytest.raises(ReportError, match="no such report file"):
        load_report(tmp_path / "missing.yaml")
    (tmp_path / "b.yaml").write_bytes(b"\x80\x81\xff\x00")
    with pytest.raises(ReportError, match="binary"):
        load_report(tmp_path / "b.yaml")
