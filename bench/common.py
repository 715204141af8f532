"""Shared pieces of the benchmarks: timing, closed forms, dense routes, result files.

The exact T_MRCA density comes from `phasic.reference` (shared with the tests and
examples).

Every benchmark module measures the things it compares in the same run, so the
printed ratios are meaningful even on a busy machine; absolute times are recorded
together with the load average at the start and end of each module.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"

#: The seven time points of the pdf speed target (docs/pages/benchmarks.md, Speed targets).
PDF_TIMES = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0)


# --------------------------------------------------------------------------- timing


def timeit(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Median seconds per call; calls are batched so that one sample lasts >= min_time."""
    fn()  # warm: compile, fill caches
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds for one call of fn (for routes too slow to repeat) and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --------------------------------------------------------------------------- references


def kingman_mean_var(n: int) -> tuple[float, float]:
    """E and Var of T_MRCA for Kingman(n), theta = 1 (closed forms in docs/pages/accuracy.md)."""
    mean = 2.0 * (1.0 - 1.0 / n)
    var = math.fsum(4.0 / (k * k * (k - 1) ** 2) for k in range(2, n + 1))
    return mean, var


def max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest |got - ref| / |ref| (ref has no zeros here: densities at t > 0)."""
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    return float(np.max(np.abs(got - ref) / np.abs(ref)))


# --------------------------------------------------------------------------- dense routes


def sub_intensity(structure_json: str, theta: Sequence[float]) -> tuple[np.ndarray, Any]:
    """alpha and the sub-intensity matrix S (scipy CSR) of a continuous graph at theta.

    This is the route a user without phasic would take: write the generator out as
    a matrix, then use numpy/scipy on it.
    """
    import scipy.sparse

    data = json.loads(structure_json)
    nv = len(data["states"])
    rates = np.array(data["edges"]["weight"], dtype=float)
    coef = data["coefficients"]
    np.add.at(rates, np.array(coef["edge"], dtype=int),
              np.array(coef["value"], dtype=float)
              * np.asarray(theta, dtype=float)[np.array(coef["param"], dtype=int)])
    src = np.array(data["edges"]["from"], dtype=int)
    dst = np.array(data["edges"]["to"], dtype=int)
    has_out = np.zeros(nv, bool)
    has_out[src] = True
    transient = np.flatnonzero(has_out)
    transient = transient[transient != 0]  # vertex 0 is the starting vertex
    index = np.full(nv, -1)
    index[transient] = np.arange(len(transient))
    m = len(transient)
    start = src == 0
    alpha = np.zeros(m)
    into = index[dst[start]] >= 0  # start edges into absorbing vertices are the defect
    np.add.at(alpha, index[dst[start]][into], rates[start][into] / rates[start].sum())
    inner = ~start
    s, d, r = index[src[inner]], index[dst[inner]], rates[inner]
    to_transient = d >= 0
    rows = np.concatenate([s[to_transient], s])
    cols = np.concatenate([d[to_transient], s])
    vals = np.concatenate([r[to_transient], -r])
    sub = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(m, m))
    sub.sum_duplicates()
    return alpha, sub


# --------------------------------------------------------------------------- results


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (other engineers share the cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every result file."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    for name in ("jax", "scipy", "phasic"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "?")
        if name == "phasic" and module is not None:
            info["phasic_path"] = str(pathlib.Path(module.__file__).parent)
    info.update(_GIT_AT_START)
    return info


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether phasic-core's sources differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30, check=False).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = git("status", "--porcelain", "--", "packages/phasic-core/src")
    return {"git_commit": commit, "phasic_core_uncommitted_changes": bool(dirty)}


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and inf become None, numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def result_path(name: str, quick: bool, suffix: str) -> pathlib.Path:
    """bench/results/<name>[-quick].<suffix> (quick results are not committed)."""
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / f"{name}{'-quick' if quick else ''}.{suffix}"


def write_json(name: str, quick: bool, data: dict[str, Any], load_start: list[float]) -> pathlib.Path:
    """Write one module's results with the environment and load averages."""
    path = result_path(name, quick, "json")
    payload = {"benchmark": name, "quick": quick, "environment": environment(),
               "load_average": {"start": load_start, "end": load()}, **data}
    path.write_text(json.dumps(_clean(payload), indent=2) + "\n")
    return path


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, name: str, quick: bool) -> pathlib.Path:
    """Save and close a figure as bench/results/<name>[-quick].png."""
    import matplotlib.pyplot as plt

    path = result_path(name, quick, "png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finish(name: str, quick: bool, result: dict[str, Any], load_start: list[float],
           plot: Callable[[], object] | None = None) -> pathlib.Path:
    """The end of every module's run(): write the JSON, draw the figure, say where both went.

    `plot` (when given) saves bench/results/<name>[-quick].png; `result` is what the
    JSON holds besides the environment and load averages.
    """
    path = write_json(name, quick, result, load_start)
    if plot is None:
        print(f"  wrote {path}")
    else:
        plot()
        print(f"  wrote {path} and {path.with_suffix('.png')}")
    return path


