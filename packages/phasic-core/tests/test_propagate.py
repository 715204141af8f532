"""propagate (layered state from any start) and vertex_moments.

References, independent of the kernels' uniformization and elimination:
- scipy.linalg.expm of the dense block generator [[G, R, 0], [0, G, R], [0, 0, G]] over
  every vertex (absorbing ones with zero rows), read from the graph's JSON, for x, and
  of the augmented [[G, I], [0, 0]] for the accumulated time;
- the dense moment formulas E[Y^k | v] = k! ((-S)^{-1} R)^k 1 (continuous) and the
  first-step recursion (discrete, core_reference), with alpha = the unit vector of v;
- central finite differences for every derivative (theta, start, times).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from core_graphs import random_graph, with_defect
from core_reference import _discrete_moments, dense, finite_difference

import phasic
from phasic import Graph

TIMES = np.array([0.0, 0.3, 1.0, 2.5])


def generator(g: Graph, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pi, G, transient): the initial distribution over all vertices (a defect on its
    absorbing vertex), the generator over all vertices (rows of vertex 0 and of absorbing
    vertices zero) and the transient flags, from the JSON."""
    doc = json.loads(g.to_json())
    nv = len(doc["states"])
    w = np.array(doc["edges"]["weight"], dtype=np.float64)
    co = doc.get("coefficients") or {"edge": [], "param": [], "value": []}
    for e, p, v in zip(co["edge"], co["param"], co["value"], strict=True):
        w[e] += v * theta[p]
    pi, m = np.zeros(nv), np.zeros((nv, nv))
    for a, b, x in zip(doc["edges"]["from"], doc["edges"]["to"], w, strict=True):
        if a == 0:
            pi[b] += x
        else:
            m[a, b] += x
    pi /= pi.sum()
    m[np.diag_indices(nv)] -= m.sum(axis=1)
    transient = np.array([v > 0 and v in doc["edges"]["from"] for v in range(nv)])
    return pi, m, transient


