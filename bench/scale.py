"""Scale: the cost of a large structure on its way to the kernels, Kingman n up to 50.

    python bench/scale.py           # n = 20, 30, 40, 45, 50 (up to 204,000 vertices)
    python bench/scale.py --quick   # n = 10, 20, 30 (seconds)

Each n runs in its own child process, which reports:

  build       phasic.models.kingman(n) (built in C++)
  to_json     Graph.to_json()
  parse       Structure.from_json (read, validate and compile the structure once)
  first call  a jitted compute_moments_ffi(text, theta, 2): trace (validates, compiles
              and registers the structure under its digest), lower, XLA compile, run
  warm call   the same call again (median over rounds)
  program     the size of the lowered program's text: the FFI call carries only the
              structure's SHA-256 digest, so it does not grow with n
  peak RSS    the high-water mark (VmHWM) before the first call and at the end

The ratio first call / parse is what the transport costs beyond reading the structure
once (the target is at most 2). Nothing is asserted. Writes
bench/results/scale[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

THETA = 1.0
TIMEOUT = 1200.0


def worker(n: int) -> None:
    """One Kingman size in this (child) process; prints RESULT <json>."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import phasic
    from phasic import models
    from phasic._ext import core

    build_s, g = common.time_once(lambda: models.kingman(n))
    to_json_s, text = common.time_once(g.to_json)
    parse_s, _ = common.time_once(lambda: core().Structure.from_json(text))
    theta = jnp.array([THETA])
    f = jax.jit(lambda th: phasic.compute_moments_ffi(text, th, 2))
    before = common.peak_mib()
    first_s, moments = common.time_once(lambda: f(theta).block_until_ready())
    warm_s = common.timeit(lambda: f(theta).block_until_ready())
    program_bytes = len(f.lower(theta).as_text())
    mean = 2.0 * (1.0 - 1.0 / n) / THETA  # E[T_MRCA]
    common.emit({"n": n, "vertices": g.vertices_length(), "json_mb": len(text) / 1e6,
                 "build_s": build_s, "to_json_s": to_json_s, "parse_s": parse_s,
                 "first_call_s": first_s, "warm_call_s": warm_s,
                 "program_bytes": program_bytes, "peak_before_mib": before,
                 "peak_mib": common.peak_mib(), "mean_rel_error": abs(float(moments[0]) / mean - 1)})


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
          f"program {result['program_bytes']:,} B, peak RSS {result['peak_mib']:6.0f} MiB")
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    ok = [r for r in rows if "error" not in r]
    vs = [r["vertices"] for r in ok]
    fig, (ax1, ax2) = common.figure(ncols=2)
    for key, label in (("build_s", "build (C++)"), ("to_json_s", "to_json"),
                       ("parse_s", "parse"), ("first_call_s", "first jitted call"),
                       ("warm_call_s", "warm call")):
        ax1.plot(vs, [r[key] for r in ok], "o-", label=label)
    ax2.plot(vs, [r["peak_mib"] for r in ok], "o-", label="peak RSS (MiB)")
    ax2.plot(vs, [r["json_mb"] for r in ok], "s--", label="JSON text (MB)")
    ax2.plot(vs, [r["program_bytes"] / 1e6 for r in ok], "^:", label="lowered program (MB)")
    common.log_log_axes((ax1, ax2), "vertices (Kingman coalescent)", ("seconds", "size"),
                        ("Time", "Memory and program size"))
    common.save_figure(fig, "scale", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (10, 20, 30) if quick else (20, 30, 40, 45, 50)
    rows = [measure(n) for n in sizes]
    result = {"sizes": list(sizes), "theta": THETA, "rows": rows}
    common.finish("scale", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "small sizes only (seconds)",
               worker=lambda args: worker(int(args[0])),  # --worker N
               failed=lambda result: any("error" in r for r in result["rows"]))
