"""The report (schema ``etafinder/report/v1``): a plain dict built from a ``Diagnosis``.

The report is what users keep, diff and gate CI on, so it is built to be **reproducible**: every
float is rounded to :data:`SIGNIFICANT_DIGITS` significant digits (``float(f"{x:.10g}")``,
deterministic and short), non-finite values (a probe's loss after it overflowed) are written as
``null``, and everything that may differ between two runs of the same inputs (timings, timestamps,
host, threads) lives under ``runtime``. A dict built here survives a YAML or JSON round trip
unchanged.

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so a failed
or interrupted run never leaves half a report, and never clobbers an existing one.

The top-level keys of contract §4 (``schema``, ``lambda0``, ``eta_crit``, ``eta_max``,
``recommended_lr``, ``recommended_phase``, ``probes``, ``complete``, ``runtime``) always exist; the
README documents the rest.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from .config import ProbeConfig
from .errors import InputError, ReportError
from .types import Diagnosis, Phase, ProbeResult

SCHEMA = "etafinder/report/v1"
#: The keys every report has (contract §4); more may be added, never removed.
REQUIRED_KEYS = (
    "schema",
    "lambda0",
    "eta_crit",
    "eta_max",
    "recommended_lr",
    "recommended_phase",
    "probes",
    "complete",
    "runtime",
)
# : Floats are rounded to this many significant digits: enough for any rate a user types, short to
# read,
#: and deterministic (so that reruns give byte-identical reports).
SIGNIFICANT_DIGITS = 10
# : At most this many points of each probe's loss trace are kept (evenly spaced, plus the peak and
# the
#: first non-finite step, so a catapult's spike and a divergence are never downsampled away).
TRACE_POINTS = 41
#: The unit of the ``cost`` section.
PASS_UNIT = "sample passes: one forward and one backward pass of one sample"

_HINT_REPORT = "Expected a file written by `etafinder probe PATH.py --report FILE`."


# ------------------------------------------------------------------------------------- values ----
def clean_float(x: float | None) -> float | None:
    """A float as the report stores it.

    Args:
        x: any real number (Python, numpy or a 0-d tensor), or ``None``.

    Returns:
        ``x`` rounded to :data:`SIGNIFICANT_DIGITS` significant digits, or ``None`` when it is
        ``None``
        or not finite.
    """
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    rounded = float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    return (
        rounded if math.isfinite(rounded) else x
    )  # rounding up past the largest float: keep it as is


def plain(obj: Any) -> Any:
    """Turn a value into what a report holds: dicts, lists, str, int, bool, rounded floats,
    ``None``.

    Args:
        obj: a value built from dicts, sequences, dataclasses, enums, paths, numbers (Python, numpy,
            0-d
            tensors) and strings.

    Returns:
        The plain equivalent (floats through :func:`clean_float`).

    Raises:
        TypeError: for a value with no plain equivalent (a bug in the caller).
    """
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, Enum):
        return plain(obj.value)
    if isinstance(obj, str):
        return str(
            obj
        )  # str subclasses (torch's version string) as plain str, which YAML can write
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return clean_float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    # numpy scalars and one-element tensors, without importing either here
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return plain(item())
        except (ValueError, RuntimeError):
            pass
    raise TypeError(f"cannot put a {type(obj).__name__} into a report")


def downsample(losses: Sequence[float]) -> dict[str, list]:
    """At most :data:`TRACE_POINTS` points of a loss trace, keeping its peak and first non-finite
    step.

    Args:
        losses: the loss at steps ``0..n-1``.

    Returns:
        ``{"step": [...], "loss": [...]}`` with ``loss`` values cleaned (non-finite as ``None``).
    """
    n = len(losses)
    if n <= TRACE_POINTS:
        keep = set(range(n))
    else:
        keep = {round(i * (n - 1) / (TRACE_POINTS - 1)) for i in range(TRACE_POINTS)}
        finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
        if finite:
            keep.add(max(finite, key=lambda i: losses[i]))
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is not None:
            keep.add(bad)
    steps = sorted(keep)
    return {"step": steps, "loss": [clean_float(losses[i]) for i in steps]}


# ----------------------------------------------------------------------------------- building ----
def environment() -> dict[str, str]:
    """Versions a reader needs to reproduce a report (identical between reruns on one installation).

    Returns:
        ``{"etafinder", "python", "torch", "numpy"}`` version strings.
    """
    import numpy
    import torch

    from . import __version__

    return {
        "etafinder": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


def runtime(*, started: float, finished: float, timings: Mapping[str, float] | None = None) -> dict:
    """The ``runtime`` section: the only part of a report that may differ between reruns.

    Args:
        started: ``time.time()`` when the run started.
        finished: ``time.time()`` when it finished (or was interrupted).
        timings: wall-clock seconds by part (e.g. ``Diagnosis.timings``).

    Returns:
        Timestamps (UTC, ISO 8601), wall time, timings, host, platform and thread counts.
    """
    import torch

    def iso(t: float) -> str:
        return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="seconds")

    return plain(
        {
            "started_at": iso(started),
            "finished_at": iso(finished),
            "wall_seconds": finished - started,
            "timings": dict(timings or {}),
            "host": platform.node(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],
        }
    )


def _probe_entry(p: ProbeResult, eta_crit: float | None, momentum: float) -> dict:
    t = p.trace
    finite = all(math.isfinite(v) for v in t.losses)
    edge = 2.0 * (1.0 + momentum) / t.lr
    return {
        "lr": t.lr,
        "lr_over_eta_crit": None if not eta_crit else t.lr / eta_crit,
        "phase": p.phase,
        "collapsed": p.collapsed,
        "source": p.source,
        "reason": p.reason,
        "steps": t.steps,
        "settled": t.settled,
        "start_loss": t.losses[0] if t.losses else None,
        "peak_loss": max(t.losses) if finite and t.losses else None,
        "final_loss": t.losses[-1] if t.losses else None,
        "curvature_start": t.curvature_start,
        "curvature_end": t.curvature_end,
        "curvature_end_converged": t.curvature_end_converged,
        # "final curvature as a multiple of 2(1+β)/η": ≤ 1 means at or below the stability edge
        "curvature_end_over_edge": None if t.curvature_end is None else t.curvature_end / edge,
        "grad_norm_start": t.grad_norm_start,
        "grad_norm_end": t.grad_norm_end,
        "dead_fraction": t.dead_fraction,
        "passes": t.passes,
        "loss_trace": downsample(t.losses),
    }


def _valid_for(momentum: float, samples: int | None, loss: str | None, curvature: str) -> dict:
    return {
        "optimizer": "torch.optim.SGD",
        "momentum": momentum,
        "dampening": 0.0,
        "nesterov": False,
        "full_batch": True,
        "samples": samples,
        "loss": loss,
        "curvature": curvature,
        "statement": (
            f"full-batch gradient descent (torch.optim.SGD, momentum={momentum:g}, dampening=0, "
            f"nesterov=False) on the probe set of {samples} samples with loss {loss}, "
            f"started from the model's weights as loaded"
        ),
    }


def build_report(
    diagnosis: Diagnosis | None,
    info: Mapping[str, Any],
    config: ProbeConfig,
    *,
    runtime: Mapping[str, Any],
    complete: bool = True,
) -> dict:
    """Assemble the report of one diagnosis.

    Args:
        diagnosis: what :func:`etafinder.diagnose.diagnose` found; for a partial report, what it had
            found
            when interrupted (``None`` when it was interrupted before λ₀ was known).
        info: provenance from :func:`etafinder.loading.load_problem` (files, hashes, data, seed,
            dtype, ...).
        config: the configuration of the run.
        runtime: the ``runtime`` section (see :func:`runtime`).
        complete: ``False`` for a partial report written after an interrupt.

    Returns:
        The report as a plain dict (see the module docstring); key order is the order written.
    """
    d = diagnosis
    momentum = d.momentum if d is not None else config.momentum
    info = dict(info)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "complete": complete,
        "lambda0": None if d is None else d.lambda0.value,
        "lambda0_std": None if d is None or d.spread is None else d.spread.std,
        "eta_crit": None if d is None else d.eta_crit,
        "eta_max": None if d is None else d.eta_max,
        "eta_max_bracket": None if d is None else d.eta_max_bracket,
        "recommended_lr": None if d is None else d.recommended_lr,
        "recommended_phase": None if d is None else d.recommended_phase,
        "recommendation_reason": None if d is None else d.recommendation_reason,
        "valid_for": _valid_for(
            momentum,
            d.samples if d is not None else info.get("samples"),
            d.loss if d is not None else info.get("loss"),
            config.curvature,
        ),
        "probes": []
        if d is None
        else [_probe_entry(p, d.eta_crit, momentum) for p in sorted(d.probes, key=lambda p: p.lr)],
        "start": None
        if d is None
        else {
            "loss": d.start_loss,
            "constant_loss": d.constant_loss,
            "trained_start": d.trained_start,
        },
        "lambda0_solver": None if d is None else _solver(d, config),
        "thresholds": None if d is None else d.thresholds,
        "cost": {"unit": PASS_UNIT, **(d.passes if d is not None else {})},
        "inputs": info,
        "config": config.to_dict(),
        "environment": environment(),
        "runtime": dict(runtime),
    }
    return plain(report)


def _solver(d: Diagnosis, config: ProbeConfig) -> dict:
    e = d.lambda0
    return {
        "value": e.value,
        "method": e.method,
        "space": e.space,
        "curvature": e.curvature,
        "linearization": e.linearization,
        "iterations": e.iterations,
        "matvecs": e.matvecs,
        "residual": e.residual,
        "converged": e.converged,
        "tol": config.tol,
        "max_iter": config.max_iter,
        "history": e.history,
        "spread": d.spread,
    }


# ------------------------------------------------------------------------------------ writing ----
# libyaml when present: the same documents, several times faster to read
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# : characters PyYAML's pure-Python emitter would write unescaped in a plain scalar and read back
# changed
_LINE_BREAKS = frozenset("\x85\u2028\u2029\ufeff")


class _Dumper(_SafeDumper):  # type: ignore[misc, valid-type]
    """Block style for mappings, flow style (one line) for lists of scalars such as loss traces."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = bool(data) and all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    odd = any(ch in _LINE_BREAKS or not ch.isprintable() for ch in data)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if odd else None)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def dump_yaml(report: Mapping[str, Any]) -> str:
    """The report as YAML text.

    Args:
        report: a report dict (plain values only).

    Returns:
        YAML, keys in the report's order, unicode kept.
    """
    return yaml.dump(
        dict(report),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def dump_json(report: Mapping[str, Any]) -> str:
    """The report as JSON text (strict: no ``NaN``/``Infinity``).

    Args:
        report: a report dict (plain values only).

    Returns:
        Indented JSON ending in a newline.
    """
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write a file atomically: a temporary file beside it, then ``os.replace``.

    Args:
        path: the file to write.
        data: its content.

    Raises:
        InputError: when the folder does not exist or is not writable (the target is left
            untouched).
    """
    path = Path(path)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(
            f"{path}: cannot write there: {e.strerror or e}",
            "Check that the folder exists and is writable.",
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InputError(
                f"{path}: cannot write: {e.strerror or e}", "Check the path and the free space."
            ) from None
        raise


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Fail early, before a long run, when ``path`` could not be written later.

    Args:
        path: a file to be written.
        option: the option that named it, for the message.

    Raises:
        InputError: when its folder is missing or not writable, or it is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; expected a file name")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(
            f"{option} {path}: folder {folder} does not exist",
            "Create it first, or write the file somewhere else.",
        )
    if not os.access(folder, os.W_OK):
        raise InputError(f"{option} {path}: folder {folder} is not writable")


def is_json_path(path: str | os.PathLike) -> bool:
    """Whether a report path is written as JSON (``.json``) rather than YAML."""
    return Path(path).suffix.lower() == ".json"


def write_report(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    """Write a report atomically: JSON when ``path`` ends in ``.json``, YAML otherwise.

    Args:
        path: the report file.
        report: the report dict.
    """
    text = dump_json(report) if is_json_path(path) else dump_yaml(report)
    atomic_write(path, text.encode("utf-8"))


def partial_path(path: str | os.PathLike) -> Path:
    """Where the partial report of an interrupted run goes: ``FILE.partial`` beside ``FILE``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


# ------------------------------------------------------------------------------------ reading ----
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_report(report: Any, source: str) -> dict:
    """Check that a parsed document is an ``etafinder/report/v1`` report.

    Args:
        report: the parsed document.
        source: where it came from (the file name), for messages.

    Returns:
        The report.

    Raises:
        ReportError: naming ``source`` and what is wrong.
    """
    if not isinstance(report, dict) or "schema" not in report:
        raise ReportError(f"{source}: not an etafinder report (no `schema` key)", _HINT_REPORT)
    schema = report["schema"]
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("etafinder/report/"):
            raise ReportError(
                f"{source}: unknown report schema {schema!r}; this etafinder reads {SCHEMA}",
                "Use the etafinder version that wrote it, or probe again with this one.",
            )
        raise ReportError(f"{source}: not an etafinder report (schema {schema!r})", _HINT_REPORT)
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ReportError(f"{source}: report is missing {', '.join(missing)}", _HINT_REPORT)
    if not isinstance(report["complete"], bool):
        raise ReportError(f"{source}: `complete` must be true or false, got {report['complete']!r}")
    complete = report["complete"]
    for key in ("lambda0", "eta_crit", "recommended_lr"):
        v = report[key]
        if not (_is_number(v) or (v is None and not complete)):
            raise ReportError(f"{source}: `{key}` must be a number, got {v!r}", _HINT_REPORT)
    if not (report["eta_max"] is None or _is_number(report["eta_max"])):
        raise ReportError(
            f"{source}: `eta_max` must be a number or null, got {report['eta_max']!r}"
        )
    if complete and report["recommended_phase"] not in (Phase.LAZY.value, Phase.CATAPULT.value):
        raise ReportError(
            f"{source}: `recommended_phase` must be lazy or catapult, "
            f"got {report['recommended_phase']!r}"
        )
    probes = report["probes"]
    if not isinstance(probes, list):
        raise ReportError(f"{source}: `probes` must be a list, got {type(probes).__name__}")
    phases = {p.value for p in Phase}
    for i, p in enumerate(probes):
        if not isinstance(p, dict):
            raise ReportError(f"{source}: probes[{i}] must be a mapping")
        if not (_is_number(p.get("lr")) and p["lr"] > 0):
            raise ReportError(
                f"{source}: probes[{i}].lr must be a positive number, got {p.get('lr')!r}"
            )
        if p.get("phase") not in phases:
            raise ReportError(
                f"{source}: probes[{i}].phase must be one of {', '.join(sorted(phases))}, "
                f"got {p.get('phase')!r}"
            )
        if not isinstance(p.get("collapsed"), bool):
            raise ReportError(
                f"{source}: probes[{i}].collapsed must be true or false, got {p.get('collapsed')!r}"
            )
    return report


def parse_report(text: str, source: str, *, as_json: bool = False) -> dict:
    """Parse and validate report text.

    Args:
        text: YAML or JSON.
        source: where it came from, for messages.
        as_json: parse as JSON (otherwise YAML, which also reads the JSON this module writes).

    Returns:
        The validated report.

    Raises:
        ReportError: for text that does not parse or is not a report.
    """
    try:
        doc = json.loads(text) if as_json else yaml.load(text, Loader=_SafeLoader)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReportError(
            f"{source}: not an etafinder report: cannot parse it ({first})", _HINT_REPORT
        ) from None
    return validate_report(doc, source)


def load_report(path: str | os.PathLike) -> dict:
    """Read and validate a report file.

    Args:
        path: a ``.yaml``/``.yml`` or ``.json`` report.

    Returns:
        The report dict.

    Raises:
        ReportError: when the file is missing, unreadable, or not an ``etafinder/report/v1`` report.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file", _HINT_REPORT) from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a folder, not a report file", _HINT_REPORT) from None
    except OSError as e:
        raise ReportError(f"{path}: cannot read it: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError(
            f"{path}: not an etafinder report (binary, not YAML or JSON)", _HINT_REPORT
        ) from None
    return parse_report(text, str(path), as_json=is_json_path(path))