def reference(g: Graph, theta: np.ndarray, start: np.ndarray, times: np.ndarray,
              rewards: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense x, dx (T, L, V) and acc (T, V).

    The block matrix is balanced first: with D = diag(c^-j) over the layers,
    exp(B t) = D exp(B' t) D^-1 where B' has R / c above the diagonal (c = the largest
    reward), so expm's error, relative to the largest entry of its result, is not
    swamped by layers that grow like (r t)^j / j! when the rewards dwarf the rates."""
    pi, gen, transient = generator(g, theta)
    nl, nv = start.shape
    r = np.where(transient, 1.0 if rewards is None else rewards, 0.0)
    c = r.max() if r.max() > 0 else 1.0
    big = np.zeros((nl * nv, nl * nv))
    for j in range(nl):
        big[j * nv:(j + 1) * nv, j * nv:(j + 1) * nv] = gen
        if j + 1 < nl:
            big[j * nv:(j + 1) * nv, (j + 1) * nv:(j + 2) * nv] = np.diag(r / c)
    eff = start.copy()
    eff += eff[:, :1] * pi[None, :]  # vertex 0 leaves at once by the initial distribution
    eff[:, 0] = 0.0
    layer_scale = c ** np.arange(nl)[:, None]
    xs, dxs, accs = [], [], []
    aug = np.zeros((2 * nv, 2 * nv))
    aug[:nv, :nv], aug[:nv, nv:] = gen, np.eye(nv)
    for t in times:
        y = (eff / layer_scale).reshape(-1) @ scipy.linalg.expm(big * t)
        xs.append(y.reshape(nl, nv) * layer_scale)
        dxs.append((y @ big).reshape(nl, nv) * layer_scale)
        accs.append(np.where(transient, eff[0] @ scipy.linalg.expm(aug * t)[:nv, nv:], 0.0))
    return np.array(xs), np.array(dxs), np.array(accs)


def close(got: np.ndarray, ref: np.ndarray, rtol: float = 1e-10, floor: float = 1e-13) -> None:
    """Entrywise rtol, with an absolute floor of `floor` x the largest entry of each
    layer: expm's accuracy is relative to its largest entries, and the kernel's cut to
    each layer's l1 size (1e-17 of it), not to entries far below them."""
    got, ref = np.asarray(got), np.asarray(ref)
    scale = np.max(np.abs(ref), axis=-1, keepdims=True)
    np.testing.assert_array_less(np.abs(got - ref), rtol * np.abs(ref) + floor * scale + 1e-300)


def random_start(rng: np.random.Generator, layers: int, nv: int) -> np.ndarray:
    """Layer 0 a distribution (mass on vertex 0 too), the others signed."""
    start = rng.normal(size=(layers, nv))
    start[0] = rng.dirichlet(np.ones(nv))
    return start


CASES = [(seed, cyclic) for seed in (1, 2, 5, 7) for cyclic in (False, True)]


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize(("seed", "cyclic"), CASES)
def test_matches_dense_block_expm(seed: int, cyclic: bool, layers: int) -> None:
    case = random_graph(seed, cyclic=cyclic)
    g, theta = case.graph, case.theta
    nv = g.vertices_length()
    rng = np.random.default_rng(seed)
    start = random_start(rng, layers, nv)
    for rewards in (None, rng.uniform(0.0, 2.0, size=nv)):
        x, dx, acc = phasic.propagate(g, theta, start, TIMES, rewards)
        assert x.shape == (len(TIMES), layers, nv) and acc.shape == (len(TIMES), nv)
        rx, rdx, racc = reference(g, theta, start, TIMES, rewards)
        close(x, rx)
        close(dx, rdx)
        close(acc, racc)


def test_defect_and_long_times() -> None:
    g, theta = with_defect(3, cyclic=True, discrete=False)
    nv = g.vertices_length()
    start = np.zeros((3, nv))
    start[0, 0] = 1.0
    times = np.array([0.05, 4.0, 30.0])
    rewards = np.linspace(0.1, 3.0, nv)
    x, dx, acc = phasic.propagate(g, theta, start, times, rewards)
    rx, rdx, racc = reference(g, theta, start, times, rewards)
    close(x, rx)
    close(dx, rdx)
    close(acc, racc)


def taylor(g: Graph, theta: np.ndarray, layers: int, t: float, rewards: np.ndarray,
           terms: int = 40) -> np.ndarray:
    """x(t) from e_0 by the Taylor series of exp(B t), for t small enough that its terms
    shrink at once: layer j starts at the term t^j, so its entries keep full relative
    precision however small they are (expm's error is relative to the largest entry)."""
    pi, gen, transient = generator(g, theta)
    nv = len(pi)
    r = np.where(transient, rewards, 0.0)
    x = np.zeros((layers, nv))
    x[0] = pi
    term, total = x.copy(), x.copy()
    for k in range(1, terms):
        nxt = term @ gen
        nxt[1:] += term[:-1] * r
        term = nxt * (t / k)
        total += term
    return total


def test_high_layers_keep_relative_accuracy_at_small_times() -> None:
    """Layer 3 at t = 1e-6 is ~1e-19: the cut is relative to each layer's own scale, so
    every entry within 1e-15 of its layer's largest is still exact to 1e-12."""
    case = random_graph(6, cyclic=True)
    g, theta = case.graph, case.theta
    nv = g.vertices_length()
    rewards = np.random.default_rng(6).uniform(0.5, 2.0, nv)
    start = np.zeros((4, nv))
    start[0, 0] = 1.0
    times = np.array([1e-6, 1e-3, 0.02])
    x, _, _ = phasic.propagate(g, theta, start, times, rewards)
    for i, t in enumerate(times):
        close(x[i], taylor(g, theta, 4, t, rewards), rtol=1e-12, floor=1e-15)


@pytest.mark.parametrize("scale", [0.01, 30.0])
def test_rewards_far_from_the_rates(scale: float) -> None:
    """Rewards 30x or 1/100 of the rates: layer j grows like (r t)^j / j!, and the cut
    bounds that growth."""
    case = random_graph(8, cyclic=True)
    g, theta = case.graph, case.theta
    nv = g.vertices_length()
    rng = np.random.default_rng(8)
    rewards = scale * rng.uniform(0.5, 1.5, nv)
    start = random_start(rng, 4, nv)
    times = np.array([0.1, 1.0, 4.0])
    x, dx, acc = phasic.propagate(g, theta, start, times, rewards)
    rx, rdx, racc = reference(g, theta, start, times, rewards)
    close(x, rx)
    close(dx, rdx)
    close(acc, racc)


def test_stiff_cycle_many_terms() -> None:
    """A fast cycle (rate 1000) with a slow exit: lambda t ~ 5000 terms, mass still
    transient at the cut, so the Poisson tails (not absorption) end the sweep."""
    g = Graph(1)
    a, b, c = (g.find_or_create_vertex((i,)) for i in (1, 2, 3))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1000.0])
    b.add_edge(a, [800.0])
    b.add_edge(c, 0.5)
    theta = np.array([1.0])
    start = np.zeros((3, 4))
    start[0, 0] = 1.0
    start[1, 2] = 0.25
    times = np.array([0.01, 1.0, 5.0])
    rewards = np.array([0.0, 1.0, 3.0, 0.0])
    x, dx, acc = phasic.propagate(g, theta, start, times, rewards)
    rx, rdx, racc = reference(g, theta, start, times, rewards)
    close(x, rx)
    close(dx, rdx)
    close(acc, racc)
    # the adjoint sweep (reverse mode in start) over the same ~5000 terms
    f = lambda s: flat(phasic.propagate(g, theta, s, times, rewards))  # noqa: E731
    fwd = np.asarray(jax.jacfwd(f)(jnp.asarray(start)))
    rev = np.asarray(jax.jacrev(f)(jnp.asarray(start)))
    assert np.abs(rev - fwd).max() <= 1e-11 * np.abs(fwd).max()


