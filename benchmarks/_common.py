"""Shared helpers for etafinder's benchmarks: threads, timing, resident memory, plain-text tables.

Nothing here imports etafinder or torch at module level, so a child process can set its thread
count (and the BLAS environment variables) before torch is imported.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def use_source_tree() -> None:
    """Make ``import etafinder`` work from a checkout that is not pip-installed."""
    try:
        import etafinder  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(SRC))


# ------------------------------------------------------------------ threads ----
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """The environment a child gets so that torch, numpy and scipy all use ``threads`` threads."""
    env = dict(os.environ)
    for k in THREAD_ENV:
        env[k] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return env


def set_threads(threads: int) -> None:
    """``torch.set_num_threads`` (and the BLAS variables, for libraries not yet loaded)."""
    for k in THREAD_ENV:
        os.environ.setdefault(k, str(threads))
    import torch

    torch.set_num_threads(threads)


# ------------------------------------------------------------------- timing ----
def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, result)`` of one call."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median_time(
    fn: Callable[[], object], repeats: int = 20, warmup: int = 3
) -> tuple[float, float, float]:
    """``(median wall, min wall, median CPU)`` seconds of ``fn`` over ``repeats`` calls.

    ``warmup`` untimed calls come first. On a shared machine the minimum wall time and the process
    CPU time (``time.process_time``: all threads) are the better estimates of the uncontended cost;
    with one thread the CPU time is nearly load-independent.
    """
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def load() -> str:
    """The 1/5/15-minute load averages, for the record (shared-machine timings drift with them)."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------- memory ----
def _status_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


def rss_mb() -> float | None:
    """Current resident set size (VmRSS), MB."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def hwm_mb() -> float | None:
    """Peak resident set size since start or the last :func:`reset_peak` (VmHWM), MB."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss``: the peak over the whole life of this process, MB."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 1024**2


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``/proc/self/clear_refs`` = 5). Whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = hwm_mb(), rss_mb()
    return hwm is not None and rss is not None and hwm - rss < 1.0


# --------------------------------------------------------------- processes ----
def run_child(argv: Sequence[str], threads: int, timeout: float | None = None) -> dict:
    """Run ``python argv...`` fresh; its last stdout line is a JSON object, which is returned.

    The child's stderr is passed through. A failed child gives ``{"error": ...}``.
    """
    cmd = [sys.executable, *argv]
    try:
        proc = subprocess.run(
            cmd,
            env=thread_env(threads),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-8:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": "no JSON on the last stdout line: " + lines[-1][:200]}


# ------------------------------------------------------------------- tables ----
def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> str:
    """A plain-text table; ``align``: ``l``/``r`` per column (default: first left, rest right)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or ("l" + "r" * (len(headers) - 1))

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])])


def fmt_s(seconds: float | None) -> str:
    """Seconds with 3 significant digits."""
    if seconds is None:
        return "-"
    return f"{seconds:.3g}" if seconds >= 1e-3 else f"{seconds:.2e}"


def fmt_err(err: float | None) -> str:
    """A relative error."""
    return "-" if err is None else f"{err:.1e}"
