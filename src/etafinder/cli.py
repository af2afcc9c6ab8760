"""The command line: ``etafinder probe`` and ``etafinder check`` (contract §3), a thin typer layer.

The work happens elsewhere: :mod:`etafinder.loading` reads the user's files,
:mod:`etafinder.diagnose` measures, :mod:`etafinder.report` builds and writes the report,
:mod:`etafinder.gate` decides ``check``, :mod:`etafinder.render` draws. This module parses options,
wires those together and maps outcomes to exit codes (:class:`etafinder.gate.ExitCode`):

* :class:`~etafinder.errors.EtafinderError` → a short message on stderr (first line: the file or
  option and the problem; then a blank line and the hint), exit 2; ``--debug`` adds the traceback;
* Ctrl-C → exit 130, with the partial report in ``FILE.partial`` when ``--report FILE`` was given;
* anything else is a bug in etafinder → a one-line message and exit 3 (``--debug``: the traceback).

Streams: the result goes to stdout (tables, the ``check`` verdict, or with ``--json`` the report as
JSON and nothing else); progress, warnings and errors go to stderr, and so does anything the user's
model file prints.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from . import __version__
from .config import ProbeConfig, check_optimizer
from .errors import EtafinderError, InputError, ReportError
from .gate import ExitCode, Verdict, decide, parse_allowed, phase_for_lr
from .render import ProgressDisplay, make_console, summary, verdict_line
from .report import (
    build_report,
    check_writable,
    dump_json,
    load_report,
    partial_path,
    runtime,
    write_report,
)
from .types import Phase

_DEFAULTS = ProbeConfig()

app = typer.Typer(
    name="etafinder",
    help=(
        "Learning-rate diagnostics for PyTorch: λ₀ of the NTK / Gauss–Newton matrix, η_crit = "
        "2(1+β)/λ₀, "
        "probes of the lazy, catapult and divergent phases (Lewkowycz et al. 2020), and a CI gate."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ------------------------------------------------------------------------------------ options ----
ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="PATH.py",
        show_default=False,
        help=(
            "The model file: defines model() and data() (or use --data), optionally loss and "
            "forward(model, x). "
            "PATH.py:factory names another factory than model()."
        ),
    ),
]
CheckpointOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        metavar="FILE",
        show_default=False,
        help=(
            "Weights loaded strictly into model(): a state_dict .pt/.pth (read with "
            "weights_only=True), a "
            ".safetensors file, or a Lightning .ckpt."
        ),
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help=(
            "Allow a checkpoint that holds pickled code to run it when loaded. Only for files "
            "you trust."
        ),
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="FILE",
        show_default=False,
        help="Data instead of data(): a .pt dict with x and y, or an .npz with arrays x and y.",
    ),
]
SamplesOpt = Annotated[
    int | None,
    typer.Option(
        "--samples",
        metavar="N",
        show_default=False,
        help=(
            "Probe on one seeded random subset of N samples (default: all of them). λ₀ and "
            "every probe use "
            "the same subset; the rest of the data gives λ₀'s sampling spread."
        ),
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help=(
            "Seeds random, numpy and torch before model() and data(), the probe subset and the "
            "solver."
        ),
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Where to compute: cpu, cuda, cuda:1, mps, ...")
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        show_default=False,
        help=(
            "float32 or float64: convert the built model and data (default: the model's own dtype)."
        ),
    ),
]
LossOpt = Annotated[
    str | None,
    typer.Option(
        "--loss",
        show_default=False,
        help=(
            "mse or cross_entropy, overriding the model file's `loss` (default: the file's, "
            "else mse)."
        ),
    ),
]
OptimizerOpt = Annotated[
    str,
    typer.Option(
        "--optimizer",
        help="The optimizer the thresholds are for. v1 answers for sgd (plain or heavy-ball) only.",
    ),
]
MomentumOpt = Annotated[
    float,
    typer.Option(
        "--momentum",
        metavar="β",
        help="Heavy-ball momentum β of torch.optim.SGD; η_crit = 2(1+β)/λ₀.",
    ),
]
DampeningOpt = Annotated[
    float,
    typer.Option(
        "--dampening",
        help="SGD dampening. v1 supports 0 only (refused otherwise rather than answered wrong).",
    ),
]
NesterovOpt = Annotated[
    bool,
    typer.Option(
        "--nesterov",
        help="Nesterov momentum. Not supported in v1 (refused rather than answered wrong).",
    ),
]
LrsOpt = Annotated[
    str | None,
    typer.Option(
        "--lrs",
        metavar="LIST",
        show_default=False,
        help=(
            "Candidate rates, comma-separated: absolute (0.01,0.1,0.5) or multiples of η_crit "
            "(x0.5,x2,x4). Default: multiples "
            + ",".join(f"x{g:g}" for g in _DEFAULTS.grid)
            + ", extended until one diverges, then η_max bisected."
        ),
    ),
]
StepsOpt = Annotated[
    int,
    typer.Option(
        "--steps",
        metavar="N",
        help="The most full-batch steps of one probe (probes stop early once settled).",
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        metavar="FILE",
        show_default=False,
        help=(
            "Write the report: YAML, or JSON when FILE ends in .json. Written atomically; an "
            "interrupted run "
            "writes FILE.partial and leaves FILE alone."
        ),
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the report as JSON on stdout and nothing else there (tables go to stderr).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress and no tables: probe prints only the recommended rate, check only "
        "its verdict.",
    ),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="FILE.png",
        show_default=False,
        help="Draw every probe's loss and end curvature, with η_crit and η_max, into an image "
        "(needs matplotlib: the `plot` extra of etafinder).",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]

#: ``check`` options that only mean something when probing a model file (not with --from-report)
_MODEL_ONLY = (
    "checkpoint",
    "trust_checkpoint",
    "data",
    "samples",
    "seed",
    "device",
    "dtype",
    "loss",
    "lrs",
    "steps",
    "report",
    "plot",
)


@dataclass(frozen=True)
class _Run:
    """The options of one diagnosis, as parsed from the command line."""

    model: str
    checkpoint: str | None
    trust_checkpoint: bool
    data: str | None
    samples: int | None
    device: str
    dtype: str | None
    loss: str | None
    config: ProbeConfig
    report: Path | None
    plot: Path | None


@dataclass
class _Streams:
    """Where things go: ``out`` the result, ``err`` progress and warnings, ``tables`` the tables."""

    out: Console
    err: Console
    tables: Console | None


# ------------------------------------------------------------------------------------ helpers ----
def _error(message: str, hint: str | None) -> None:
    # plain writes, not rich: a message may hold brackets that rich would read as markup
    sys.stderr.write(f"Error: {message}\n")
    if hint:
        sys.stderr.write(f"\n{hint}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _boundary(debug: bool) -> Iterator[None]:
    """The one place exceptions become exit codes."""
    try:
        yield
    except typer.Exit:
        raise
    except EtafinderError as e:
        if debug:
            traceback.print_exception(e)
        _error(e.message, e.hint)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted.\n")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as e:
        if debug:
            traceback.print_exception(e)
        _error(
            f"internal error: {type(e).__name__}: {e}",
            "This is a bug in etafinder (or an unusual model it does not handle yet). "
            "Rerun with --debug for the traceback, and please report it.",
        )
        raise typer.Exit(ExitCode.INTERNAL) from None


def _check_lr(value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"--lr {value}: expected a positive, finite learning rate", "For example: --lr 0.1"
        )


def parse_lrs(text: str) -> dict[str, tuple[float, ...]]:
    """Parse ``--lrs``: absolute rates, or ``xK`` multiples of η_crit (not both).

    Args:
        text: comma-separated, e.g. ``"0.01,0.1"`` or ``"x0.5,x2,x4"``.

    Returns:
        ``{"lrs": ...}`` or ``{"grid": ...}`` for :class:`ProbeConfig`, sorted.

    Raises:
        InputError: for an empty list, a bad entry, or a mix of both kinds.
    """
    hint = "For example: --lrs 0.01,0.1,0.5 (rates) or --lrs x0.5,x2,x4 (multiples of η_crit)."
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"--lrs {text!r}: no rates given", hint)
    absolute, multiples = [], []
    for item in items:
        relative = item[0] in "xX×*"
        try:
            value = float(item[1:] if relative else item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise InputError(
                f"--lrs {text}: {item!r} is not a positive rate or xK multiple of η_crit", hint
            )
        (multiples if relative else absolute).append(value)
    if absolute and multiples:
        raise InputError(
            f"--lrs {text}: mixes absolute rates and multiples of η_crit; use one kind", hint
        )
    return {"lrs": tuple(sorted(absolute))} if absolute else {"grid": tuple(sorted(multiples))}


def _config(
    *,
    seed: int,
    optimizer: str,
    momentum: float,
    dampening: float,
    nesterov: bool,
    lrs: str | None,
    steps: int,
) -> ProbeConfig:
    check_optimizer(optimizer, momentum, dampening, nesterov)
    if steps < 1:
        raise InputError(
            f"--steps {steps}: expected a positive number of steps",
            f"The default is --steps {_DEFAULTS.max_steps}.",
        )
    extra = parse_lrs(lrs) if lrs is not None else {}
    return replace(
        _DEFAULTS,
        seed=seed,
        momentum=momentum,
        max_steps=steps,
        min_steps=min(_DEFAULTS.min_steps, steps),
        **extra,
    )


def _streams(*, json_: bool, quiet: bool) -> _Streams:
    out, err = make_console(), make_console(stderr=True)
    return _Streams(out=out, err=err, tables=None if quiet else (err if json_ else out))


def _check_outputs(run: _Run) -> None:
    """Fail before the run, not after it, when an output could not be written."""
    if run.report is not None:
        check_writable(run.report, "--report")
    if run.plot is not None:
        from .plot import check_plot_path

        check_writable(run.plot, "--plot")
        check_plot_path(run.plot)


def _diagnose(run: _Run, streams: _Streams, started: float, *, lr: float | None = None) -> dict:
    """Load the problem and diagnose it (probing ``lr`` too if the probes do not decide it).

    Returns the report. Ctrl-C during the diagnosis writes ``FILE.partial`` (with ``--report
    FILE``) and exits 130.
    """
    from .diagnose import Interrupted, diagnose, probe_rate
    from .loading import load_problem

    def warn(message: str) -> None:
        streams.err.print(f"Warning: {message}", markup=False, highlight=False)

    # whatever the user's code prints goes to stderr: stdout holds only the result
    with contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        loaded = load_problem(
            run.model,
            checkpoint=run.checkpoint,
            data=run.data,
            samples=run.samples,
            seed=run.config.seed,
            dtype=run.dtype,
            device=run.device,
            loss=run.loss,
            trust_checkpoint=run.trust_checkpoint,
            warn=warn,
        )
        load_s = time.perf_counter() - t0
        rest = (loaded.rest_inputs, loaded.rest_targets) if loaded.rest_inputs.shape[0] else None

        def build(d: Any, complete: bool = True) -> dict:
            timings = {"load_s": load_s, **(d.timings if d is not None else {})}
            rt = runtime(started=started, finished=time.time(), timings=timings)
            return build_report(d, loaded.info, run.config, runtime=rt, complete=complete)

        with ProgressDisplay(streams.err, enabled=streams.tables is not None) as progress:
            diagnosis = None
            try:
                diagnosis = diagnose(loaded.problem, run.config, rest=rest, progress=progress)
                report = build(diagnosis)
                if lr is not None and not phase_for_lr(report, lr).decided:
                    diagnosis = probe_rate(
                        loaded.problem, diagnosis, lr, run.config, progress=progress
                    )
                    report = build(diagnosis)
            except (Interrupted, KeyboardInterrupt) as e:
                # Interrupted carries the probes so far; a Ctrl-C while probing check's rate
                # leaves the finished diagnosis
                partial = e.partial if isinstance(e, Interrupted) else diagnosis
                if run.report is not None:
                    write_report(partial_path(run.report), build(partial, complete=False))
                    sys.stderr.write(
                        f"\nInterrupted: partial report in {partial_path(run.report)}\n"
                    )
                else:
                    sys.stderr.write("\nInterrupted.\n")
                raise typer.Exit(ExitCode.INTERRUPTED) from None
    return report


def _measure(run: _Run, streams: _Streams, started: float, *, lr: float | None = None) -> dict:
    """The whole of a run on a model file: check the outputs, diagnose, write, print the tables."""
    _check_outputs(run)
    result = _diagnose(run, streams, started, lr=lr)
    if run.report is not None:
        write_report(run.report, result)
    if run.plot is not None:
        from .plot import write_plot

        write_plot(result, run.plot)
    if streams.tables is not None:
        summary(result, streams.tables)
    return result


def _json_out(document: dict) -> None:
    sys.stdout.write(dump_json(document))
    sys.stdout.flush()


# ----------------------------------------------------------------------------------- commands ----
def _version(value: bool) -> None:
    if value:
        typer.echo(f"etafinder {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Learning-rate diagnostics for PyTorch (the app's help is set on ``app``)."""


