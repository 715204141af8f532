"""Exact derivatives through the FFI functions and `phasic.loglik`.

References are independent of the C++ kernels: central finite differences of the
dense-matrix formulas in core_reference.py (agreement <= 1e-6 relative; the differences
themselves are good to ~1e-9), and closed forms for the Kingman coalescent and for
exponential / Erlang / geometric distributions (agreement <= 1e-9 relative).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import core_reference as reference
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_graphs import random_graph

import phasic
from phasic import (
    Graph,
    compute_log_pmf_ffi,
    compute_moments_ffi,
    compute_pmf_and_moments_ffi,
    compute_pmf_ffi,
    models,
)
from phasic.reference import kingman_tmrca

FD_RTOL = 1e-6


def central_fd(fn, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fn(theta), its Jacobian by central differences, shape fn(theta).shape + (P,))."""
    cols = []
    for p in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[p]))
        e = np.zeros_like(theta)
        e[p] = h
        cols.append((np.asarray(fn(theta + e)) - np.asarray(fn(theta - e))) / (2 * h))
    return np.asarray(fn(theta)), np.stack(cols, axis=-1)


def assert_jac_close(got, fd: tuple[np.ndarray, np.ndarray], rtol: float = FD_RTOL) -> None:
    """Relative agreement entry by entry. Entries far below their row's largest one, or
    below the function's own size, are compared against 1e-3 of that: finite
    differences return ~1e-11 |f| of rounding noise where the exact derivative is 0."""
    f, want = fd
    got, want = np.atleast_2d(np.asarray(got)), np.atleast_2d(np.asarray(want))
    f = np.atleast_1d(np.abs(f)).reshape(want.shape[:-1] + (1,))
    assert got.shape == want.shape
    floor = 1e-3 * np.maximum(np.abs(want).max(axis=-1, keepdims=True), f)
    scale = np.maximum(np.abs(want), floor)
    scale = np.where(scale == 0, 1.0, scale)
    err = np.abs(got - want) / scale
    assert err.max() <= rtol, f"max relative error {err.max():.3g}\n{got}\n{want}"


CASES = [(seed, cyclic, discrete) for cyclic in (False, True) for discrete in (False, True)
         for seed in (1, 2, 3, 4, 6)]


@pytest.mark.parametrize(("seed", "cyclic", "discrete"), CASES)
def test_random_graphs_against_finite_differences(seed: int, cyclic: bool, discrete: bool) -> None:
    case = random_graph(seed, cyclic=cyclic, discrete=discrete, n_states=int(8 + 4 * seed),
                        n_params=1 + seed % 4)
    js, theta = case.graph.to_json(), case.theta
    th = jnp.asarray(theta)
    # moments, plain and with rewards
    k = 3
    rng = np.random.default_rng(seed)
    rewards = rng.uniform(0.0, 2.0, size=len(case.graph.vertices()))
    jac = jax.jacrev(lambda t: compute_moments_ffi(js, t, k))(th)
    assert_jac_close(jac, central_fd(lambda t: reference.moments(js, t, k), theta))
    jac = jax.jacfwd(lambda t: compute_moments_ffi(js, t, 2, rewards=rewards))(th)
    assert_jac_close(jac, central_fd(lambda t: reference.moments(js, t, 2, rewards), theta))
    # pdf / pmf
    if discrete:
        times = np.array([1.0, 2.0, 3.0, 7.0, 20.0])
        ref = lambda t: reference.pmf(js, t, times)  # noqa: E731
    else:
        times = np.array([0.05, 0.5, 1.5, 4.0])
        ref = lambda t: reference.pdf(js, t, times)  # noqa: E731
    jac = jax.jacrev(lambda t: compute_pmf_ffi(js, t, times, discrete=discrete))(th)
    assert_jac_close(jac, central_fd(ref, theta))
    # log-likelihood, over the times of positive probability (a discrete graph can
    # have P(T = 1) = 0 exactly; test_loglik_discrete_tiny_and_exact_zero covers -inf)
    seen = times[ref(theta) > 0]
    assert seen.size >= 2
    grad = jax.grad(lambda t: phasic.loglik(js, t, seen, discrete=discrete))(th)
    fd = central_fd(lambda t: np.log(ref(t)[ref(theta) > 0]).sum(), theta)
    assert_jac_close(grad, fd)


