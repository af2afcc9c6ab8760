"""Recommendation-quality and speed benchmark on real data (scikit-learn's bundled digits).

Run:  python benchmarks/bench_recommend.py          (5 seeds, T = 300 steps, 5+5 speed runs)
      python benchmarks/bench_recommend.py --quick  (smoke: 1 seed, T = 50, 6 grid rates, 1+1 runs)

Per model (``mlp``: 64→256→256→10 ReLU, mse on one-hot targets; ``cnn``: conv(1→16,3)–ReLU–
conv(16→32,3)–ReLU–linear→10, cross-entropy; see ``models_digits.py``) and per seed (a fresh
``torch.manual_seed(seed)`` init, the same for every method):

* **etafinder**: ``diagnose(Problem(model, x_train, y_train, loss), ProbeConfig(seed=seed))`` on
  all 1,200 training samples → ``recommended_lr``. Cost to choose: ``d.passes["total"]``.
* **torch-lr-finder**: ``LRFinder(model, SGD(lr=1e-7), criterion).range_test(loader, end_lr=10,
  num_iter=100)`` at its defaults (exponential schedule, ``smooth_f=0.05``, ``diverge_th=5``),
  then its steepest-gradient suggestion exactly as ``lr_finder.plot(suggest_lr=True)`` returns it
  (``skip_start=10, skip_end=5``, ``argmin(np.gradient(losses))``). The loader is **full-batch**
  (1,200 samples, one batch per iteration): the rate is trained with full-batch GD, so the range
  test sees the optimizer and gradient it recommends for (a minibatch range test measures SGD
  with gradient noise, another problem; ``--lrf-batch 64`` adds that variant, for information).
  Cost to choose: iterations actually run (≤ 100; it stops once the smoothed loss exceeds 5× its
  best) × batch size.
* **grid**: 12 rates ``0.01 · 2^k``, k = 0…11 (0.01 … 20.48: far below η_crit to well past
  η_max on both models), each trained for T steps; the grid's rate is the one with the best median
  (over seeds) validation accuracy. Cost to choose: 12 × T × N_train.

Every chosen rate is trained from the same init with the probes' optimizer, full-batch GD
(``torch.optim.SGD(lr, momentum=0)``), for T = 300 steps (``--steps``), evaluating the 597-sample
validation split after every step: "best" is the best value over steps 1…T (max accuracy; min
loss, separately), "final" the value after step T. A run whose training loss becomes non-finite
stops there and keeps that (broken) model's metrics to the end. Sample passes count forward +
backward of one training sample as 1 (validation evaluations are not counted for any method).
The method table prints medians over seeds and, as "worst seed", the lowest best accuracy.

Speed: the whole diagnosis on the digits MLP (seed 0) and a default range test on the same model
and data (full-batch loader), each timed as a whole ``python -c`` process (imports, data, model
included), alternating, ``--speed-runs`` each (default 5), medians; the ratio etafinder /
lr-finder is printed with each process's in-process breakdown.

Threads: ``torch.set_num_threads(--threads)`` (default 1) here, in every worker and in every timed
process. One thread is the default: on a shared 2-core machine OpenMP's two threads contend with
other jobs (2-thread steps measured 5-7× slower than 1-thread ones under load). The quality part
runs its (model, seed) tasks in ``--jobs`` worker processes (default 2, one per core), so the
per-seed ``d.timings`` there are measured beside another worker; the speed part runs alone.

``src/etafinder`` is copied once at start (a snapshot, its sha printed): every worker and timed
process runs that same code even while the working tree changes.

Rule experiments (for the choice of the recommendation rule's constants):

* ``--rule NAME=VALUE`` (repeatable) monkeypatches the numeric constant ``NAME`` of
  ``etafinder.recommend`` (e.g. ``SAFETY=0.25``, or ``POSITION=0.3`` where that rule exists) before
  every diagnosis: the real rule, including its probe of the target;
* ``--positions P1,P2,…`` also trains, per seed, the exact (unsnapped) target
  ``η_lo^(1−P)·η_max^P`` of each P, from that seed's catapult window;
* ``--fractions F1,…`` also trains ``F·η_max``; ``--multiples M1,…`` also trains ``M·η_crit``.

Raw per-step curves and every number go to ``--json`` (default
``benchmarks/results/bench_recommend.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-lr-finder's progress bar
os.environ.setdefault("MPLBACKEND", "Agg")

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _snapshot_src() -> str:
    """Copy ``src/etafinder`` once per benchmark run, so that every worker and every timed process
    runs the same code while the working tree changes (the path travels in the environment)."""
    snap = os.environ.get("BENCH_RECOMMEND_SRC")
    if snap:
        return snap
    import atexit
    import hashlib
    import shutil
    import tempfile

    snap = tempfile.mkdtemp(prefix="bench_recommend_src_")
    shutil.copytree(
        ROOT / "src" / "etafinder",
        Path(snap) / "etafinder",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    h = hashlib.sha256()
    for f in sorted((Path(snap) / "etafinder").rglob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    os.environ["BENCH_RECOMMEND_SRC"] = snap
    os.environ["BENCH_RECOMMEND_SRC_SHA"] = h.hexdigest()[:12]
    atexit.register(shutil.rmtree, snap, True)
    return snap


SRC = _snapshot_src()
sys.path.insert(0, SRC)

import importlib  # noqa: E402

from models_digits import MODELS, N_TRAIN, N_VAL, digits  # noqa: E402

# the module itself (etafinder/__init__ may re-export a function named ``recommend``)
ef_recommend = importlib.import_module("etafinder.recommend")
from etafinder.config import ProbeConfig  # noqa: E402
from etafinder.diagnose import diagnose  # noqa: E402
from etafinder.losses import resolve_loss  # noqa: E402
from etafinder.problem import Problem  # noqa: E402

GRID = tuple(0.01 * 2.0**k for k in range(12))
#: quality target: etafinder's median val accuracy within this many points of the grid's best median
ACC_TOL_POINTS = 1.0
#: cost target: etafinder's sample passes ≤ this fraction of the grid's
PASS_FRACTION = 0.25
#: speed target (and aim): etafinder's whole-process wall time ≤ this × lr-finder's
SPEED_TARGET, SPEED_AIM = 3.0, 2.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- training
@dataclass
class Run:
    """One full-batch GD training run at one rate."""

    lr: float
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    diverged_at: int | None = None

    @property
    def best_acc(self) -> float:
        return max(self.val_acc)

    @property
    def final_acc(self) -> float:
        return self.val_acc[-1]

    @property
    def best_loss(self) -> float:
        finite = [v for v in self.val_loss if math.isfinite(v)]
        return min(finite) if finite else math.inf

    @property
    def final_loss(self) -> float:
        return self.val_loss[-1]

    def summary(self) -> dict:
        return {
            "lr": self.lr,
            "best_acc": self.best_acc,
            "final_acc": self.final_acc,
            "best_loss": self.best_loss,
            "final_loss": self.final_loss,
            "diverged_at": self.diverged_at,
        }


def train(kind: str, seed: int, lr: float, steps: int, split) -> Run:
    """Full-batch GD (SGD, momentum 0) for ``steps`` steps from ``MODELS[kind](seed)``'s init."""
    build, lname = MODELS[kind]
    model = build(seed)
    lossf = F.mse_loss if lname == "mse" else F.cross_entropy
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
    run = Run(lr=lr)
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(split.x_train), split.y_train)
        if not torch.isfinite(loss):
            run.diverged_at = step
            break
        loss.backward()
        opt.step()
        with torch.no_grad():
            out = model(split.x_val)
            vl = float(lossf(out, split.y_val))
            acc = float((out.argmax(dim=1) == split.labels_val).float().mean()) * 100.0
        run.val_loss.append(vl if math.isfinite(vl) else math.inf)
        run.val_acc.append(acc)
    if run.diverged_at is not None:  # the broken model's metrics hold to the end
        with torch.no_grad():
            out = model(split.x_val)
            acc = float((out.argmax(dim=1) == split.labels_val).float().mean()) * 100.0
        while len(run.val_acc) < steps:
            run.val_loss.append(math.inf)
            run.val_acc.append(acc)
    return run