@dataclasses.dataclass(frozen=True)
class Flag:
    """A boolean command-line flag handed to run() as keyword `keyword`, through `value`."""

    name: str
    keyword: str
    help: str
    value: Callable[[bool], Any] = bool


def cli(run: Callable[..., dict[str, Any]], quick_help: str, *, flags: Sequence[Flag] = (),
        worker: Callable[[list[str]], None] | None = None,
        failed: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """The command line of a benchmark module: `python bench/<module>.py [--quick] ...`.

    The description is the first line of run's module docstring. `worker` (when given)
    adds the hidden `--worker ARG...` that a module's own child processes are started
    with; `failed(result)` true makes the exit status 1 (a measurement went missing).
    """
    doc = sys.modules[run.__module__].__doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    for flag in flags:
        parser.add_argument(flag.name, action="store_true", dest=flag.keyword, help=flag.help)
    if worker is not None:
        parser.add_argument("--worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if worker is not None and args.worker:
        worker(args.worker)
        return
    result = run(args.quick, **{f.keyword: f.value(getattr(args, f.keyword)) for f in flags})
    if failed is not None:
        sys.exit(1 if failed(result) else 0)


# --------------------------------------------------------------------------- subprocesses


def _status_mib(field: str) -> float:
    """One memory field of /proc/self/status (e.g. VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def peak_mib() -> float:
    """This process's RSS high-water mark: VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss keeps the forking parent's, e.g. bench/run.py's with JAX loaded)."""
    return _status_mib("VmHWM")


def reset_peak() -> None:
    """Start this process's RSS high-water mark (VmHWM) afresh from the current RSS
    (Linux: /proc/self/clear_refs), so that a later peak_mib() covers what follows."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_mib() -> float:
    """This process's resident set now (VmRSS), in MiB."""
    return _status_mib("VmRSS")


def log_log_axes(axes: Sequence[Any], xlabel: str, ylabels: Sequence[str],
                 titles: Sequence[str]) -> None:
    """Log-log axes with a shared x label, one y label, title and legend each."""
    for ax, ylabel, title in zip(axes, ylabels, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()


def run_json(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300.0,
             cwd: pathlib.Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """Run a worker that prints one line `RESULT <json>`; return (that JSON, problem text).

    A worker that fails, hangs past `timeout`, or prints no result gives None and a
    one-line reason including the tail of its stderr, so the benchmark can report
    exactly why a measurement is missing instead of crashing or hanging.
    """
    try:
        proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s: {' '.join(cmd)}"
    except OSError as exc:
        return None, f"could not start {cmd[0]}: {exc}"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), ""
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
    return None, f"exit code {proc.returncode}, no result; last output: {tail}"


def emit(result: dict[str, Any]) -> None:
    """Worker side of `run_json`."""
    print("RESULT " + json.dumps(_clean(result)), flush=True)


def nice_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus `extra`, with the current Python's directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


# Taken when the benchmarks start (the code measured), not when a result is written.
_GIT_AT_START = _git_state()