def test_more_parameters_than_one_dual_block() -> None:
    """11 parameters: the C++ side runs blocks of 8 and 3 directions."""
    case = random_graph(11, cyclic=True, n_states=16, n_params=11)
    js, theta = case.graph.to_json(), case.theta
    times = np.array([0.2, 1.0, 3.0])
    pmf, mom = jax.jacfwd(lambda t: compute_pmf_and_moments_ffi(js, t, times, 2))(
        jnp.asarray(theta))
    assert pmf.shape == (3, 11) and mom.shape == (2, 11)
    assert_jac_close(pmf, central_fd(lambda t: reference.pdf(js, t, times), theta))
    assert_jac_close(mom, central_fd(lambda t: reference.moments(js, t, 2), theta))


# -- Kingman: closed forms ----------------------------------------------------------


def kingman_exact(n: int, theta: float, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T_MRCA's density f_theta(t) = theta f_1(theta t) and d f / d theta = f_1(u) + u
    f_1'(u) at u = theta t, from the exact hypoexponential closed form."""
    u = theta * np.asarray(times)
    f1, _, slope = kingman_tmrca(n, u)
    return theta * f1, f1 + u * slope


@pytest.mark.parametrize("n", [4, 10])
def test_kingman_analytic(n: int) -> None:
    g = models.kingman(n)
    js = g.to_json()
    theta = 1.7
    th = jnp.array([theta])
    # E[T_MRCA] = 2 (1 - 1/n) / theta; E[T^2] scales as 1/theta^2
    d_mean = jax.grad(lambda t: compute_moments_ffi(js, t, 1)[0])(th)[0]
    np.testing.assert_allclose(d_mean, -2 * (1 - 1 / n) / theta**2, rtol=1e-12)
    var1 = sum(4 / (k**2 * (k - 1) ** 2) for k in range(2, n + 1))
    m2_1 = var1 + (2 * (1 - 1 / n)) ** 2
    d_m2 = jax.jacrev(lambda t: compute_moments_ffi(js, t, 2))(th)[1, 0]
    np.testing.assert_allclose(d_m2, -2 * m2_1 / theta**3, rtol=1e-12)
    # total branch length: E[L] = 2 sum 1/i / theta
    r = models.kingman_total_length_rewards(g)
    d_len = jax.grad(lambda t: compute_moments_ffi(js, t, 1, rewards=r)[0])(th)[0]
    np.testing.assert_allclose(d_len, -2 * sum(1 / i for i in range(1, n)) / theta**2,
                               rtol=1e-12)
    # f_theta(t) = theta f_1(theta t)  =>  df/dtheta = f_1(theta t) + theta t f_1'(theta t)
    t = np.array([0.2, 0.6, 1.0, 2.0, 3.5])
    f, df = kingman_exact(n, theta, t)
    got = jax.jacfwd(lambda x: compute_pmf_ffi(js, x, t))(th)[:, 0]
    np.testing.assert_allclose(got, df, rtol=1e-9)
    # d/dtheta sum log f = sum (1/theta + t f_1'/f_1) = sum df / f
    got = jax.grad(lambda x: phasic.loglik(js, x, t))(th)[0]
    np.testing.assert_allclose(got, np.sum(df / f), rtol=1e-9)


# -- piecewise uniformization (acyclic graphs whose fast states empty early) ---------


def fast_to_slow(seed: int) -> tuple[Graph, np.ndarray]:
    """An acyclic chain with skips whose exit rates fall from ~300 to ~0.5 along it,
    with constant and theta-coefficient weights over 1-4 parameters: one sweep at the
    largest rate would take thousands of steps, while the pieces lower their rate as
    the fast states empty."""
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(12, 26)), int(rng.integers(1, 5))
    theta = rng.uniform(0.5, 2.0, size=p)
    g = Graph(1)
    vs = [g.find_or_create_vertex((k + 1,)) for k in range(n + 1)]  # vs[n] absorbs
    g.starting_vertex().add_edge(vs[0], 0.7)
    g.starting_vertex().add_edge(vs[1], 0.3)
    for i in range(n):
        scale = 300.0 * (500.0 / 0.5) ** (-i / (n - 1))
        targets = {i + 1} | {int(j) for j in rng.integers(i + 1, n + 1, size=2)}
        for j in sorted(targets):
            if rng.random() < 0.3:
                vs[i].add_edge(vs[j], float(scale * rng.uniform(0.2, 1.0)))
            else:
                c = rng.uniform(0.1, 1.0, size=p) * (rng.random(p) < 0.6)
                c[rng.integers(p)] += 0.3
                vs[i].add_edge(vs[j], (scale * c).tolist())
    return g, theta


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_piecewise_derivatives_against_finite_differences(seed: int) -> None:
    g, theta = fast_to_slow(seed)
    js, th = g.to_json(), jnp.asarray(theta)
    mean = float(reference.moments(js, theta, 1)[0])
    times = mean * np.array([0.02, 0.3, 1.0, 2.0, 4.0])
    before = phasic._core.sweep_counts()
    f = compute_pmf_ffi(js, th, times)
    jac = jax.jacfwd(lambda t: compute_pmf_ffi(js, t, times))(th)
    logf = compute_log_pmf_ffi(js, th, times)
    dlogf = jax.jacfwd(lambda t: compute_log_pmf_ffi(js, t, times))(th)
    after = phasic._core.sweep_counts()
    # every continuous sweep above ran piecewise (values, derivatives, log, its derivatives)
    assert after["piecewise"] - before["piecewise"] == 4
    assert after["single"] == before["single"]
    ref = lambda t: reference.pdf_expm(js, t, times)  # noqa: E731
    np.testing.assert_allclose(f, ref(theta), rtol=1e-9, atol=0)
    assert_jac_close(jac, central_fd(ref, theta))
    np.testing.assert_allclose(logf, np.log(ref(theta)), rtol=1e-9, atol=0)
    assert_jac_close(dlogf, central_fd(lambda t: np.log(ref(t)), theta))