# -------------------------------------------------------------------------------------- the methods
def run_etafinder(kind: str, seed: int, split) -> dict:
    build, lname = MODELS[kind]
    model = build(seed)
    t = time.perf_counter()
    d = diagnose(
        Problem(model, split.x_train, split.y_train, resolve_loss(lname)), ProbeConfig(seed=seed)
    )
    wall = time.perf_counter() - t
    # the catapult window the rule works in (same definition as recommend.target_lr)
    cat = [
        p.lr
        for p in d.probes
        if p.phase.value == "catapult"
        and not p.collapsed
        and (d.eta_max is None or p.lr < d.eta_max)
    ]
    window = None
    if cat:
        window = (min(cat), d.eta_max if d.eta_max is not None else max(cat))
    return {
        "lambda0": d.lambda0.value,
        "eta_crit": d.eta_crit,
        "eta_max": d.eta_max,
        "recommended_lr": d.recommended_lr,
        "recommended_phase": d.recommended_phase.value,
        "reason": d.recommendation_reason,
        "window": window,
        "passes": dict(d.passes),
        "timings": dict(d.timings),
        "wall_s": wall,
        "probes": [
            {
                "lr": p.lr,
                "x_crit": p.lr / d.eta_crit,
                "phase": p.phase.value,
                "collapsed": p.collapsed,
                "steps": p.trace.steps,
                "source": p.source,
                "reason": p.reason,
            }
            for p in d.probes
        ],
    }


