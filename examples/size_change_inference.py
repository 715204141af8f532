"""Infer a population size change (size ratio and time) from the SFS with SVGD.

    python examples/size_change_inference.py --out size_change_posterior.png
    python examples/size_change_inference.py --quick     # fewer loci, particles and steps

Data: the unfolded site frequency spectrum (SFS) of `--samples` haploid sequences at
`--loci` unlinked loci, simulated with msprime (infinite sites, `--mu` mutations per
unit of branch length per locus) under a size history of two epochs: size 1 from the
present back to time `--change` (coalescent units of the present size: one pair of
lineages coalesces at rate 1), size `--ratio` before it.

Model: phasic's block-counting Kingman graph with epochs. SVGD's particles are
x = (ratio, change time), mapped to the size history (1 until the change, ratio
before it: `phasic.models.SizeHistory`), that is, to theta of shape (2, 1) (the
pair-coalescence rate of each epoch, 1 and 1/ratio) and the breakpoint
tau = (change,). The expected branch lengths E[L_i] come from
phasic.models.expected_sfs (epoch moments with the SFS class rewards), exact in
theta and tau, and the SFS counts are Poisson with means
mu * loci * E[L_i] (the Poisson random field: given the genealogies the counts are
Poisson; that genealogies vary between loci adds a relative variance of about
mu Var(L_i) / E[L_i], a few percent at the default mu = 0.01). Prior: independent log-normals, log ratio ~ N(0, 1) and
log change ~ N(log 0.5, 1).

Why the SFS and not the coalescence times themselves: the density of an absorption
time jumps at a breakpoint (the exit rate changes there), so the likelihood of
observed times jumps whenever tau crosses an observation; gradients cannot see such
jumps. The expected SFS is smooth in tau.

Check: the exact posterior on a grid, from E[L_i] computed here with numpy by the
classical formula E[L_i] = sum_k k E[T_k] C(n-i-1, k-2) / C(n-1, k-1) (the
topology of the coalescent does not depend on the sizes) with E[T_k], the time spent
with k lineages, from the lineage-count chain in each epoch (eigen-decomposition):
nothing from phasic. The last line printed is `RESULT {json}` for scripts and tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import phasic  # noqa: E402

PRIOR_SD = 1.0  # of log ratio and of log change time
PRIOR_CHANGE_MEDIAN = 0.5


def simulate_sfs(n: int, ratio: float, change: float, loci: int, mu: float,
                 seed: int) -> np.ndarray:
    """The SFS (counts of sites carried by i = 1..n-1 samples) over `loci` unlinked loci.

    msprime draws a genealogy per locus (ploidy 1 and size 1: a pair of lineages
    coalesces at rate 1 per unit time; the size is `ratio` before, i.e. older than,
    `change`). Infinite-sites mutations at rate `mu` per unit of branch length put
    Poisson(mu * b_i) sites in class i of a locus whose branches subtending i samples
    have total length b_i (msprime's branch-mode SFS); a sum of independent Poissons
    is Poisson, so one draw per class with mean mu * sum over loci of b_i is the same.
    """
    import msprime

    demography = msprime.Demography()
    demography.add_population(name="pop", initial_size=1.0)
    demography.add_population_parameters_change(time=change, initial_size=ratio,
                                                population="pop")
    replicates = msprime.sim_ancestry(samples=n, ploidy=1, demography=demography,
                                      sequence_length=1, random_seed=seed,
                                      num_replicates=loci)
    lengths = np.zeros(n + 1)
    for ts in replicates:
        lengths += ts.allele_frequency_spectrum(mode="branch", polarised=True,
                                                span_normalise=False)
    rng = np.random.default_rng(seed)
    return rng.poisson(mu * lengths[1:n]).astype(np.float64)


def history(x: jax.Array) -> phasic.models.SizeHistory:
    """Particle x = (ratio, change) -> the size history: 1 until the change, then ratio."""
    return phasic.models.SizeHistory(jnp.stack([jnp.ones((), x.dtype), x[0]]), x[1:2])


class SfsLoglik:
    """Poisson log-likelihood of the SFS at particle x, through phasic's epoch moments."""

    def __init__(self, n: int, scale: float) -> None:
        self.n = n
        self.scale = scale  # mu * loci: expected sites per unit of branch length

    def __call__(self, x: jax.Array, sfs: jax.Array) -> jax.Array:
        lam = self.scale * phasic.models.expected_sfs(self.n, history(x))
        return jnp.sum(sfs * jnp.log(lam) - lam)


def log_prior(x: jax.Array) -> jax.Array:
    """Log-normal priors on the ratio (median 1) and the change time, up to a constant."""
    centre = jnp.array([0.0, np.log(PRIOR_CHANGE_MEDIAN)])
    z = jnp.log(x)
    return -jnp.sum(z) - 0.5 * jnp.sum(((z - centre) / PRIOR_SD) ** 2)


def log_prior_np(ratio: np.ndarray, change: np.ndarray) -> np.ndarray:
    """`log_prior` in numpy, for the grid."""
    z1, z2 = np.log(ratio), np.log(change) - np.log(PRIOR_CHANGE_MEDIAN)
    return -z1 - z2 - 0.5 * (z1**2 + z2**2) / PRIOR_SD**2


def expected_lengths_np(n: int, ratio: np.ndarray, change: np.ndarray) -> np.ndarray:
    """E[L_i], i = 1..n-1, under the two-epoch history; shape ratio/change broadcast + (n-1,).

    The lineage count falls n -> ... -> 1 at rates c k(k-1)/2 (c = 1, then 1/ratio);
    its generator c B has B bidiagonal with distinct eigenvalues -k(k-1)/2, so
    B = V diag(d) V^-1 and, with alpha = (1, 0, ...),
    time with k lineages before the change: alpha V diag((e^(d tau) - 1) / d) V^-1,
    after it: alpha V diag(e^(d tau)) V^-1 (-B)^-1 * ratio.
    """
    k = np.arange(n, 1, -1)
    rates = k * (k - 1) / 2.0
    sub = np.diag(-rates) + np.diag(rates[:-1], 1)
    d, vecs = np.linalg.eig(sub)
    d, vecs = d.real, vecs.real
    inv = np.linalg.inv(vecs)
    a = vecs[0]
    r = np.asarray(ratio, dtype=float)[..., None]
    c = np.asarray(change, dtype=float)[..., None]
    before = ((a * np.expm1(d * c) / d) @ inv)
    at_change = (a * np.exp(d * c)) @ inv
    after = at_change @ np.linalg.inv(-sub) * r
    occupancy = before + after  # E[T_k], k = n..2
    # P(a given one of k lineages subtends i samples) = C(n-i-1, k-2) / C(n-1, k-1)
    p = np.array([[math.comb(n - ii - 1, kv - 2) / math.comb(n - 1, kv - 1)
                   for kv in k] for ii in range(1, n)])
    return (occupancy * k) @ p.T


def grid_posterior(sfs: np.ndarray, n: int, scale: float, ratios: np.ndarray,
                   changes: np.ndarray) -> np.ndarray:
    """The normalized posterior density on the grid ratios x changes (trapezoid rule)."""
    rr, cc = np.meshgrid(ratios, changes, indexing="ij")
    lam = scale * expected_lengths_np(n, rr, cc)
    logp = np.sum(sfs * np.log(lam) - lam, axis=-1) + log_prior_np(rr, cc)
    dens = np.exp(logp - logp.max())
    return dens / np.trapezoid(np.trapezoid(dens, changes, axis=1), ratios)


def grid_moments(dens: np.ndarray, ratios: np.ndarray, changes: np.ndarray) -> dict:
    """Marginal means and sds of ratio and change time under the grid posterior."""
    out = {}
    for name, axis_values, marginal in (
        ("ratio", ratios, np.trapezoid(dens, changes, axis=1)),
        ("change", changes, np.trapezoid(dens, ratios, axis=0)),
    ):
        mean = np.trapezoid(axis_values * marginal, axis_values)
        sd = np.sqrt(np.trapezoid((axis_values - mean) ** 2 * marginal, axis_values))
        out[name] = (float(mean), float(sd))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=6, help="sequences per locus (n)")
    ap.add_argument("--ratio", type=float, default=3.0, help="true ancestral / present size")
    ap.add_argument("--change", type=float, default=0.4, help="true time of the change")
    ap.add_argument("--loci", type=int, default=40000, help="unlinked loci")
    ap.add_argument("--mu", type=float, default=0.01,
                    help="mutations per unit of branch length per locus")
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--step-size", type=float, default=0.3)
    ap.add_argument("--grid", type=int, default=800, help="grid points per axis")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true",
                    help="15000 loci, 32 particles, 400 steps, a 200-point grid")
    ap.add_argument("--out", default="size_change_posterior.png", help="PNG of the posterior")
    args = ap.parse_args(argv)
    if args.quick:
        args.loci, args.particles, args.steps, args.grid = 15000, 32, 400, 200
    phasic.init_parallel()  # a no-op for one process; joins phasic-launch / srun ranks

    sfs = simulate_sfs(args.samples, args.ratio, args.change, args.loci, args.mu, args.seed)
    scale = args.mu * args.loci
    res = phasic.svgd(
        None, sfs, log_likelihood=SfsLoglik(args.samples, scale), log_prior=log_prior,
        init=np.array([1.0, PRIOR_CHANGE_MEDIAN]), n_particles=args.particles,
        n_steps=args.steps, step_size=args.step_size, seed=args.seed,
    )
    x = res.particles
    lo, hi = np.quantile(x, [0.025, 0.975], axis=0)

    # log-spaced axes: the prior is log-normal; 3-4 prior sds on each side
    ratios = np.exp(np.linspace(np.log(0.05), np.log(40.0), args.grid))
    changes = np.exp(np.linspace(np.log(0.02), np.log(5.0), args.grid))
    dens = grid_posterior(sfs, args.samples, scale, ratios, changes)
    exact = grid_moments(dens, ratios, changes)
    summary = {
        "true": {"ratio": args.ratio, "change": args.change},
        "sfs": sfs.tolist(),
        "svgd_mean": {"ratio": float(x[:, 0].mean()), "change": float(x[:, 1].mean())},
        "svgd_sd": {"ratio": float(x[:, 0].std()), "change": float(x[:, 1].std())},
        "svgd_95": {"ratio": [float(lo[0]), float(hi[0])],
                    "change": [float(lo[1]), float(hi[1])]},
        "grid_mean": {k: v[0] for k, v in exact.items()},
        "grid_sd": {k: v[1] for k, v in exact.items()},
        "devices": res.n_devices,
        "seconds": round(res.seconds, 2),
        "png": args.out,
    }
    if jax.process_index() == 0:
        plot(x, ratios, changes, dens, args)
        for k in ("ratio", "change"):
            print(f"{k:6s}: true {summary['true'][k]:g}; SVGD mean {summary['svgd_mean'][k]:.4f} "
                  f"(sd {summary['svgd_sd'][k]:.4f}, 95 % [{summary['svgd_95'][k][0]:.3f}, "
                  f"{summary['svgd_95'][k][1]:.3f}]); exact posterior mean "
                  f"{summary['grid_mean'][k]:.4f} (sd {summary['grid_sd'][k]:.4f})")
        print(f"SFS of {args.samples} sequences at {args.loci} loci: {sfs.astype(int).tolist()}; "
              f"{args.particles} particles on "
              f"{res.n_devices} device(s), {res.seconds:.1f} s; plot: {args.out}")
        print("RESULT " + json.dumps(summary))
    return summary


