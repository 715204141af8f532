"""Scale: a large structure end to end, Kingman n up to 60 (966,468 vertices).

    python bench/scale.py           # n = 20, 30, 40, 45, 50, 55, 60
    python bench/scale.py --quick   # n = 10, 20, 30 (seconds)

Each n runs in its own child process, which reports the time and the peak RSS after
each step:

  build       phasic.models.kingman(n) (built in C++)
  to_json     Graph.to_json()
  parse       Structure.from_json (read, validate and compile the structure once); the
              RSS it adds while held is the structure's in-memory size
  first call  a jitted compute_moments_ffi(text, theta, 3): trace (validates, compiles
              and registers the structure under its digest), lower, XLA compile, run
  warm call   the same call again (median over rounds)
  pdf         a jitted compute_pmf_ffi at the 7 times of the speed target, first call
  gradient    a jitted jax.grad of the log-likelihood (sum of log pdf at those times)
              in theta, first call
  program     the size of the lowered program's text: the FFI call carries only the
              structure's SHA-256 digest, so it does not grow with n
  peak RSS    the high-water mark (VmHWM) before the first call and at the end

end to end = build + to_json + first call + pdf + gradient (what a user waits for).
The ratio first call / parse is what the transport costs beyond reading the structure
once (the target is at most 2). Nothing is asserted. Writes
bench/results/scale[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

THETA = 1.0
TIMEOUT = 3600.0  # n = 60 on a loaded 2-core machine: pdf and gradient take minutes


def worker(n: int) -> None:
    """One Kingman size in this (child) process; prints RESULT <json>."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import phasic
    from phasic import models
    from phasic._ext import core
    from phasic.reference import kingman_tmrca

    baseline = common.rss_mib()
    peaks: dict[str, float] = {}

    def step(name: str, fn: Any) -> tuple[float, Any]:
        seconds, out = common.time_once(fn)
        peaks[name] = common.peak_mib()
        return seconds, out

    build_s, g = step("build", lambda: models.kingman(n))
    to_json_s, text = step("to_json", g.to_json)
    held = common.rss_mib()
    parse_s, parsed = step("parse", lambda: core().Structure.from_json(text))
    structure_mib = common.rss_mib() - held
    del parsed
    theta = jnp.array([THETA])
    times = jnp.array(common.PDF_TIMES)
    f = jax.jit(lambda th: phasic.compute_moments_ffi(text, th, 3))
    before = common.peak_mib()
    first_s, moments = step("first_call", lambda: f(theta).block_until_ready())
    warm_s = common.timeit(lambda: f(theta).block_until_ready())
    pdf = jax.jit(lambda th: phasic.compute_pmf_ffi(text, th, times))
    pdf_s, density = step("pdf", lambda: pdf(theta).block_until_ready())
    loglik = jax.jit(jax.grad(lambda th: jnp.sum(phasic.compute_log_pmf_ffi(text, th, times))))
    grad_s, gradient = step("gradient", lambda: loglik(theta).block_until_ready())
    program_bytes = len(f.lower(theta).as_text())
    mean = 2.0 * (1.0 - 1.0 / n) / THETA  # E[T_MRCA]
    # theta scales time (pdf(t; theta) = theta f(theta t)), so at theta = 1 the exact
    # d/dtheta of sum log pdf is sum (1 + t f'(t) / f(t)), from the closed form.
    exact = kingman_tmrca(n, np.array(common.PDF_TIMES), THETA, digits=200)
    exact_grad = float(np.sum(1.0 + np.array(common.PDF_TIMES) * exact.slope / exact.pdf))
    common.emit({"n": n, "vertices": g.vertices_length(), "edges": g.edges_length(),
                 "json_mb": len(text) / 1e6,
                 "build_s": build_s, "to_json_s": to_json_s, "parse_s": parse_s,
                 "first_call_s": first_s, "warm_call_s": warm_s, "pdf_s": pdf_s,
                 "gradient_s": grad_s,
                 "end_to_end_s": build_s + to_json_s + first_s + pdf_s + grad_s,
                 "program_bytes": program_bytes, "baseline_mib": baseline,
                 "structure_mib": structure_mib, "peak_before_mib": before,
                 "peak_step_mib": peaks, "peak_mib": common.peak_mib(),
                 "mean_rel_error": abs(float(moments[0]) / mean - 1),
                 "pdf_max_rel_error": common.max_rel_error(np.asarray(density), exact.pdf),
                 "gradient_rel_error": abs(float(gradient[0]) / exact_grad - 1)})


def measure(n: int) -> dict[str, Any]:
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", str(n)]
    result, problem = common.run_json(cmd, env=common.nice_env(), timeout=TIMEOUT)
    if result is None:
        print(f"  n={n}: {problem}")
        return {"n": n, "error": problem}
    result["first_over_parse"] = result["first_call_s"] / result["parse_s"]
    print(f"  n={n:2d} ({result['vertices']:7,d} vertices, JSON {result['json_mb']:6.1f} MB): "
          f"parse {result['parse_s']:6.2f} s, first call {result['first_call_s']:6.2f} s "
          f"({result['first_over_parse']:.2f} x parse), warm {result['warm_call_s'] * 1e3:7.2f} ms, "
          f"pdf {result['pdf_s']:6.2f} s, gradient {result['gradient_s']:6.2f} s, "
          f"end to end {result['end_to_end_s']:6.2f} s, program {result['program_bytes']:,} B, "
          f"structure {result['structure_mib']:6.0f} MiB, peak RSS {result['peak_mib']:6.0f} MiB "
          f"(JAX baseline {result['baseline_mib']:4.0f} MiB)")
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    ok = [r for r in rows if "error" not in r]
    vs = [r["vertices"] for r in ok]
    fig, (ax1, ax2) = common.figure(ncols=2)
    for key, label in (("build_s", "build (C++)"), ("to_json_s", "to_json"),
                       ("parse_s", "parse"), ("first_call_s", "first jitted call"),
                       ("warm_call_s", "warm call"), ("pdf_s", "pdf, 7 times"),
                       ("gradient_s", "log-likelihood gradient"),
                       ("end_to_end_s", "end to end")):
        ax1.plot(vs, [r[key] for r in ok], "o-", label=label)
    ax2.plot(vs, [r["peak_mib"] for r in ok], "o-", label="peak RSS (MiB)")
    ax2.plot(vs, [r["structure_mib"] for r in ok], "v-", label="parsed structure (MiB)")
    ax2.plot(vs, [r["json_mb"] for r in ok], "s--", label="JSON text (MB)")
    ax2.plot(vs, [r["program_bytes"] / 1e6 for r in ok], "^:", label="lowered program (MB)")
    common.log_log_axes((ax1, ax2), "vertices (Kingman coalescent)", ("seconds", "size"),
                        ("Time", "Memory and program size"))
    common.save_figure(fig, "scale", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (10, 20, 30) if quick else (20, 30, 40, 45, 50, 55, 60)
    rows = [measure(n) for n in sizes]
    result = {"sizes": list(sizes), "theta": THETA, "rows": rows}
    common.finish("scale", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "small sizes only (seconds)",
               worker=lambda args: worker(int(args[0])),  # --worker N
               failed=lambda result: any("error" in r for r in result["rows"]))