def lrf_suggestion(finder) -> float | None:
    """torch-lr-finder's ``plot(suggest_lr=True)`` value, computed by that method (Agg backend)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _, lr = finder.plot(suggest_lr=True, ax=ax)
    except (
        RuntimeError
    ):  # fewer than skip_start + skip_end + 2 points: the package gives no suggestion
        lr = None
    finally:
        plt.close(fig)
    return None if lr is None else float(lr)


def run_lrfinder(kind: str, seed: int, split, batch: int) -> dict:
    from torch.utils.data import DataLoader, TensorDataset
    from torch_lr_finder import LRFinder

    build, lname = MODELS[kind]
    model = build(seed)
    criterion = torch.nn.MSELoss() if lname == "mse" else torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TensorDataset(split.x_train, split.y_train), batch_size=batch, shuffle=True, generator=g
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)
    t = time.perf_counter()
    finder = LRFinder(model, opt, criterion)
    with contextlib.redirect_stdout(io.StringIO()):
        finder.range_test(loader, end_lr=10, num_iter=100)
    wall = time.perf_counter() - t
    history = copy.deepcopy(finder.history)
    iters = len(history["lr"])
    return {
        "suggested_lr": lrf_suggestion(finder),
        "iterations": iters,
        "batch": batch,
        "passes": iters * batch,
        "wall_s": wall,
        "history": {
            "lr": [float(v) for v in history["lr"]],
            "loss": [float(v) for v in history["loss"]],
        },
    }


def parse_rule(text: str) -> tuple[str, float]:
    """``"NAME=VALUE"`` → ``(NAME, VALUE)``, checked against ``etafinder.recommend``."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not isinstance(getattr(ef_recommend, name, None), int | float):
        raise SystemExit(
            f"--rule {text}: expected NAME=VALUE with NAME one of {rule_constants()} "
            "(numeric constants of etafinder.recommend)"
        )
    return name, float(value)


def apply_rule(rule: tuple) -> None:
    for name, value in rule:
        setattr(ef_recommend, name, value)


def rule_constants() -> dict:
    """The numeric module constants of ``etafinder.recommend`` (the rule's knobs)."""
    return {
        k: v
        for k, v in vars(ef_recommend).items()
        if k.isupper() and isinstance(v, int | float) and not isinstance(v, bool)
    }


def seed_task(
    kind: str,
    s: int,
    steps: int,
    grid: tuple,
    positions: tuple,
    fractions: tuple,
    multiples: tuple,
    lrf_batch: int,
    threads: int,
    rule: tuple,
) -> dict:
    """Everything for one (model, seed): the three choices and every training run (a worker)."""
    torch.set_num_threads(threads)
    apply_rule(rule)
    split = digits(kind)
    tm = time.perf_counter()
    r: dict = {"positions": {}, "fractions": {}, "multiples": {}}
    e = r["etafinder"] = run_etafinder(kind, s, split)
    log(
        f"[{kind} seed {s}] etafinder: λ₀ {e['lambda0']:.4g}, η_crit {e['eta_crit']:.4g}, "
        f"η_max {fnum(e['eta_max'])}, rec {e['recommended_lr']:.4g} ({e['recommended_phase']}), "
        f"{e['wall_s']:.1f} s"
    )
    lf = r["lrfinder"] = run_lrfinder(kind, s, split, N_TRAIN)
    log(
        f"[{kind} seed {s}] lr-finder: {lf['iterations']} iters, "
        f"suggestion {fnum(lf['suggested_lr'])}"
    )
    r["eta_run"] = train(kind, s, e["recommended_lr"], steps, split)
    lr = lf["suggested_lr"]
    r["lrf_run"] = (
        train(kind, s, lr, steps, split)
        if lr
        else Run(lr=math.nan, val_loss=[math.inf] * steps, val_acc=[0.0] * steps)
    )
    if lrf_batch:
        mb = r["lrfinder_mb"] = run_lrfinder(kind, s, split, lrf_batch)
        r["lrf_mb_run"] = train(kind, s, mb["suggested_lr"], steps, split)
    r["grid"] = [train(kind, s, g, steps, split) for g in grid]
    if e["window"]:
        lo, hi = e["window"]
        for p in positions:
            r["positions"][str(p)] = train(kind, s, lo ** (1 - p) * hi**p, steps, split)
    if e["eta_max"]:
        for f in fractions:
            r["fractions"][str(f)] = train(kind, s, f * e["eta_max"], steps, split)
    for m in multiples:
        r["multiples"][str(m)] = train(kind, s, m * e["eta_crit"], steps, split)
    log(f"[{kind} seed {s}] done in {time.perf_counter() - tm:.0f} s")
    return r


