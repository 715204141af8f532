"""Cost of exact gradients: a value-and-gradient call against a value call.

    python bench/gradients.py [--quick]

For each FFI function (pdf at 7 times, 2 moments, both at once, and `phasic.loglik`)
on Kingman coalescents (1 parameter, the pdf times of the speed targets) and on a cyclic ring model
with 1, 2, 4 and 8 parameters (7 times around its mean), this times `jax.jit(f)` and
`jax.jit(jax.value_and_grad(f))` alternately in one run and reports the median ratio
next to the gradient cost bound, param_length + 2 (docs/pages/benchmarks.md).
The value-and-gradient call runs the C++ kernels once with forward-mode dual numbers
(about P + 1 value evaluations). Writes bench/results/gradients[-quick].json and .png.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import PDF_TIMES, cli, figure, finish, load, save_figure, timeit  # noqa: E402

import phasic  # noqa: E402
from phasic import (  # noqa: E402
    Graph,
    compute_moments_ffi,
    compute_pmf_and_moments_ffi,
    compute_pmf_ffi,
    models,
)


def ring(states: int, params: int) -> Graph:
    """A cyclic model: state i moves forward at rate theta[i % P], back at half of
    theta[(i + 1) % P]; the last state is absorbed at rate 1."""
    g = Graph(1)
    vs = [g.find_or_create_vertex((i + 1,)) for i in range(states + 1)]
    g.starting_vertex().add_edge(vs[0], 1.0)
    for i in range(states):
        fwd = [0.0] * params
        fwd[i % params] = 1.0
        vs[i].add_edge(vs[i + 1], fwd)
        if i > 0:
            back = [0.0] * params
            back[(i + 1) % params] = 0.5
            vs[i].add_edge(vs[i - 1], back)
    return g


def functions(js: str, times: jax.Array) -> dict[str, Callable[[jax.Array], jax.Array]]:
    """Scalar functions of theta, one per FFI entry point."""
    return {
        "pdf": lambda th: compute_pmf_ffi(js, th, times).sum(),
        "moments": lambda th: compute_moments_ffi(js, th, 2).sum(),
        "pdf_and_moments": lambda th: sum(
            x.sum() for x in compute_pmf_and_moments_ffi(js, th, times, 2)),
        "loglik": lambda th: phasic.loglik(js, th, times),
    }


def bulk_times(js: str, theta: np.ndarray) -> jax.Array:
    """Seven times around the mean absorption time (0.25 to 3 means): densities in the
    bulk, where every kernel needs the same number of uniformization steps."""
    mean = float(compute_moments_ffi(js, jnp.asarray(theta), 1)[0])
    return jnp.asarray(mean * np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]))


def measure(label: str, js: str, theta: np.ndarray, times: jax.Array,
            rounds: int) -> list[dict[str, Any]]:
    """Value and value-and-grad timed alternately `rounds` times (the machine is shared:
    alternating keeps both under the same load); the ratio is the median of the
    per-round ratios."""
    th = jnp.asarray(theta)
    rows = []
    for name, f in functions(js, times).items():
        value = jax.jit(f)
        both = jax.jit(jax.value_and_grad(f))
        tv, tb = [], []
        for _ in range(rounds):
            tv.append(timeit(lambda v=value: v(th).block_until_ready(), repeat=3))
            tb.append(timeit(lambda b=both: jax.block_until_ready(b(th)), repeat=3))
        ratio = float(np.median(np.array(tb) / np.array(tv)))
        p = int(theta.size)
        row = {"model": label, "function": name, "param_length": p,
               "value_s": float(np.median(tv)), "value_and_grad_s": float(np.median(tb)),
               "ratio": ratio, "bound": p + 2}
        print(f"  {label:<14} {name:<16} P={p}  value {row['value_s'] * 1e3:9.3f} ms  "
              f"value+grad {row['value_and_grad_s'] * 1e3:9.3f} ms  ratio {ratio:5.2f}  "
              f"(bound {p + 2})", flush=True)
        rows.append(row)
    return rows


def run(quick: bool) -> dict[str, Any]:
    load_start = load()
    rounds = 3 if quick else 5
    rows: list[dict[str, Any]] = []
    for n in (10, 20) if quick else (10, 20, 30):
        rows += measure(f"kingman n={n}", models.kingman(n).to_json(), np.array([1.0]),
                        jnp.asarray(PDF_TIMES), rounds)
    states = 60 if quick else 200
    for p in (1, 2, 4, 8):
        theta = np.linspace(0.8, 1.6, p)
        js = ring(states, p).to_json()
        rows += measure(f"ring m={states}", js, theta, bulk_times(js, theta), rounds)
    worst = max(rows, key=lambda r: r["ratio"] / r["bound"])
    within = all(r["ratio"] <= r["bound"] for r in rows)
    print(f"  every ratio within param_length + 2: {within} (closest: {worst['model']} "
          f"{worst['function']}, {worst['ratio']:.2f} of {worst['bound']})")
    finish("gradients", quick, {"rows": rows, "all_within_bound": within, "closest": worst},
           load_start, plot=lambda: plot(rows, quick))
    return {"rows": rows, "all_within_bound": within}


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = figure(width=7.5, height=4.5)
    names = ["pdf", "moments", "pdf_and_moments", "loglik"]
    labels = sorted({(r["model"], r["param_length"]) for r in rows},
                    key=lambda x: (x[0].startswith("ring"), x[1], x[0]))
    xs = np.arange(len(labels))
    for k, name in enumerate(names):
        ys = [next(r["ratio"] for r in rows if (r["model"], r["param_length"]) == lab
                   and r["function"] == name) for lab in labels]
        ax.bar(xs + (k - 1.5) * 0.2, ys, width=0.2, label=name)
    ax.scatter(xs, [p + 2 for _, p in labels], marker="_", s=600, color="black",
               label="bound P + 2", zorder=3)
    ax.set_xticks(xs, [f"{m}\nP={p}" for m, p in labels], fontsize=8)
    ax.set_ylabel("value+grad time / value time")
    ax.set_title("Cost of exact gradients (one run, side by side)")
    ax.legend(fontsize=8)
    save_figure(fig, "gradients", quick)


if __name__ == "__main__":
    cli(run, "small sizes (about a minute)")