def plot(x: np.ndarray, ratios: np.ndarray, changes: np.ndarray, dens: np.ndarray,
         args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_r, ax_c) = plt.subplots(1, 3, figsize=(13, 4))
    keep_r = np.trapezoid(dens, changes, axis=1)
    keep_c = np.trapezoid(dens, ratios, axis=0)
    sel_r = keep_r > 1e-4 * keep_r.max()
    sel_c = keep_c > 1e-4 * keep_c.max()
    sub = dens[np.ix_(sel_r, sel_c)]
    levels = sub.max() * np.array([0.011, 0.135, 0.607])  # 3, 2, 1 sd of a Gaussian
    ax.contour(changes[sel_c], ratios[sel_r], sub, levels=levels, colors="k",
               linewidths=0.8)
    ax.scatter(x[:, 1], x[:, 0], s=10, alpha=0.7, label=f"SVGD particles ({len(x)})")
    ax.plot([args.change], [args.ratio], "x", color="C3", ms=10, mew=2, label="truth")
    ax.set_xlabel("change time (coalescent units)")
    ax.set_ylabel("size ratio (ancestral / present)")
    ax.set_title("joint posterior (contours: exact grid)")
    ax.legend()
    for axis, values, marginal, col, sel, label, true in (
        (ax_r, ratios, keep_r, 0, sel_r, "size ratio", args.ratio),
        (ax_c, changes, keep_c, 1, sel_c, "change time", args.change),
    ):
        axis.hist(x[:, col], bins=max(8, len(x) // 4), density=True, alpha=0.5, label="SVGD")
        axis.plot(values[sel], marginal[sel], "k-", label="exact (grid)")
        axis.axvline(true, color="C3", ls="--", label=f"truth {true:g}")
        axis.set_xlabel(label)
        axis.set_ylabel("posterior density")
        axis.legend()
    fig.suptitle(f"size change from the SFS of n = {args.samples} at {args.loci} loci")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