# -------------------------------------------------------------------------------------------- speed
SPEED_SETUP = """
import json, os, sys, time
os.environ['TQDM_DISABLE'] = '1'
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
sys.path[:0] = [{bench!r}, {src!r}]
from models_digits import digits, mlp
"""
SPEED_ETAFINDER = (
    SPEED_SETUP
    + """
from etafinder.problem import Problem
from etafinder.losses import resolve_loss
from etafinder.diagnose import diagnose
from etafinder.config import ProbeConfig
s = digits('mlp'); m = mlp(0)
t1 = time.perf_counter()
d = diagnose(Problem(m, s.x_train, s.y_train, resolve_loss('mse')), ProbeConfig(seed=0))
t2 = time.perf_counter()
print(json.dumps({{'setup_s': t1 - t0, 'work_s': t2 - t1, 'passes': d.passes, 'timings': d.timings,
                  'recommended_lr': d.recommended_lr}}))
"""
)
SPEED_LRFINDER = (
    SPEED_SETUP
    + """
import contextlib, io
from torch.utils.data import DataLoader, TensorDataset
from torch_lr_finder import LRFinder
s = digits('mlp'); m = mlp(0)
loader = DataLoader(TensorDataset(s.x_train, s.y_train), batch_size={batch}, shuffle=True,
                    generator=torch.Generator().manual_seed(0))
t1 = time.perf_counter()
f = LRFinder(m, torch.optim.SGD(m.parameters(), lr=1e-7), torch.nn.MSELoss())
with contextlib.redirect_stdout(io.StringIO()):
    f.range_test(loader, end_lr=10, num_iter=100)
t2 = time.perf_counter()
n = len(f.history['lr'])
print(json.dumps({{'setup_s': t1 - t0, 'work_s': t2 - t1, 'iterations': n, 'passes': n * {batch}}}))
"""
)


def timed_process(code: str) -> tuple[float, dict]:
    env = {**os.environ, "MPLBACKEND": "Agg"}  # thread variables: set in main()
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"timed process failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def speed(runs: int, threads: int) -> dict:
    fmt = {"threads": threads, "bench": str(HERE), "src": SRC, "batch": N_TRAIN}
    codes = {"etafinder": SPEED_ETAFINDER.format(**fmt), "lrfinder": SPEED_LRFINDER.format(**fmt)}
    res: dict[str, list] = {"etafinder": [], "lrfinder": []}
    for i in range(runs):
        for name in ("etafinder", "lrfinder") if i % 2 == 0 else ("lrfinder", "etafinder"):
            wall, info = timed_process(codes[name])
            res[name].append({"wall_s": wall, **info})
            log(f"  speed run {i + 1}/{runs} {name}: {wall:.2f} s")
    return res


# ---------------------------------------------------------------------------------------- reporting
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else math.nan