@pytest.mark.parametrize(("seed", "cyclic"), CASES)
def test_one_layer_is_state_at_time(seed: int, cyclic: bool) -> None:
    """start = e_0, one layer: bit for bit the state-at-time kernels; the pdf is the
    layer-0 derivative summed over the absorbing vertices."""
    g, theta = with_defect(seed, cyclic=cyclic, discrete=False)
    nv = g.vertices_length()
    start = np.zeros((1, nv))
    start[0, 0] = 1.0
    times = np.array([0.0, 0.2, 1.0, 3.0, 10.0])
    x, dx, acc = phasic.propagate(g, theta, start, times)
    prob = phasic.compute_state_probabilities_ffi(g, theta, times)
    visit = phasic.compute_accumulated_visiting_time_ffi(g, theta, times)
    assert np.array_equal(np.asarray(x[:, 0]), np.asarray(prob))
    assert np.array_equal(np.asarray(acc), np.asarray(visit))
    _, _, transient = generator(g, theta)
    absorbing = ~transient
    absorbing[0] = False
    pdf = np.asarray(dx[:, 0][:, absorbing].sum(axis=1))
    np.testing.assert_allclose(pdf, phasic.compute_pmf_ffi(g, theta, times), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize(("seed", "cyclic"), CASES)
def test_layers_at_absorption_are_reward_moments(seed: int, cyclic: bool) -> None:
    """Long after absorption, layer j on the absorbing vertices sums to E[Y^j] / j!."""
    case = random_graph(seed, cyclic=cyclic)
    g, theta = case.graph, case.theta
    nv = g.vertices_length()
    rewards = np.random.default_rng(seed).uniform(0.2, 2.0, size=nv)
    start = np.zeros((4, nv))
    start[0, 0] = 1.0
    x, _, _ = phasic.propagate(g, theta, start, np.array([400.0]), rewards)
    _, _, transient = generator(g, theta)
    assert np.abs(np.asarray(x[0][:, transient])).max() < 1e-13
    got = np.asarray(x[0]).sum(axis=1)[1:] * np.array([math.factorial(j) for j in (1, 2, 3)])
    want = phasic.compute_moments_ffi(g, theta, 3, rewards)
    np.testing.assert_allclose(got, want, rtol=1e-10)


# -- derivatives ----------------------------------------------------------------------------

def fixture_case(layers: int = 3) -> tuple[Graph, np.ndarray, np.ndarray, np.ndarray]:
    case = random_graph(4, cyclic=True, n_params=3)
    nv = case.graph.vertices_length()
    rng = np.random.default_rng(11)
    return case.graph, case.theta, random_start(rng, layers, nv), rng.uniform(0.2, 2.0, nv)


def flat(out: tuple) -> jax.Array:
    return jnp.concatenate([o.reshape(-1) for o in out])


def rel_close(got: np.ndarray, ref: np.ndarray, rtol: float) -> None:
    """|got - ref| <= rtol x max |ref| (finite differences err in absolute terms)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert np.abs(got - ref).max() <= rtol * np.abs(ref).max(), np.abs(got - ref).max()


def test_theta_jacobian_matches_finite_differences() -> None:
    g, theta, start, rewards = fixture_case()
    times = np.array([0.4, 1.5])
    jac = jax.jacfwd(lambda th: flat(phasic.propagate(g, th, start, times, rewards)))(theta)
    fd = finite_difference(lambda th: flat(phasic.propagate(g, th, start, times, rewards)),
                           theta)
    rel_close(jac, fd, 1e-6)
    rev = jax.jacrev(lambda th: flat(phasic.propagate(g, th, start, times, rewards)))(theta)
    np.testing.assert_allclose(rev, jac, rtol=1e-12, atol=1e-14)


def test_start_derivative_is_linear_and_transposes() -> None:
    g, theta, start, rewards = fixture_case()
    times = np.array([0.0, 0.7, 2.0])

    def f(s: jax.Array) -> jax.Array:
        return flat(phasic.propagate(g, theta, s, times, rewards))
    d = np.random.default_rng(3).normal(size=start.shape)
    _, tangent = jax.jvp(f, (jnp.asarray(start),), (jnp.asarray(d),))
    h = 1e-4
    fd = (np.asarray(f(start + h * d)) - np.asarray(f(start - h * d))) / (2 * h)
    rel_close(tangent, fd, 1e-6)
    # reverse mode (the adjoint sweep) against forward mode, entry by entry
    fwd = np.asarray(jax.jacfwd(f)(jnp.asarray(start)))
    rev = np.asarray(jax.jacrev(f)(jnp.asarray(start)))
    assert np.abs(rev - fwd).max() <= 1e-11 * np.abs(fwd).max()


def test_time_derivative_matches_finite_differences() -> None:
    g, theta, start, rewards = fixture_case()
    times = np.array([0.3, 1.2, 3.0])
    f = lambda t: flat(phasic.propagate(g, theta, start, t, rewards))  # noqa: E731
    jac = np.asarray(jax.jacfwd(f)(jnp.asarray(times)))
    fd = finite_difference(f, times, h=1e-5)
    rel_close(jac, fd, 1e-6)
    rev = np.asarray(jax.jacrev(f)(jnp.asarray(times)))
    np.testing.assert_allclose(rev, jac, rtol=1e-12, atol=1e-14)


def test_grad_through_two_epochs() -> None:
    """The epoch pattern: the end state of one call starts the next; grad in theta and
    in the epoch boundary against finite differences."""
    g, theta, _, rewards = fixture_case()
    nv = g.vertices_length()
    e0 = np.zeros((2, nv))
    e0[0, 0] = 1.0

    def loss(th: jax.Array, t1: jax.Array) -> jax.Array:
        x1, _, _ = phasic.propagate(g, th, e0, jnp.atleast_1d(t1), rewards)
        x2, dx2, acc2 = phasic.propagate(g, 1.5 * th, x1[0], jnp.array([0.8]), rewards)
        return jnp.sum(x2[0, 1] ** 2) + jnp.sum(dx2) + jnp.sum(acc2 * jnp.arange(nv))

    gt, g1 = jax.grad(loss, argnums=(0, 1))(jnp.asarray(theta), 0.6)
    fd = finite_difference(lambda th: loss(th, 0.6), theta)
    rel_close(gt, fd, 1e-6)
    fd1 = (loss(theta, 0.6 + 1e-5) - loss(theta, 0.6 - 1e-5)) / 2e-5
    assert abs(float(g1) - float(fd1)) <= 1e-6 * abs(float(fd1))


def test_jit_and_vmap() -> None:
    g, theta, start, rewards = fixture_case()
    times = np.array([0.5, 1.0])
    eager = phasic.propagate(g, theta, start, times, rewards)
    jitted = jax.jit(lambda th, s, t: phasic.propagate(g, th, s, t, rewards))(theta, start, times)
    for a, b in zip(eager, jitted, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    thetas = theta * np.array([[1.0], [0.7], [1.3]])
    starts = np.stack([start, 2 * start, -start])
    tss = np.stack([times, times * 2, times + 0.1])
    batched = jax.vmap(lambda th, s, t: phasic.propagate(g, th, s, t, rewards))(thetas, starts,
                                                                               tss)
    for b in range(3):
        one = phasic.propagate(g, thetas[b], starts[b], tss[b], rewards)
        for a, c in zip(one, batched, strict=True):
            np.testing.assert_allclose(np.asarray(c[b]), np.asarray(a), rtol=1e-14, atol=1e-16)

    def loss(th: jax.Array, s: jax.Array, t: jax.Array) -> jax.Array:
        x, dx, acc = phasic.propagate(g, th, s, t, rewards)
        return jnp.sum(x ** 2) + jnp.sum(dx) + jnp.sum(acc)

    grads = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2))))(thetas, starts, tss)
    for argnums in (1, 2, (1, 2)):  # without a theta tangent: the plain call's dx and ddx
        jitted = jax.jit(jax.grad(loss, argnums=argnums))(thetas[0], starts[0], tss[0])
        eager = jax.grad(loss, argnums=argnums)(thetas[0], starts[0], tss[0])
        for a, c in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
            np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-15)
    for b in range(3):
        one = jax.grad(loss, argnums=(0, 1, 2))(thetas[b], starts[b], tss[b])
        for a, c in zip(one, grads, strict=True):
            np.testing.assert_allclose(np.asarray(c[b]), np.asarray(a), rtol=1e-12, atol=1e-15)


def test_vmap_over_start_alone_under_grad() -> None:
    """Only start batched: the start map's batching rule broadcasts theta and times."""
    g, theta, start, rewards = fixture_case(2)
    times = np.array([0.5, 2.0])
    starts = np.stack([start, start[::-1], 0.5 * start])

    def loss(s: jax.Array) -> jax.Array:
        x, dx, acc = phasic.propagate(g, theta, s, times, rewards)
        return jnp.sum(x[:, 1] * jnp.arange(x.shape[-1])) + jnp.sum(dx ** 2) + acc[-1, 3]

    batched = jax.vmap(jax.grad(loss))(starts)
    for b in range(3):
        np.testing.assert_allclose(batched[b], jax.grad(loss)(starts[b]), rtol=1e-12,
                                   atol=1e-15)
    d = np.random.default_rng(5).normal(size=start.shape)
    fd = (loss(start + 1e-4 * d) - loss(start - 1e-4 * d)) / 2e-4
    assert abs(float(jnp.sum(batched[0] * d)) - float(fd)) <= 1e-7 * abs(float(fd))


SHARD_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 2)
from jax.sharding import PartitionSpec as P
import phasic
from test_propagate import fixture_case
g, theta, start, rewards = fixture_case(2)
mesh = jax.make_mesh((2,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
thetas = jnp.asarray(theta) * jnp.linspace(0.5, 2.0, 4)[:, None]
starts = jnp.stack([start, 2 * start, start[::-1], -start])
times = jnp.array([0.5, 1.5])

def one(th, s):
    x, dx, acc = phasic.propagate(g, th, s, times, rewards)
    return jnp.sum(x ** 2) + jnp.sum(dx * jnp.arange(dx.shape[-1])) + jnp.sum(acc)

def per_device(th, s):  # s: a block of starts (sharded) or one start (replicated)
    if s.ndim == 3:
        return jax.vmap(one)(th, s).sum()
    return jax.vmap(one, in_axes=(0, None))(th, s).sum()

for spec, s in ((P("d"), starts), (P(), starts[0])):
    total = jax.shard_map(lambda th, s: jax.lax.psum(per_device(th, s), "d"), mesh=mesh,
                          in_specs=(P("d"), spec), out_specs=P())
    got = jax.jit(jax.grad(total, argnums=(0, 1)))(thetas, s)
    want = jax.grad(per_device, argnums=(0, 1))(thetas, s)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
print("SHARD_OK", len(jax.devices()))
"""


def test_gradients_inside_shard_map() -> None:
    """Reverse mode in theta and start inside shard_map on 2 devices: a sharded start
    and a replicated one (its cotangent summed over the devices), against no sharding."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PHASIC_AUTO_INIT"] = "0"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARD_SCRIPT)], env=env,
                          capture_output=True, text=True, timeout=300,
                          cwd=str(pathlib.Path(__file__).parent))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARD_OK 2" in proc.stdout


