"""The previous phasic (the published 0.32.1 wheel) side by side on the same Kingman models.

    python bench/previous.py [--quick] [--setup]

The previous phasic lives in its own virtualenv, bench/.venv-previous (gitignored),
made with `pip install --no-deps phasic==0.32.1` plus, by hand, only the packages
its import needs (found by trying: see NEEDED). Its declared dependencies are not
installed: several name C++ libraries it was built against (eigen, mpfr,
nlohmann_json, pybind11), and those names resolve to unrelated packages on the
registry. A full run creates the environment when it is missing; --quick only uses
an existing one (installing takes minutes) and otherwise says why it skipped.

Both phasics get the same graphs (the current one's Kingman states and edges,
rebuilt vertex by vertex through the previous graph API), the same thetas and the
same 7 times. Measured: 3 moments and the pdf at 7 times, each with a new theta per
call (the previous phasic returns repeated identical calls from a cache),
and the pdf's error against the exact density. Writes bench/results/previous.json/png.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    BENCH,
    PDF_TIMES,
    RESULTS,
    Flag,
    cli,
    figure,
    finish,
    kingman_mean_var,
    load,
    max_rel_error,
    run_json,
    save_figure,
    timeit,
)

from phasic import models  # noqa: E402
from phasic.reference import kingman_tmrca  # noqa: E402

VENV = BENCH / ".venv-previous"
PYTHON = VENV / "bin" / "python"
READY = VENV / "phasic-bench-ready"
PREVIOUS = "phasic==0.32.1"
#: What `import phasic` (0.32.1) and its graph API need, found by installing one
#: missing module at a time until the import and this benchmark ran.
NEEDED = ("numpy", "jax", "pandas", "matplotlib", "seaborn", "tqdm", "requests")


def _pip(*args: str) -> tuple[bool, str]:
    proc = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=1200, check=False)
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
             if ln.strip() and not ln.startswith("WARNING")]
    return proc.returncode == 0, " | ".join(lines[-3:])


def ensure_environment(create: bool) -> str:
    """Make (if `create`) and check the previous phasic's venv; '' if ready, else why not."""
    if not READY.exists():
        if not create:
            return (f"{VENV.relative_to(BENCH.parent)} is not set up (installing takes "
                    "minutes; a full run or `python bench/previous.py --setup` does it)")
        print(f"  creating {VENV} with {PREVIOUS} (--no-deps) and {', '.join(NEEDED)}")
        venv.create(VENV, with_pip=True, clear=True)
        for args in (("--no-deps", PREVIOUS), NEEDED):
            ok, why = _pip(*args)
            if not ok:
                return f"pip install {' '.join(args)} failed in {VENV.name}: {why}"
    proc = subprocess.run([str(PYTHON), "-c", "import phasic, phasic.phasic_pybind"],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        return f"the previous phasic does not import in {VENV.name}: {tail}"
    READY.write_text(f"{PREVIOUS} + {' '.join(NEEDED)}\n")
    return ""


def declared_dependencies() -> list[str]:
    """What the 0.32.1 wheel declares (from its metadata in the venv)."""
    proc = subprocess.run([str(PYTHON), "-m", "pip", "show", "phasic"], capture_output=True,
                          text=True, timeout=120, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("Requires:"):
            return [x.strip() for x in line.split(":", 1)[1].split(",") if x.strip()]
    return []


def current_row(n: int, structure: str, thetas: list[float], times: np.ndarray) -> dict:
    """The current phasic on the same model: graph API and jitted FFI, same inputs."""
    import phasic

    graph = phasic.Graph.from_json(structure)
    counter = iter(range(1 << 40))

    def graph_moments() -> object:
        return graph.moments(3, theta=[thetas[next(counter) % len(thetas)]])

    jitted = jax.jit(lambda th: phasic.compute_moments_ffi(structure, th, 3))
    dev = [jnp.array([t]) for t in thetas]

    def ffi_moments() -> object:
        return jitted(dev[next(counter) % len(dev)]).block_until_ready()

    mean, second = graph.moments(2, theta=[1.0])[:2]
    pdf = np.asarray(graph.pdf(times, theta=[1.0]), dtype=float)
    return {"graph_moments_s": timeit(graph_moments, repeat=3),
            "ffi_moments_s": timeit(ffi_moments, repeat=3),
            "graph_pdf_s": timeit(lambda: graph.pdf(times, theta=[thetas[next(counter)
                                                                      % len(thetas)]]),
                                  repeat=3),
            "mean": float(mean), "variance": float(second - mean**2), "pdf": pdf.tolist()}


def run(quick: bool, setup: bool | None = None) -> dict[str, Any]:
    """Compare both phasics; write previous.json/png; return the results."""
    start_load = load()
    sizes = [10] if quick else [10, 20, 30, 40]
    times = np.array(PDF_TIMES)
    thetas = [float(x) for x in np.random.default_rng(1).uniform(0.5, 2.0, 16)]
    results: dict[str, Any] = {"package": PREVIOUS, "times": list(PDF_TIMES), "rows": []}
    problem = ensure_environment(create=not quick if setup is None else setup)
    if not problem:
        results["declared_dependencies"] = declared_dependencies()
        results["installed_by_hand"] = list(NEEDED)
        tmp = RESULTS / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        structures, graphs = {}, []
        for n in sizes:
            structures[n] = models.kingman(n).to_json()
            path = tmp / f"kingman{n}.json"
            path.write_text(structures[n])
            graphs.append({"n": n, "path": str(path)})
        spec = tmp / "previous_spec.json"
        spec.write_text(json.dumps({"graphs": graphs, "thetas": thetas,
                                    "times": list(PDF_TIMES)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["JAX_PLATFORMS"] = "cpu"
        prev, problem = run_json([str(PYTHON), str(BENCH / "_previous_worker.py"), str(spec)],
                                 env=env, timeout=900 if not quick else 120, cwd=BENCH)
        if prev is not None:
            results["version"] = prev["version"]
            for row in prev["rows"]:
                results["rows"].append(_compare(row, structures[row["n"]], thetas, times))
    if problem:
        results["skipped"] = problem
        print(f"  previous phasic NOT measured: {problem}")
    finish("previous", quick, results, start_load,
           plot=(lambda: plot(results, quick)) if results["rows"] else None)
    return results


def _compare(prev: dict, structure: str, thetas: list[float], times: np.ndarray) -> dict:
    n = prev["n"]
    exact_pdf = kingman_tmrca(n, times, digits=200).pdf
    exact_mean, exact_var = kingman_mean_var(n)
    cur = current_row(n, structure, thetas, times)
    row = {"n": n, "vertices": prev["vertices"], "previous_build_s": prev["build_s"]}
    for who, r, moments_key, pdf_key in (("previous", prev, "moments_s", "pdf_s"),
                                         ("current", cur, "graph_moments_s", "graph_pdf_s")):
        row[f"{who}_moments_s"] = r[moments_key]
        row[f"{who}_pdf_s"] = r[pdf_key]
        row[f"{who}_mean_rel_error"] = abs(r["mean"] - exact_mean) / exact_mean
        row[f"{who}_var_rel_error"] = abs(r["variance"] - exact_var) / exact_var
        row[f"{who}_pdf_rel_errors"] = (np.abs(np.array(r["pdf"]) - exact_pdf)
                                        / exact_pdf).tolist()
        row[f"{who}_pdf_max_rel_error"] = max_rel_error(np.array(r["pdf"]), exact_pdf)
    row["current_ffi_moments_s"] = cur["ffi_moments_s"]
    row["moments_speedup"] = row["previous_moments_s"] / row["current_moments_s"]
    row["pdf_speedup"] = row["previous_pdf_s"] / row["current_pdf_s"]
    print(f"  n={n:2d} ({prev['vertices']:6d} vertices): 3 moments previous "
          f"{row['previous_moments_s'] * 1e3:8.3f} ms, current graph API "
          f"{row['current_moments_s'] * 1e3:7.3f} ms ({row['moments_speedup']:.1f}x), jitted FFI "
          f"{row['current_ffi_moments_s'] * 1e3:7.3f} ms | pdf 7 times previous "
          f"{row['previous_pdf_s'] * 1e3:8.1f} ms (max rel err "
          f"{row['previous_pdf_max_rel_error']:.2g}), current {row['current_pdf_s'] * 1e3:7.2f} "
          f"ms ({row['pdf_speedup']:.1f}x, err {row['current_pdf_max_rel_error']:.0e})")
    return row


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax_t, ax_e) = figure(2, width=5.5)
    rows = results["rows"]
    v = [r["vertices"] for r in rows]
    for key, style, label in (("previous_moments_s", "s--", "0.32.1 moments"),
                              ("current_moments_s", "o-", "current moments (graph API)"),
                              ("current_ffi_moments_s", "o:", "current moments (jitted FFI)"),
                              ("previous_pdf_s", "^--", "0.32.1 pdf, 7 times"),
                              ("current_pdf_s", "D-", "current pdf, 7 times")):
        ax_t.loglog(v, [r[key] * 1e3 for r in rows], style, label=label)
    ax_t.set_xlabel("vertices (Kingman n)")
    ax_t.set_ylabel("ms per call")
    ax_t.set_title("time, same models and inputs")
    big = rows[-1]
    for who, style in (("previous", "s--"), ("current", "o-")):
        errs = np.maximum(big[f"{who}_pdf_rel_errors"], 1e-17)
        ax_e.loglog(results["times"], errs, style, label=f"{who} (n={big['n']})")
    ax_e.set_xlabel("t")
    ax_e.set_ylabel("pdf relative error vs exact")
    ax_e.set_title("pdf accuracy")
    for ax in (ax_t, ax_e):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, "previous", quick)


if __name__ == "__main__":
    # Without --setup, run() decides (it creates the venv on a full run only).
    cli(run, "n = 10 only; no install",
        flags=[Flag("--setup", "setup", "create bench/.venv-previous even with --quick",
                    lambda on: True if on else None)])
