"""etafinder: theory-backed learning rates for PyTorch (Lewkowycz et al. 2020, arXiv:2003.02218).

The library API, for use from Python (the CLI is a thin layer over it)::

    from etafinder import build_report, diagnose, load_problem, phase_for_lr

    loaded = load_problem("examples/mlp_digits.py", samples=512)
    diagnosis = diagnose(loaded.problem, rest=(loaded.rest_inputs, loaded.rest_targets))
    print(diagnosis.eta_crit, diagnosis.eta_max, diagnosis.recommended_lr)
"""

from __future__ import annotations

__version__ = "0.1.0"

# Imported eagerly, not lazily: `diagnose` and `recommend` are both a submodule and a function, and
# only an import here guarantees that `etafinder.diagnose` is always the function.
from .config import ProbeConfig, check_optimizer
from .curvature import Lambda0Estimate, estimate_lambda0
from .diagnose import Interrupted, diagnose, probe_rate
from .errors import EtafinderError, InputError, ReportError
from .gate import ExitCode, Verdict, decide, phase_for_lr
from .loading import LoadedProblem, load_problem
from .phases import THRESHOLDS, classify
from .problem import Problem
from .recommend import recommend
from .report import SCHEMA, build_report, load_report, write_report
from .types import Diagnosis, Phase, ProbeResult, ProbeTrace, Spread

__all__ = [
    "SCHEMA",
    "THRESHOLDS",
    "Diagnosis",
    "EtafinderError",
    "ExitCode",
    "InputError",
    "Interrupted",
    "Lambda0Estimate",
    "LoadedProblem",
    "Phase",
    "ProbeConfig",
    "ProbeResult",
    "ProbeTrace",
    "Problem",
    "ReportError",
    "Spread",
    "Verdict",
    "__version__",
    "build_report",
    "check_optimizer",
    "classify",
    "decide",
    "diagnose",
    "estimate_lambda0",
    "load_problem",
    "load_report",
    "phase_for_lr",
    "probe_rate",
    "recommend",
    "write_report",
]
