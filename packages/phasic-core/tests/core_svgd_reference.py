"""An independent SVGD in plain numpy (one process, one loop) to check phasic.svgd.

Written from the update rule of Liu & Wang (2016), not from phasic/inference.py: a loop
over particles (each summing over all others), a list of pair distances, numpy's
sort for the median, no JAX. phasic.svgd must reproduce it step by step to
rounding error on any device layout.
"""

from __future__ import annotations

import numpy as np

# The model the cross-layout tests use: exponential waiting times, Gamma(a, b) prior.
PRIOR_A, PRIOR_B = 2.0, 1.0


def exponential_data(n: int, rate: float, seed: int) -> np.ndarray:
    """n exponential waiting times with the given rate."""
    return np.random.default_rng(seed).exponential(1.0 / rate, n)


def exp_gamma_grad_log_z(z: np.ndarray, data: np.ndarray) -> np.ndarray:
    """d/dz of log posterior in z = log(rate), exponential likelihood, Gamma prior.

    log p = (a - 1 + n) log r - (b + sum t) r + z with r = e^z, so
    d/dz = (a + n) - (b + sum t) e^z.
    """
    return (PRIOR_A + data.size) - (PRIOR_B + data.sum()) * np.exp(z)


def gamma_posterior(data: np.ndarray) -> tuple[float, float]:
    """(shape, rate) of the conjugate Gamma posterior of the exponential rate."""
    return PRIOR_A + data.size, PRIOR_B + float(data.sum())


def initial_particles(n: int, d: int, seed: int, centre: np.ndarray, scale: float) -> np.ndarray:
    """The documented initial draw: centre * exp(scale * N(0, 1)) from default_rng(seed)."""
    return centre * np.exp(scale * np.random.default_rng(seed).standard_normal((n, d)))


def svgd(
    x0: np.ndarray, grad_log_p, n_steps: int, step_size: float, optimizer: str
) -> np.ndarray:
    """Run SVGD on particles x0 (n, d) with grad_log_p(x) -> (n, d); return them."""
    x = np.array(x0, dtype=np.float64)
    n, d = x.shape
    acc = np.zeros_like(x)
    for _ in range(n_steps):
        g = grad_log_p(x)
        pair_sq = [float(np.sum((x[i] - x[j]) ** 2)) for i in range(n) for j in range(i + 1, n)]
        med = np.sort(pair_sq)[(len(pair_sq) - 1) // 2]  # lower median
        h = med / np.log(n)
        phi = np.zeros_like(x)
        for i in range(n):  # one particle at a time, a sum over all j
            k = np.exp(-np.sum((x - x[i]) ** 2, axis=1) / h)[:, None]
            # grad_{x_j} k(x_j, x_i) = -2 (x_j - x_i) / h * k
            phi[i] = np.sum(k * g - 2.0 * (x - x[i]) / h * k, axis=0) / n
        if optimizer == "adagrad":
            acc += phi**2
            x = x + step_size * phi / (1e-8 + np.sqrt(acc))
        else:
            x = x + step_size * phi
    return x