@app.command()
def probe(
    model: ModelArg,
    checkpoint: CheckpointOpt = None,
    trust_checkpoint: TrustOpt = False,
    data: DataOpt = None,
    samples: SamplesOpt = None,
    seed: SeedOpt = _DEFAULTS.seed,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    loss: LossOpt = None,
    optimizer: OptimizerOpt = "sgd",
    momentum: MomentumOpt = _DEFAULTS.momentum,
    dampening: DampeningOpt = 0.0,
    nesterov: NesterovOpt = False,
    lrs: LrsOpt = None,
    steps: StepsOpt = _DEFAULTS.max_steps,
    report: ReportOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    plot: PlotOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Estimate λ₀, probe candidate rates, find η_max, and recommend a learning rate."""
    started = time.time()
    with _boundary(debug):
        run = _Run(
            model,
            checkpoint,
            trust_checkpoint,
            data,
            samples,
            device,
            dtype,
            loss,
            _config(
                seed=seed,
                optimizer=optimizer,
                momentum=momentum,
                dampening=dampening,
                nesterov=nesterov,
                lrs=lrs,
                steps=steps,
            ),
            report,
            plot,
        )
        streams = _streams(json_=json_, quiet=quiet)
        result = _measure(run, streams, started)
        if json_:
            _json_out(result)
        elif quiet:
            sys.stdout.write(f"{result['recommended_lr']!r}\n")


@app.command()
def check(
    ctx: typer.Context,
    lr: Annotated[
        float,
        typer.Option("--lr", metavar="X", show_default=False, help="The learning rate to gate."),
    ],
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="PATH.py",
            show_default=False,
            help="The model file to probe (as for `probe`); or leave it out and use --from-report.",
        ),
    ] = None,
    from_report: Annotated[
        Path | None,
        typer.Option(
            "--from-report",
            metavar="FILE",
            show_default=False,
            help=(
                "Decide from a saved report, without recomputing. Inside an unresolved bracket "
                "(between "
                "probes of different phases) the worse phase is taken, and the verdict says so."
            ),
        ),
    ] = None,
    allow: Annotated[
        str,
        typer.Option(
            "--allow",
            metavar="PHASES",
            help="Phases that pass, comma-separated. A collapsed rate never passes.",
        ),
    ] = "lazy,catapult",
    checkpoint: CheckpointOpt = None,
    trust_checkpoint: TrustOpt = False,
    data: DataOpt = None,
    samples: SamplesOpt = None,
    seed: SeedOpt = _DEFAULTS.seed,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = None,
    loss: LossOpt = None,
    optimizer: OptimizerOpt = "sgd",
    momentum: MomentumOpt = _DEFAULTS.momentum,
    dampening: DampeningOpt = 0.0,
    nesterov: NesterovOpt = False,
    lrs: LrsOpt = None,
    steps: StepsOpt = _DEFAULTS.max_steps,
    report: ReportOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    plot: PlotOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Gate a learning rate: exit 0 if its phase is allowed, 1 if not, 2 on bad input.

    Not allowed: a phase outside --allow (default lazy,catapult) or a collapsed run.
    """
    started = time.time()
    with _boundary(debug):
        _check_lr(lr)
        allowed = parse_allowed(allow)
        check_optimizer(optimizer, momentum, dampening, nesterov)
        streams = _streams(json_=json_, quiet=quiet)
        if from_report is not None:
            if model is not None:
                raise InputError(
                    f"check: got both {model} and --from-report {from_report}; give one",
                    "Probe the model file, or decide from the saved report.",
                )
            given = [n for n in _MODEL_ONLY if ctx.get_parameter_source(n).name != "DEFAULT"]
            if given:
                names = ", ".join("--" + n.replace("_", "-") for n in given)
                raise InputError(
                    f"--from-report {from_report}: cannot be combined with {names}, which only "
                    "change how a model file is probed",
                    "Drop them, or check PATH.py instead of --from-report.",
                )
            result = _saved_report(
                from_report,
                momentum if ctx.get_parameter_source("momentum").name != "DEFAULT" else None,
            )
        else:
            if model is None:
                raise InputError(
                    "check: no model file and no --from-report",
                    "Give PATH.py to probe, or --from-report FILE to decide from a saved report.",
                )
            run = _Run(
                model,
                checkpoint,
                trust_checkpoint,
                data,
                samples,
                device,
                dtype,
                loss,
                _config(
                    seed=seed,
                    optimizer=optimizer,
                    momentum=momentum,
                    dampening=dampening,
                    nesterov=nesterov,
                    lrs=lrs,
                    steps=steps,
                ),
                report,
                plot,
            )
            result = _measure(run, streams, started, lr=lr)
        verdict = phase_for_lr(result, lr)
        code = decide(verdict, allowed)
        _verdict_out(verdict, code, allowed, result, streams, json_=json_)
    raise typer.Exit(code)


def _saved_report(path: Path, momentum: float | None) -> dict:
    result = load_report(path)
    if not result["complete"]:
        raise ReportError(
            f"{path}: a partial report (complete: false) from an interrupted run",
            "Run `etafinder probe ... --report FILE` to completion first.",
        )
    if not result["probes"]:
        raise ReportError(f"{path}: the report has no probes to decide from")
    theirs = (result.get("valid_for") or {}).get("momentum", 0.0)
    if momentum is not None and momentum != theirs:
        raise InputError(
            f"--momentum {momentum:g}: the report {path} was measured for momentum {theirs:g}",
            "Probe again with the momentum you train with.",
        )
    return result


def _verdict_out(
    verdict: Verdict,
    code: ExitCode,
    allowed: frozenset,
    result: dict,
    streams: _Streams,
    *,
    json_: bool,
) -> None:
    names = [p.value for p in sorted(allowed, key=list(Phase).index)]
    line = verdict_line(
        passed=code is ExitCode.OK,
        lr=verdict.lr,
        phase=verdict.phase.value,
        collapsed=verdict.collapsed,
        decided=verdict.decided,
        reason=verdict.reason,
        allowed=names,
    )
    if json_:
        streams.err.print(line, soft_wrap=True)
        _json_out(
            {
                **result,
                "check": {
                    "lr": verdict.lr,
                    "phase": verdict.phase.value,
                    "collapsed": verdict.collapsed,
                    "decided": verdict.decided,
                    "reason": verdict.reason,
                    "evidence": list(verdict.evidence),
                    "allowed": names,
                    "passed": code is ExitCode.OK,
                    "exit_code": int(code),
                },
            }
        )
    else:
        streams.out.print(line, soft_wrap=True)  # one line, however long


def main() -> None:
    """The ``etafinder`` entry point."""
    app()