def test_kingman_piecewise_derivatives_against_closed_form() -> None:
    # n = 20 at theta = 1.3: 190 theta is the largest rate, so 7 times up to 5 take the
    # piecewise sweep (~1200 steps in one sweep), including the far left tail (f ~ 1e-21).
    n, theta = 20, 1.3
    js, th = models.kingman(n).to_json(), jnp.array([theta])
    t = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0])
    f, df = kingman_exact(n, theta, t)
    before = phasic._core.sweep_counts()["piecewise"]
    got = jax.jacfwd(lambda x: compute_pmf_ffi(js, x, t))(th)[:, 0]
    grad = jax.grad(lambda x: phasic.loglik(js, x, t))(th)[0]
    assert phasic._core.sweep_counts()["piecewise"] - before == 2
    np.testing.assert_allclose(compute_pmf_ffi(js, th, t), f, rtol=1e-10, atol=0)
    np.testing.assert_allclose(got, df, rtol=1e-9, atol=0)
    np.testing.assert_allclose(grad, np.sum(df / f), rtol=1e-9)


# -- loglik: tiny densities, exact zeros, bad times -----------------------------------


def erlang(k: int) -> Graph:
    """k exponential stages in a row, each at rate theta[0]."""
    g = Graph(1)
    vs = [g.find_or_create_vertex((i + 1,)) for i in range(k + 1)]
    g.starting_vertex().add_edge(vs[0], 1.0)
    for a, b in zip(vs[:-1], vs[1:], strict=False):
        a.add_edge(b, [1.0])
    return g


def erlang_logpdf(k: int, theta: float, t: np.ndarray) -> np.ndarray:
    return k * np.log(theta) + (k - 1) * np.log(t) - theta * t - math.lgamma(k)


@pytest.mark.parametrize(("k", "times"), [
    (1, [700.0, 736.8, 800.0, 5000.0]),      # e^-737 ~ 1e-320 (subnormal); below the range
    (10, [1e-40, 1e-20, 1.0, 3000.0]),        # left tail ~1e-360 and right tail ~e^-3000
])
def test_loglik_tiny_densities(k: int, times: list[float]) -> None:
    js = erlang(k).to_json()
    theta = 1.0
    t = np.array(times)
    got = compute_log_pmf_ffi(js, jnp.array([theta]), t)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, erlang_logpdf(k, theta, t), rtol=1e-10)
    # d/dtheta log f = k / theta - t, summed
    val, grad = jax.value_and_grad(lambda x: phasic.loglik(js, x, t))(jnp.array([theta]))
    np.testing.assert_allclose(val, erlang_logpdf(k, theta, t).sum(), rtol=1e-10)
    np.testing.assert_allclose(grad[0], np.sum(k / theta - t), rtol=1e-10)


def geometric(p_stay: float, defect: float = 0.0) -> Graph:
    """Discrete: leave with probability theta[0] per step, else stay."""
    g = Graph(1, discrete=True)
    a = g.find_or_create_vertex((1,))
    b = g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0 - defect)
    if defect:
        g.starting_vertex().add_edge(b, defect)
    a.add_edge(b, [1.0])
    return g