def test_second_order_and_reward_tangents_are_refused() -> None:
    g, theta, start, rewards = fixture_case()
    times = np.array([1.0])

    def loss(th: jax.Array, s: jax.Array, r: jax.Array) -> jax.Array:
        return jnp.sum(phasic.propagate(g, th, s, times, r)[0])

    with pytest.raises(NotImplementedError, match="second"):
        jax.hessian(loss)(jnp.asarray(theta), start, rewards)
    with pytest.raises(NotImplementedError, match="second"):
        jax.hessian(loss, argnums=1)(theta, jnp.asarray(start), rewards)
    with pytest.raises(TypeError, match="rewards.*stop_gradient"):
        jax.grad(loss, argnums=2)(theta, start, jnp.asarray(rewards))


def test_discrete_graph_is_refused() -> None:
    case = random_graph(2, cyclic=True, discrete=True)
    nv = case.graph.vertices_length()
    with pytest.raises(ValueError, match="continuous graphs only"):
        phasic.propagate(case.graph, case.theta, np.eye(1, nv), np.array([1.0]))


# -- vertex_moments -------------------------------------------------------------------------

def dense_vertex_moments(g: Graph, theta: np.ndarray, k: int, rewards: np.ndarray | None,
                         ) -> np.ndarray:
    """(k, V) from the dense formulas, one unit start per transient vertex."""
    d = dense(g, theta)
    r = np.ones(len(d.transient)) if rewards is None else rewards[d.transient]
    out = np.zeros((k, d.vertices))
    for i, v in enumerate(d.transient):
        unit = dataclasses.replace(d, alpha=np.eye(len(d.transient))[i])
        if d.discrete:
            out[:, v] = _discrete_moments(unit, r, k)
        else:
            u = np.linalg.inv(-d.T) * r[None, :]
            vec = np.ones(len(d.transient))
            for kk in range(1, k + 1):
                vec = u @ vec
                out[kk - 1, v] = math.factorial(kk) * vec[i]
    return out


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize(("seed", "cyclic"), CASES)
def test_vertex_moments_match_dense(seed: int, cyclic: bool, discrete: bool) -> None:
    case = random_graph(seed, cyclic=cyclic, discrete=discrete)
    g, theta = case.graph, case.theta
    nv = g.vertices_length()
    rng = np.random.default_rng(seed)
    rewards = rng.uniform(0.0, 2.0, nv).round(0 if discrete else 6)
    for r in (None, rewards):
        got = np.asarray(phasic.vertex_moments(g, theta, 3, r))
        ref = dense_vertex_moments(g, theta, 3, r)
        # the dense inverse leaves ~1e-16 where the exact value is 0 (zero rewards ahead)
        atol = 1e-14 * np.abs(ref).max(axis=1, keepdims=True)
        assert np.all(np.abs(got[:, 1:] - ref[:, 1:]) <= 1e-10 * np.abs(ref[:, 1:]) + atol)
        # vertex 0 is the graph's own moments
        np.testing.assert_allclose(got[:, 0], phasic.compute_moments_ffi(g, theta, 3, r),
                                   rtol=1e-12)


def test_vertex_moments_derivatives_jit_vmap() -> None:
    g, theta, _, rewards = fixture_case()
    f = lambda th: phasic.vertex_moments(g, th, 3, rewards)  # noqa: E731
    jac = np.asarray(jax.jacfwd(f)(jnp.asarray(theta)))
    fd = finite_difference(lambda th: np.asarray(f(th)), theta)
    rel_close(jac, fd, 1e-6)
    np.testing.assert_allclose(jax.jacrev(f)(jnp.asarray(theta)), jac, rtol=1e-13, atol=0)
    thetas = theta * np.array([[1.0], [0.5]])
    batched = jax.jit(jax.vmap(f))(thetas)
    for b in range(2):
        assert np.array_equal(np.asarray(batched[b]), np.asarray(f(thetas[b])))
    with pytest.raises(NotImplementedError, match="second"):
        jax.hessian(lambda th: jnp.sum(f(th)))(jnp.asarray(theta))