def fnum(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def method_row(
    name: str, runs: list[Run], etas: list[dict], passes: list[float], grid_passes: float
) -> list[str]:
    lrs = [r.lr for r in runs]
    xc = [r.lr / e["eta_crit"] for r, e in zip(runs, etas, strict=True)]
    xm = [r.lr / e["eta_max"] for r, e in zip(runs, etas, strict=True) if e["eta_max"]]
    p = med(passes)
    return [
        name,
        fnum(med(lrs)),
        fnum(med(xc), 3),
        fnum(med(xm), 3) if xm else "—",
        f"{med([r.best_acc for r in runs]):.2f}",
        f"{min(r.best_acc for r in runs):.2f}",
        f"{med([r.final_acc for r in runs]):.2f}",
        fnum(med([r.best_loss for r in runs])),
        fnum(med([r.final_loss for r in runs])),
        f"{p:,.0f}",
        f"{p / grid_passes:.3f}",
    ]


def probe_summary(e: dict) -> str:
    tag = {"lazy": "L", "catapult": "C", "divergent": "D"}
    return " ".join(
        f"{p['x_crit']:.3g}{tag[p['phase']]}{'*' if p['collapsed'] else ''}" for p in e["probes"]
    )


def report_model(kind: str, res: dict, args) -> tuple[list[str], dict]:
    seeds = res["seeds"]
    etas = [res["etafinder"][s] for s in seeds]
    n_grid = len(res["grid_lrs"])
    grid_passes = n_grid * args.steps * N_TRAIN
    out = [
        f"\n=== digits {kind.upper()} ({MODELS[kind][1]}), {len(seeds)} seeds {seeds}, "
        f"T = {args.steps} full-batch GD steps, N_train = {N_TRAIN} ==="
    ]

    # per-seed diagnosis
    rows = []
    for s, e in zip(seeds, etas, strict=True):
        xm = f"{e['eta_max'] / e['eta_crit']:.3g}" if e["eta_max"] else "—"
        coll = sum(p["collapsed"] for p in e["probes"])
        t = e["timings"]
        rows.append(
            [
                str(s),
                fnum(e["lambda0"]),
                fnum(e["eta_crit"]),
                fnum(e["eta_max"]),
                xm,
                fnum(e["recommended_lr"]),
                f"{e['recommended_lr'] / e['eta_crit']:.3g}",
                e["recommended_phase"],
                str(len(e["probes"])),
                str(coll),
                f"{e['passes']['total']:,}",
                f"{t.get('lambda0_s', 0):.1f}/{t.get('probes_s', 0):.1f}/{t.get('total_s', 0):.1f}",
            ]
        )
    out.append("etafinder per seed (η_max in ·η_crit; time λ₀/probes/total s):")
    out.append(
        table(
            [
                "seed",
                "λ₀",
                "η_crit",
                "η_max",
                "η_max/η_crit",
                "rec lr",
                "rec/η_crit",
                "phase",
                "probes",
                "collapsed",
                "passes",
                "time s",
            ],
            rows,
        )
    )
    out.append(
        "probe phases per seed (rate as ·η_crit, L/C/D = lazy/catapult/divergent, * = collapsed):"
    )
    for s, e in zip(seeds, etas, strict=True):
        out.append(f"  seed {s}: {probe_summary(e)}")
        out.append(f"          rec: {e['reason']}")

    # grid sweep
    grid_runs = {lr: [res["grid"][s][i] for s in seeds] for i, lr in enumerate(res["grid_lrs"])}
    rows = []
    for lr, runs in grid_runs.items():
        xc = med([lr / e["eta_crit"] for e in etas])
        xm = med([lr / e["eta_max"] for e in etas if e["eta_max"]])
        ndiv = sum(r.diverged_at is not None for r in runs)
        rows.append(
            [
                fnum(lr),
                fnum(xc, 3),
                fnum(xm, 3),
                f"{med([r.best_acc for r in runs]):.2f}",
                f"{med([r.final_acc for r in runs]):.2f}",
                fnum(med([r.best_loss for r in runs])),
                fnum(med([r.final_loss for r in runs])),
                f"{ndiv}/{len(runs)}",
            ]
        )
    out.append(
        "grid sweep (medians over seeds; ·η_crit/·η_max are medians of the per-seed multiples):"
    )
    out.append(
        table(
            [
                "lr",
                "·η_crit",
                "·η_max",
                "acc best",
                "acc final",
                "loss best",
                "loss final",
                "non-finite",
            ],
            rows,
        )
    )

    # the methods
    best_lr = max(grid_runs, key=lambda lr: (med([r.best_acc for r in grid_runs[lr]]), -lr))
    best_lr_final = max(grid_runs, key=lambda lr: (med([r.final_acc for r in grid_runs[lr]]), -lr))
    eta_runs = [res["eta_run"][s] for s in seeds]
    lrf_runs = [res["lrf_run"][s] for s in seeds]
    rows = [
        method_row("etafinder", eta_runs, etas, [e["passes"]["total"] for e in etas], grid_passes),
        method_row(
            f"lr-finder (bs {N_TRAIN})",
            lrf_runs,
            etas,
            [res["lrfinder"][s]["passes"] for s in seeds],
            grid_passes,
        ),
    ]
    if res.get("lrf_mb_run"):
        rows.append(
            method_row(
                f"lr-finder (bs {args.lrf_batch})",
                [res["lrf_mb_run"][s] for s in seeds],
                etas,
                [res["lrfinder_mb"][s]["passes"] for s in seeds],
                grid_passes,
            )
        )
    rows.append(
        method_row(
            f"grid best ({n_grid} pts)", grid_runs[best_lr], etas, [grid_passes], grid_passes
        )
    )
    if best_lr_final != best_lr:
        rows.append(
            method_row(
                "grid best by final acc", grid_runs[best_lr_final], etas, [grid_passes], grid_passes
            )
        )
    for key, label in (
        ("positions", "window pos {}"),
        ("fractions", "{}·η_max"),
        ("multiples", "{}·η_crit"),
    ):
        for p, per_seed in sorted(res.get(key, {}).items(), key=lambda kv: float(kv[0])):
            runs = [per_seed[s] for s in seeds if per_seed.get(s) is not None]
            if len(runs) == len(seeds):
                rows.append(
                    method_row(
                        label.format(p) + " (offline)",
                        runs,
                        etas,
                        [e["passes"]["total"] for e in etas],
                        grid_passes,
                    )
                )
            else:
                out.append(
                    f"  ({label.format(p)}: no catapult window / η_max on "
                    f"{len(seeds) - len(runs)} seeds)"
                )
    out.append(
        "methods (medians over seeds; val acc in %; val loss = the training loss on the val split):"
    )
    out.append(
        table(
            [
                "method",
                "lr",
                "·η_crit",
                "·η_max",
                "acc best",
                "worst seed",
                "acc final",
                "loss best",
                "loss final",
                "passes to choose",
                "÷ grid",
            ],
            rows,
        )
    )

    # per-seed: where the best rate sits
    rows = []
    for s, e in zip(seeds, etas, strict=True):
        gr = res["grid"][s]
        b = max(gr, key=lambda r: (r.best_acc, -r.lr))

        def xm(lr: float, e: dict = e) -> str:
            return f"{lr / e['eta_max']:.3g}" if e["eta_max"] else "—"

        pos = "—"
        if e["window"] and e["window"][1] > e["window"][0]:
            lo, hi = e["window"]
            pos = f"{math.log(b.lr / lo) / math.log(hi / lo):.2f}"
        er, lr_ = res["eta_run"][s], res["lrf_run"][s]
        rows.append(
            [
                str(s),
                fnum(b.lr),
                f"{b.lr / e['eta_crit']:.3g}",
                xm(b.lr),
                pos,
                f"{b.best_acc:.2f}",
                fnum(er.lr),
                f"{er.lr / e['eta_crit']:.3g}",
                xm(er.lr),
                f"{er.best_acc:.2f}",
                fnum(lr_.lr),
                f"{lr_.best_acc:.2f}",
            ]
        )
    out.append(
        "per seed: grid's best rate vs etafinder's and lr-finder's (acc = best val acc; "
        "'window pos' = log-position of the grid best in etafinder's catapult window, "
        "0 = η_lo, 1 = η_max):"
    )
    out.append(
        table(
            [
                "seed",
                "grid lr",
                "·η_crit",
                "·η_max",
                "window pos",
                "acc",
                "etaf lr",
                "·η_crit",
                "·η_max",
                "acc",
                "lrf lr",
                "acc",
            ],
            rows,
        )
    )

    # targets
    g_best = med([r.best_acc for r in grid_runs[best_lr]])
    g_final = med([r.final_acc for r in grid_runs[best_lr_final]])
    e_best, e_final = med([r.best_acc for r in eta_runs]), med([r.final_acc for r in eta_runs])
    l_best, l_final = med([r.best_acc for r in lrf_runs]), med([r.final_acc for r in lrf_runs])
    e_pass = med([e["passes"]["total"] for e in etas])
    checks = {
        "quality_best": e_best >= g_best - ACC_TOL_POINTS,
        "passes": e_pass <= PASS_FRACTION * grid_passes,
        "vs_lrfinder_best": e_best >= l_best,
    }
    pf = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    vs = lambda pts: f"{round(pts * N_VAL / 100):+d}"  # noqa: E731  (accuracy points → samples)
    out.append(
        f"[{pf(checks['quality_best'])}] {kind}: etafinder median best val acc {e_best:.2f}% vs "
        f"grid best {g_best:.2f}% (lr {fnum(best_lr)}): {e_best - g_best:+.2f} pts = "
        f"{vs(e_best - g_best)} val samples (target ≥ −{ACC_TOL_POINTS:g} pts)"
    )
    out.append(
        f"[{pf(checks['passes'])}] {kind}: etafinder passes {e_pass:,.0f} = "
        f"{e_pass / grid_passes:.3f} × grid "
        f"{grid_passes:,} (target ≤ {PASS_FRACTION:g}; it holds for T ≥ "
        f"{math.ceil(e_pass / (PASS_FRACTION * n_grid * N_TRAIN))} steps)"
    )
    out.append(
        f"[{pf(checks['vs_lrfinder_best'])}] {kind}: etafinder median best val acc "
        f"{e_best:.2f}% vs "
        f"lr-finder {l_best:.2f}%: {e_best - l_best:+.2f} pts = {vs(e_best - l_best)} val samples "
        "(target ≥ 0)"
    )
    out.append(
        f"[info] {kind}: final-step acc: etafinder {e_final:.2f}%, grid best {g_final:.2f}% "
        f"(lr {fnum(best_lr_final)}), lr-finder {l_final:.2f}% → "
        f"{e_final - g_final:+.2f} pts vs grid, "
        f"{e_final - l_final:+.2f} vs lr-finder"
    )
    return out, checks


def report_speed(sp: dict, threads: int) -> tuple[list[str], bool]:
    e, lf = sp["etafinder"], sp["lrfinder"]
    ew, lw = med([r["wall_s"] for r in e]), med([r["wall_s"] for r in lf])
    ratio = ew / lw
    out = [
        f"\n=== speed: digits MLP, seed 0, whole processes, {len(e)}+{len(lf)} alternating runs, "
        f"torch threads {threads} ==="
    ]
    rows = [
        [
            "etafinder diagnose",
            f"{ew:.2f}",
            f"{med([r['setup_s'] for r in e]):.2f}",
            f"{med([r['work_s'] for r in e]):.2f}",
            f"{med([r['passes']['total'] for r in e]):,.0f}",
            " ".join(f"{r['wall_s']:.1f}" for r in e),
        ],
        [
            f"lr-finder range test (bs {N_TRAIN})",
            f"{lw:.2f}",
            f"{med([r['setup_s'] for r in lf]):.2f}",
            f"{med([r['work_s'] for r in lf]):.2f}",
            f"{med([r['passes'] for r in lf]):,.0f}",
            " ".join(f"{r['wall_s']:.1f}" for r in lf),
        ],
    ]
    out.append(
        table(
            [
                "process",
                "wall s (median)",
                "imports+data s",
                "work s",
                "sample passes",
                "all runs s",
            ],
            rows,
        )
    )
    keys = ["lambda0_s", "spread_s", "probes_s", "total_s"]
    out.append(
        "etafinder d.timings (medians): "
        + ", ".join(f"{k} {med([r['timings'].get(k) for r in e]):.2f}" for k in keys)
    )
    ok = ratio <= SPEED_TARGET
    out.append(
        f"[{'PASS' if ok else 'FAIL'}] speed: etafinder / lr-finder wall = {ratio:.2f}× "
        f"(target ≤ {SPEED_TARGET:g}×, aim ≤ {SPEED_AIM:g}×: "
        f"{'met' if ratio <= SPEED_AIM else 'not met'}); passes "
        f"{med([r['passes']['total'] for r in e]) / med([r['passes'] for r in lf]):.1f}× "
        "lr-finder's"
    )
    return out, ok


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 seed, T=50, 6 grid points, 1+1 speed runs",
    )
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument(
        "--steps", type=int, default=300, help="full-batch GD steps per training run (default 300)"
    )
    ap.add_argument("--models", default="mlp,cnn", help="comma list of mlp,cnn")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads here and in the timed processes"
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="worker processes for the quality part (default 2; the speed part always runs alone)",
    )
    ap.add_argument(
        "--speed-runs", type=int, default=5, help="timed processes per method (0: skip speed)"
    )
    ap.add_argument(
        "--lrf-batch",
        type=int,
        default=0,
        help="also run torch-lr-finder with this minibatch size (information only; 0: off)",
    )
    ap.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="monkeypatch a numeric constant of etafinder.recommend for every diagnosis",
    )
    ap.add_argument(
        "--position",
        type=float,
        default=None,
        help="shorthand for --rule POSITION=P (the window log-position rule, where it exists)",
    )
    ap.add_argument(
        "--positions", default="", help="offline: also train η_lo^(1-P)·η_max^P per seed"
    )
    ap.add_argument("--fractions", default="", help="offline: also train F·η_max per seed")
    ap.add_argument("--multiples", default="", help="offline: also train M·η_crit per seed")
    ap.add_argument(
        "--json", default=str(HERE / "results" / "bench_recommend.json"), help="raw results file"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.speed_runs = 1, 50, min(args.speed_runs, 1)
    grid = GRID[::2] if args.quick else GRID
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # workers and timed processes inherit them
    torch.set_num_threads(args.threads)
    if args.position is not None:
        args.rule.append(f"POSITION={args.position}")
    rule = tuple(parse_rule(r) for r in args.rule)
    apply_rule(rule)
    positions = [float(p) for p in args.positions.split(",") if p]
    fractions = [float(f) for f in args.fractions.split(",") if f]
    multiples = [float(m) for m in args.multiples.split(",") if m]
    seeds = list(range(args.seeds))
    t_start = time.perf_counter()

    import torch_lr_finder  # noqa: F401  (fail early when missing)

    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        rev = "?"
    head = [
        f"bench_recommend: torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"{args.jobs} worker process(es) for the quality part, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, "
        f"etafinder rev {rev} (snapshot sha {os.environ.get('BENCH_RECOMMEND_SRC_SHA', '?')}), "
        f"recommend constants {rule_constants()}, "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}",
        f"grid: {len(grid)} rates {fnum(grid[0])} … {fnum(grid[-1])} "
        f"(×{grid[1] / grid[0]:g} apart); "
        f"T = {args.steps}; seeds {seeds}; lr-finder loader batch {N_TRAIN} (full batch)"
        + (f" and {args.lrf_batch}" if args.lrf_batch else ""),
    ]
    print("\n".join(head), flush=True)

    all_out, all_checks, raw = [], {}, {"args": vars(args), "grid": list(grid), "models": {}}
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    tasks = [
        (
            k,
            s,
            args.steps,
            tuple(grid),
            tuple(positions),
            tuple(fractions),
            tuple(multiples),
            args.lrf_batch,
            args.threads,
            rule,
        )
        for k in kinds
        for s in seeds
    ]
    results: dict = {}
    if args.jobs <= 1:
        for t in tasks:
            results[t[:2]] = seed_task(*t)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(seed_task, *t): t[:2] for t in tasks}
            for fut in as_completed(futs):
                results[futs[fut]] = fut.result()
    log(f"quality part done in {time.perf_counter() - t_start:.0f} s")
    for kind in kinds:
        res = {
            "seeds": seeds,
            "grid_lrs": list(grid),
            "etafinder": {},
            "lrfinder": {},
            "lrfinder_mb": {},
            "eta_run": {},
            "lrf_run": {},
            "lrf_mb_run": {},
            "grid": {},
            "positions": {str(p): {} for p in positions},
            "fractions": {str(f): {} for f in fractions},
            "multiples": {str(m): {} for m in multiples},
        }
        for s in seeds:
            r = results[(kind, s)]
            for key in (
                "etafinder",
                "lrfinder",
                "lrfinder_mb",
                "eta_run",
                "lrf_run",
                "lrf_mb_run",
                "grid",
            ):
                if r.get(key) is not None:
                    res[key][s] = r[key]
            for key in ("positions", "fractions", "multiples"):
                for p, run in r[key].items():
                    res[key][p][s] = run
        out, checks = report_model(kind, res, args)
        print("\n".join(out), flush=True)
        all_out += out
        all_checks.update({f"{kind}_{k}": v for k, v in checks.items()})
        ser = lambda r: {**r.summary(), "val_acc": r.val_acc, "val_loss": r.val_loss}  # noqa: E731
        raw["models"][kind] = {
            "etafinder": res["etafinder"],
            "lrfinder": res["lrfinder"],
            "lrfinder_mb": res["lrfinder_mb"],
            "eta_run": {s: ser(r) for s, r in res["eta_run"].items()},
            "lrf_run": {s: ser(r) for s, r in res["lrf_run"].items()},
            "lrf_mb_run": {s: ser(r) for s, r in res["lrf_mb_run"].items()},
            "grid": {s: [ser(r) for r in rs] for s, rs in res["grid"].items()},
            "positions": {
                p: {s: ser(r) for s, r in d.items()} for p, d in res["positions"].items()
            },
            "fractions": {
                f: {s: ser(r) for s, r in d.items()} for f, d in res["fractions"].items()
            },
            "multiples": {
                m: {s: ser(r) for s, r in d.items()} for m, d in res["multiples"].items()
            },
        }

    if args.speed_runs > 0:
        log("speed: alternating whole-process runs …")
        sp = speed(args.speed_runs, args.threads)
        out, ok = report_speed(sp, args.threads)
        print("\n".join(out), flush=True)
        all_checks["speed"] = ok
        raw["speed"] = sp

    total = time.perf_counter() - t_start
    print(
        f"\nsummary: {sum(all_checks.values())}/{len(all_checks)} targets met "
        f"({', '.join(k for k, v in all_checks.items() if not v) or 'none failed'} failed); "
        f"benchmark wall time {total:.0f} s; load average at the end "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (wall times are only comparable on an "
        "otherwise idle machine)",
        flush=True,
    )
    raw["checks"], raw["wall_s"] = all_checks, total
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, default=str))
    print(f"raw results: {path}")
    return 0 if all(all_checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