def test_loglik_discrete_tiny_and_exact_zero() -> None:
    p = 0.01
    js = geometric(p).to_json()
    k = np.array([1.0, 10.0, 100_000.0])  # (1-p)^(k-1) p: the last is ~e^-1005
    want = (k - 1) * np.log1p(-p) + np.log(p)
    got = compute_log_pmf_ffi(js, jnp.array([p]), k, discrete=True)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    grad = jax.grad(lambda x: phasic.loglik(js, x, k, discrete=True))(jnp.array([p]))
    np.testing.assert_allclose(grad[0], np.sum(1 / p - (k - 1) / (1 - p)), rtol=1e-9)
    # time 0 without a defect has probability exactly 0: -inf, truly
    assert phasic.loglik(js, jnp.array([p]), [0.0, 3.0], discrete=True) == -np.inf
    # with a defect of 0.25, P(T = 0) = 0.25
    js = geometric(p, defect=0.25).to_json()
    np.testing.assert_allclose(compute_log_pmf_ffi(js, jnp.array([p]), [0.0], discrete=True),
                               [np.log(0.25)], rtol=1e-14)


def test_loglik_matches_log_of_pdf_on_random_graphs() -> None:
    for seed in (1, 2):
        case = random_graph(seed, cyclic=True, n_states=20, n_params=2)
        js, th = case.graph.to_json(), jnp.asarray(case.theta)
        t = jnp.array([0.01, 0.3, 2.0, 6.0])
        np.testing.assert_allclose(phasic.loglik(js, th, t),
                                   np.log(reference.pdf(js, case.theta, t)).sum(), rtol=1e-10)


def test_loglik_bad_times() -> None:
    js = erlang(2).to_json()
    th = jnp.array([1.0])
    with pytest.raises(ValueError, match=r"observed_times\[1\].*-0.5.*>= 0"):
        phasic.loglik(js, th, [1.0, -0.5])
    with pytest.raises(ValueError, match="finite"):
        phasic.loglik(js, th, [np.nan])
    with pytest.raises(ValueError, match="whole numbers"):
        phasic.loglik(geometric(0.5).to_json(), jnp.array([0.5]), [1.5], discrete=True)
    # traced times are checked by the kernel, at run time
    with pytest.raises(Exception, match=r"times\[0\] is -1.*>= 0"):
        jax.jit(lambda t: phasic.loglik(js, th, t))(jnp.array([-1.0, 2.0])).block_until_ready()
    assert np.isfinite(phasic.loglik(js, th, [1.0]))  # the process carries on


# -- transformations ------------------------------------------------------------------


@pytest.fixture(scope="module")
def island():
    g = models.two_island(3)
    return g.to_json()


def test_grad_under_jit_vmap_and_nested_vmap(island) -> None:
    js = island
    t = jnp.array([0.1, 1.0, 3.0])

    def f(th):
        return compute_pmf_ffi(js, th, t).sum() + compute_moments_ffi(js, th, 2).sum()

    thetas = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, (6, 2)))
    loop = np.stack([jax.grad(f)(x) for x in thetas])
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.grad(f)))(thetas), loop, rtol=1e-13)
    nested = jax.vmap(jax.vmap(jax.grad(f)))(thetas.reshape(2, 3, 2))
    np.testing.assert_allclose(nested.reshape(6, 2), loop, rtol=1e-13)
    # in_axes other than 0: theta batched along axis 1
    np.testing.assert_allclose(jax.vmap(jax.grad(f), in_axes=1)(thetas.T), loop, rtol=1e-13)
    # grad of a vmapped sum equals the per-element grads
    g = jax.jit(jax.grad(lambda x: jax.vmap(f)(x).sum()))(thetas)
    np.testing.assert_allclose(g, loop, rtol=1e-13)


def test_times_batched_with_grad(island) -> None:
    js = island
    th = jnp.array([1.2, 0.8])
    ts = jnp.array([[0.5], [1.0], [2.0]])
    got = jax.vmap(lambda t: jax.grad(lambda x: compute_pmf_ffi(js, x, t).sum())(th))(ts)
    loop = np.stack([jax.grad(lambda x, t=t: compute_pmf_ffi(js, x, t).sum())(th) for t in ts])
    np.testing.assert_allclose(got, loop, rtol=1e-13)


def test_value_and_grad_jacrev_jacfwd_agree(island) -> None:
    js = island
    th = jnp.array([1.3, 0.6])
    t = jnp.array([[0.2, 0.9], [1.7, 4.0]])  # any shape of times

    def both(x):
        return compute_pmf_and_moments_ffi(js, x, t, 3)

    rev, fwd = jax.jacrev(both)(th), jax.jacfwd(both)(th)
    assert rev[0].shape == (2, 2, 2) and rev[1].shape == (3, 2)
    for a, b in zip(rev, fwd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    np.testing.assert_allclose(rev[0], jax.jacrev(lambda x: compute_pmf_ffi(js, x, t))(th),
                               rtol=1e-14)
    np.testing.assert_allclose(rev[1], jax.jacrev(lambda x: compute_moments_ffi(js, x, 3))(th),
                               rtol=1e-14)
    val, grad = jax.value_and_grad(lambda x: phasic.loglik(js, x, t))(th)
    np.testing.assert_allclose(val, np.log(compute_pmf_ffi(js, th, t)).sum(), rtol=1e-10)
    np.testing.assert_allclose(grad, jax.jacfwd(lambda x: phasic.loglik(js, x, t))(th),
                               rtol=1e-14)
    # second derivatives are refused with a clear message, never returned as zeros
    with pytest.raises(NotImplementedError, match="second and higher derivatives"):
        jax.hessian(lambda x: compute_pmf_ffi(js, x, t).sum())(th)
    with pytest.raises(NotImplementedError, match="second and higher derivatives"):
        jax.grad(lambda x: jax.grad(lambda y: phasic.loglik(js, y, t))(x).sum())(th)


def test_tangents_for_times_or_rewards_are_refused(island) -> None:
    js = island
    th = jnp.array([1.0, 1.0])
    with pytest.raises(TypeError, match="theta only.*times"):
        jax.grad(lambda t: compute_pmf_ffi(js, th, t).sum())(jnp.array([1.0, 2.0]))
    r = jnp.ones(len(models.two_island(3).vertices()))
    with pytest.raises(TypeError, match="theta only.*rewards"):
        jax.grad(lambda rr: compute_moments_ffi(js, th, 1, rewards=rr)[0])(r)
    with pytest.raises(TypeError, match="theta only.*times"):
        jax.grad(lambda t: phasic.loglik(js, th, t))(jnp.array([1.0]))


def test_error_inside_a_batch_raises_and_process_survives(island) -> None:
    js = island
    t = jnp.array([0.5, 1.0])
    thetas = jnp.array([[1.0, 1.0], [1.0, 0.5], [-3.0, 1.0], [2.0, 2.0]])
    fn = jax.jit(jax.vmap(jax.grad(lambda x: phasic.loglik(js, x, t))))
    with pytest.raises(Exception, match=r"batch element 2 of 4.*weight"):
        fn(thetas).block_until_ready()
    with pytest.raises(Exception, match=r"batch element 2 of 4.*weight"):
        jax.vmap(jax.jacrev(lambda x: compute_moments_ffi(js, x, 2)))(thetas).block_until_ready()
    good = fn(thetas[:2])
    assert np.all(np.isfinite(good))


SHARD_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 8)
from jax.sharding import PartitionSpec as P
import phasic
from phasic import compute_moments_ffi, compute_pmf_and_moments_ffi, models
js = models.two_island(3).to_json()
t = jnp.array([0.3, 1.0, 2.5])
assert len(jax.devices()) == 8
mesh = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
thetas = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, (16, 2)))

def per_theta(x):
    pmf, mom = compute_pmf_and_moments_ffi(js, x, t, 2)
    return phasic.loglik(js, x, t) + mom.sum() + pmf.sum()

def local(xs):
    return jax.vmap(jax.value_and_grad(per_theta))(xs)

sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
val, grad = sharded(thetas)
ref_val, ref_grad = jax.vmap(jax.value_and_grad(per_theta))(thetas)
np.testing.assert_allclose(val, ref_val, rtol=1e-13)
np.testing.assert_allclose(grad, ref_grad, rtol=1e-13)

def local_rev(xs):  # reverse mode through a sum over this device's shard, jacrev inside
    g = jax.grad(lambda y: jax.vmap(per_theta)(y).sum())(xs)
    j = jax.vmap(jax.jacrev(lambda y: compute_moments_ffi(js, y, 2)))(xs)
    return g, j

g, j = jax.jit(jax.shard_map(local_rev, mesh=mesh, in_specs=P("d"), out_specs=P("d")))(thetas)
np.testing.assert_allclose(g, ref_grad, rtol=1e-13)
np.testing.assert_allclose(j, jax.vmap(jax.jacfwd(lambda y: compute_moments_ffi(js, y, 2)))(
    thetas), rtol=1e-13)
print("SHARD_OK", len(jax.devices()))
"""


def test_gradients_inside_shard_map_on_8_devices() -> None:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PHASIC_AUTO_INIT"] = "0"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARD_SCRIPT)], env=env,
                          capture_output=True, text=True, timeout=300,
                          cwd=str(Path(__file__).parent))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARD_OK 8" in proc.stdout
