"""Direct tests of the C++ extension `phasic._core` against independent dense references.

References: dense linear algebra (numpy.linalg.solve, scipy.linalg.expm), exact forward
propagation of (state, accumulated reward) distributions for discrete chains, and the
Kingman closed forms listed in docs/pages/accuracy.md (Reference closed forms).
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import scipy.linalg
from core_graphs import compiled_chain as _compiled
from core_graphs import dense_builder as dense

from phasic import _core

# ---------------------------------------------------------------- helpers


def random_builder(
    seed: int, n: int, *, discrete: bool, cyclic: bool, params: int = 2
) -> _core.GraphBuilder:
    """A random graph with n transient states and 1-2 absorbing states.

    Acyclic graphs only have edges i -> j with j > i; cyclic ones also go back.
    Every transient state gets an edge to the next state or to absorption, so all
    can reach absorption.
    """
    rng = np.random.default_rng(seed)
    b = _core.GraphBuilder(1, discrete)
    b.set_param_length(params)
    verts = [b.find_or_create_vertex([i + 1]) for i in range(n)]
    absorbing = [b.find_or_create_vertex([n + 1 + a]) for a in range(rng.integers(1, 3))]
    # Initial distribution, possibly with a defect.
    starts = rng.choice(n, size=min(n, 3), replace=False)
    probs = rng.dirichlet(np.ones(len(starts))) * rng.choice([1.0, 0.9])
    for s, p in zip(starts, probs, strict=True):
        b.add_edge(0, verts[s], float(p))
    if probs.sum() < 1.0 - 1e-9:  # start weights are relative: the defect is an edge
        b.add_edge(0, absorbing[0], 1.0 - float(probs.sum()))
    for i in range(n):
        targets = {i + 1 if i + 1 < n else -1}
        for _ in range(rng.integers(0, 4)):
            j = int(rng.integers(0, n)) if cyclic else int(rng.integers(i + 1, n + 1))
            targets.add(j if j < n else -1)
        targets.discard(i)
        outs = []
        for j in sorted(targets):
            dst = verts[j] if j >= 0 else absorbing[int(rng.integers(len(absorbing)))]
            if dst in outs:
                continue
            outs.append(dst)
        # Discrete rows: weight <= 0.2 + 2.0 (theta sums to 2) per edge, so rows stay <= 1.
        scale = 1.0 / ((len(outs) + 1) * 2.2) if discrete else 1.0
        for dst in outs:
            coefs = list(rng.uniform(0.1, 1.0, size=params) * scale)
            b.add_edge(verts[i], dst, float(rng.uniform(0.0, 0.2) * scale), coefs)
    return b


def ffi_digest(text: str) -> str:
    """Registers `text` for the FFI targets, as phasic.ffi does, and returns its digest."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    _core.register_structure(digest, text)
    return digest


THETA = np.array([0.7, 1.3])

# ---------------------------------------------------------------- Kingman


@pytest.mark.parametrize("n", range(2, 13))
def test_kingman_closed_forms(n: int) -> None:
    b = _core.kingman(n)
    s = b.compile()
    assert s.acyclic and s.fill_length == 0
    assert s.transient_length == b.vertices_length() - 2  # start and MRCA
    m = s.moments([1.0], 2)
    e_t = 2 * (1 - 1 / n)
    var_t = sum(4 / (k * k * (k - 1) ** 2) for k in range(2, n + 1))
    np.testing.assert_allclose(m[0], e_t, rtol=1e-12)
    np.testing.assert_allclose(m[1] - m[0] ** 2, var_t, rtol=1e-12)
    states = [b.vertex_state(v) for v in range(b.vertices_length())]
    total = np.array([sum(st) for st in states], dtype=float)
    total[0] = 0.0
    mt = s.moments([1.0], 2, total)
    h1 = sum(1 / i for i in range(1, n))
    h2 = sum(1 / i**2 for i in range(1, n))
    np.testing.assert_allclose(mt[0], 2 * h1, rtol=1e-12)
    np.testing.assert_allclose(mt[1] - mt[0] ** 2, 4 * h2, rtol=1e-12)
    for i in range(1, n):
        r = np.array([st[i - 1] for st in states], dtype=float)
        r[0] = 0.0
        r[-1] = 0.0 if states[-1] == [0] * (n - 2) + [1] else r[-1]
        np.testing.assert_allclose(s.moments([1.0], 1, r)[0], 2 / i, rtol=1e-12)
    # theta scales time: E[T] at rate theta is E[T] / theta.
    np.testing.assert_allclose(s.moments([2.5], 1)[0], e_t / 2.5, rtol=1e-12)


def test_kingman_state_counts() -> None:
    # p(n) - 1 transient states (docs/pages/accuracy.md), plus the start and the MRCA vertex.
    for n, transient in [(10, 41), (20, 626), (30, 5603)]:
        assert _core.kingman(n).compile().transient_length == transient


# ---------------------------------------------------------------- random graphs, continuous

CASES = [
    (seed, n, cyclic)
    for seed, n, cyclic in [
        (1, 2, False),
        (2, 5, False),
        (3, 12, False),
        (4, 30, False),
        (5, 3, True),
        (6, 8, True),
        (7, 17, True),
        (8, 30, True),
    ]
]


@pytest.mark.parametrize(("seed", "n", "cyclic"), CASES)
def test_continuous_moments_vs_dense(seed: int, n: int, cyclic: bool) -> None:
    b = random_builder(seed, n, discrete=False, cyclic=cyclic)
    s = b.compile()
    alpha, S, _, transient = dense(b, THETA)
    U = np.linalg.inv(-S)
    rng = np.random.default_rng(seed + 100)
    rewards = rng.uniform(0.0, 2.0, size=b.vertices_length())
    rewards[rng.integers(1, b.vertices_length())] = 0.0
    for r in [None, rewards]:
        rt = np.ones(len(transient)) if r is None else r[transient]
        y = np.ones(len(transient))
        want = []
        for k in range(1, 5):
            y = U @ (rt * y)
            want.append(math.factorial(k) * alpha @ y)
        got = s.moments(THETA, 4, r)
        np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize(("seed", "n", "cyclic"), CASES)
def test_continuous_pdf_cdf_vs_expm(seed: int, n: int, cyclic: bool) -> None:
    b = random_builder(seed, n, discrete=False, cyclic=cyclic)
    s = b.compile()
    alpha, S, exit_, _ = dense(b, THETA)
    times = np.array([0.0, 1e-3, 0.05, 0.3, 1.0, 2.5, 7.0, 20.0])
    ref_pdf, ref_cdf = [], []
    for t in times:
        e = alpha @ scipy.linalg.expm(S * t)
        ref_pdf.append(e @ exit_)
        ref_cdf.append(1.0 - e.sum())
    ref_pdf, ref_cdf = np.array(ref_pdf), np.array(ref_cdf)
    pdf, cdf = s.pdf(THETA, times), s.cdf(THETA, times)
    big = ref_pdf >= 1e-12 * ref_pdf.max()
    # expm itself is accurate to ~1e-13 relative here; the kernel promises 1e-8.
    np.testing.assert_allclose(pdf[big], ref_pdf[big], rtol=1e-8, atol=0)
    np.testing.assert_allclose(cdf, ref_cdf, rtol=1e-8, atol=1e-14)


def test_pdf_left_tail_kingman_against_expm() -> None:
    # The previous phasic was off by 94 % at t = 0.05 for n = 20; use n = 8 so expm is cheap,
    # and small times where the density is tiny but still above 1e-12 of its max.
    b = _core.kingman(8)
    s = b.compile()
    alpha, S, exit_, _ = dense(b, np.array([1.0]))
    times = np.array([0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0, 10.0])
    ref = np.array([alpha @ scipy.linalg.expm(S * t) @ exit_ for t in times])
    got = s.pdf([1.0], times)
    big = ref >= 1e-12 * ref.max()
    assert big.sum() >= 6
    np.testing.assert_allclose(got[big], ref[big], rtol=1e-8)


# ---------------------------------------------------------------- random graphs, discrete


def exact_reward_moments(alpha, P, exit_, rewards, k):
    """E[Y^i], i = 1..k, by propagating the joint law of (state, accumulated integer reward)."""
    n = len(alpha)
    rmax = int(rewards.max())
    width = 4000
    joint = np.zeros((n, width))
    joint[:, 0] = alpha
    absorbed = np.zeros(width)
    for _ in range(100_000):
        # Reward of the current state is collected, then one step is taken.
        shifted = np.zeros_like(joint)
        for j in range(n):
            shifted[j, int(rewards[j]) :] = joint[j, : width - int(rewards[j])]
        absorbed += exit_ @ shifted
        joint = P.T @ shifted
        if joint.sum() < 1e-17:
            break
        assert joint[:, width - rmax - 1 :].sum() == 0.0
    y = np.arange(width, dtype=float)
    return [float(absorbed @ y**i) for i in range(1, k + 1)]


@pytest.mark.parametrize(
    ("seed", "n", "cyclic"), [(11, 4, False), (12, 9, False), (13, 5, True), (14, 10, True)]
)
def test_discrete_pmf_and_moments(seed: int, n: int, cyclic: bool) -> None:
    b = random_builder(seed, n, discrete=True, cyclic=cyclic)
    s = b.compile()
    alpha, P, exit_, transient = dense(b, THETA)
    start = [(dst, w + np.dot(vals, THETA[ps])) for dst, w, ps, vals in b.out_edges(0)]
    defect = sum(w for dst, w in start if dst not in transient) / sum(w for _, w in start)
    ks = np.array([0, 1, 2, 3, 5, 8, 13, 40])
    want = [defect if k == 0 else alpha @ np.linalg.matrix_power(P, k - 1) @ exit_ for k in ks]
    np.testing.assert_allclose(s.pdf(THETA, ks), want, rtol=1e-12, atol=1e-300)
    cum = [
        defect + sum(alpha @ np.linalg.matrix_power(P, j - 1) @ exit_ for j in range(1, k + 1))
        for k in ks
    ]
    np.testing.assert_allclose(s.cdf(THETA, ks), cum, rtol=1e-12)
    # Moments of T (rewards 1) against (I - P)^-1 formulas.
    N = np.linalg.inv(np.eye(len(alpha)) - P)
    e1 = alpha @ N @ np.ones(len(alpha))
    e2 = alpha @ N @ (2 * N - np.eye(len(alpha))) @ np.ones(len(alpha))
    np.testing.assert_allclose(s.moments(THETA, 2), [e1, e2], rtol=1e-10)
    # Integer rewards against the exact joint law of (state, accumulated reward).
    rng = np.random.default_rng(seed)
    rewards = rng.integers(0, 3, size=b.vertices_length()).astype(float)
    want = exact_reward_moments(alpha, P, exit_, rewards[transient], 3)
    np.testing.assert_allclose(s.moments(THETA, 3, rewards), want, rtol=1e-9)


# ---------------------------------------------------------------- JSON


def test_json_round_trip_and_schema() -> None:
    b = random_builder(21, 9, discrete=False, cyclic=True)
    text = b.serialize()
    doc = json.loads(text)
    assert doc["format"] == "phasic.graph" and doc["version"] == 1
    assert set(doc) == {
        "format",
        "version",
        "discrete",
        "state_length",
        "param_length",
        "states",
        "edges",
        "coefficients",
    }
    b2 = _core.GraphBuilder.from_json(text)
    assert b2.serialize() == text
    for v in range(b.vertices_length()):
        assert b2.out_edges(v) == b.out_edges(v)
        assert b2.vertex_state(v) == b.vertex_state(v)
    # Text written by another JSON writer reads the same.
    s1 = _core.Structure.from_json(json.dumps(doc, indent=2))
    np.testing.assert_array_equal(s1.moments(THETA, 3), b.compile().moments(THETA, 3))


def test_builder_basics() -> None:
    b = _core.GraphBuilder(2, False)
    assert b.vertices_length() == 1 and b.vertex_state(0) == [0, 0]
    v = b.find_or_create_vertex([1, 2])
    assert b.find_or_create_vertex([1, 2]) == v and b.find_vertex([5, 5]) == -1
    b.add_edge(0, v, 1.0)
    w = b.find_or_create_vertex([0, 1])
    b.add_edge(v, w, 0.5, [0.0, 0.0, 2.0])
    assert b.param_length() == 3 and b.edges_length() == 2
    assert b.out_edges(v) == [(w, 0.5, [2], [2.0])]  # sparse: parameter indices, coefficients
    with pytest.raises(ValueError, match="below the 3 parameters"):
        b.set_param_length(2)
    b.set_param_length(4)
    s = b.compile()
    assert (s.param_length, s.vertices_length, s.edges_length) == (4, 3, 2)
    np.testing.assert_allclose(s.moments([0, 0, 1.0, 9], 1), [1 / 2.5])


# ---------------------------------------------------------------- bad inputs


def _tiny() -> dict:
    return {
        "format": "phasic.graph",
        "version": 1,
        "discrete": False,
        "state_length": 1,
        "param_length": 1,
        "states": [[0], [1], [2]],
        "edges": {"from": [0, 1], "to": [1, 2], "weight": [1.0, 0.0]},
        "coefficients": {"edge": [1], "param": [0], "value": [1.0]},
    }


def _with(path: str, value) -> str:
    doc = _tiny()
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return json.dumps(doc)


BAD_JSON = [
    (_with("extra", 1), r"unknown key 'extra'"),
    (_with("version", 2), r"version: this reader supports version 1, got 2"),
    (_with("format", "x"), r"format: expected \"phasic.graph\""),
    (_with("edges", KeyError), r"missing key 'edges'"),
    (_with("edges.to", [1, 40]), r"edges.to\[1\]: vertex 40 does not exist \(the graph has 3"),
    (_with("edges.to", [1, 0]), r"edges.to\[1\]: edges into vertex 0"),
    (_with("edges.to", [1, 1]), r"edges\[1\]: self-loop on vertex 1"),
    (_with("edges.weight", [1.0]), r"edges.weight: has 1 entries but edges.from has 2"),
    (_with("edges.weight", [1.0, "a"]), r"edges.weight\[1\]: expected a number"),
    (_with("states", [[0], [1], [1]]), r"states\[2\]: duplicates states\[1\]"),
    (_with("states", [[0], [1, 1], [2]]), r"states\[1\]: has 2 entries but states\[0\] has 1"),
    (_with("states", [[3], [1], [2]]), r"states\[0\]: the starting vertex's state must be all"),
    (_with("states", [[0], [1.5], [2]]), r"states\[1\]\[0\]: expected an integer"),
    (_with("coefficients.param", [1]), r"coefficients.param\[0\]: parameter 1 is not below"),
    (_with("coefficients.edge", [5]), r"coefficients.edge\[0\]: edge 5 does not exist"),
    (_with("discrete", 0), r"discrete: expected true or false"),
    (_with("edges.weight", [1.0, float("nan")]), r"edges.weight\[1\]: non-finite"),
    (_with("edges.weight", [1.0, 1e999]), r"edges.weight\[1\]: non-finite"),
    (json.dumps(_tiny())[:-1], r"expected '}' but the text ended"),
    (json.dumps(_tiny()) + "x", r"unexpected text after the JSON object"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON)
def test_bad_json(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _core.Structure.from_json(text)
    with pytest.raises(ValueError, match=message):
        _core.GraphBuilder.from_json(text)


def test_bad_builder_calls() -> None:
    b = _core.GraphBuilder(1, False)
    v = b.find_or_create_vertex([1])
    with pytest.raises(ValueError, match="state_length = 1 entries, got 2"):
        b.find_or_create_vertex([1, 2])
    with pytest.raises(ValueError, match="target vertex 9 does not exist"):
        b.add_edge(v, 9, 1.0)
    with pytest.raises(ValueError, match="self-loop on vertex 1"):
        b.add_edge(v, v, 1.0)
    with pytest.raises(ValueError, match="into vertex 0"):
        b.add_edge(v, 0, 1.0)
    w = b.find_or_create_vertex([2])
    b.add_edge(v, w, 1.0)
    with pytest.raises(ValueError, match="duplicate edge 1 -> 2"):
        b.add_edge(v, w, 2.0)
    with pytest.raises(ValueError, match="must be finite"):
        b.add_edge(0, w, float("nan"))
    with pytest.raises(ValueError, match=r"kingman\(n\) needs 2 <= n"):
        _core.kingman(1)


def test_structural_trap_is_reported() -> None:
    with pytest.raises(ValueError, match=r"vertex 2 \(state \[2\]\) cannot reach an absorbing"):
        _compiled(
            [(0, 1, 1.0, []), (1, 2, 1.0, []), (2, 3, 1.0, []), (3, 2, 1.0, []), (1, 4, 1.0, [])]
        )


PER_THETA = [
    # (edges, discrete, theta, call, message)
    (
        [(0, 1, 1.0, []), (1, 2, 0.0, [1.0])],
        False,
        [-0.5],
        "moments",
        r"edge 1 \(vertex 1 \u2192 vertex 2\) has weight -0.5 for this theta",
    ),
    ([(0, 1, 1.0, []), (1, 2, 0.0, [1.0])], False, [float("nan")], "pdf", r"theta\[0\] is nan"),
    (
        [(0, 1, 1.0, []), (1, 2, 0.0, [1.0])],
        False,
        [1.0, 2.0],
        "cdf",
        r"theta has length 2 but the graph has 1 parameter",
    ),
    (
        [(0, 1, 0.0, [1.0]), (1, 2, 1.0, [])],
        False,
        [0.0],
        "moments",
        r"start.* weights sum to 0 at theta = \[0\].*must be finite and > 0",
    ),
    (
        [(0, 1, 1.0, []), (1, 2, 0.0, [1.0])],
        False,
        [0.0],
        "moments",
        r"vertex 1 \(state \[1\]\) has total out-rate 0 for this theta",
    ),
    # A cycle 1 <-> 2 whose only exit has rate 0 for this theta.
    (
        [(0, 1, 1.0, []), (1, 2, 1.0, []), (2, 1, 1.0, []), (2, 3, 0.0, [1.0])],
        False,
        [0.0],
        "moments",
        r"cannot reach absorption for this theta",
    ),
    (
        [(0, 1, 1.0, []), (1, 2, 0.0, [1.0])],
        True,
        [1.2],
        "pdf",
        r"vertex 1 \(state \[1\]\) has out-probabilities summing to 1.2 > 1",
    ),
]


@pytest.mark.parametrize(("edges", "discrete", "theta", "call", "message"), PER_THETA)
def test_bad_theta(edges, discrete, theta, call, message) -> None:
    s = _compiled(edges, discrete=discrete)
    with pytest.raises(ValueError, match=message):
        if call == "moments":
            s.moments(theta, 2)
        else:
            getattr(s, call)(theta, [0.0, 1.0])


def test_bad_rewards_and_times() -> None:
    s = _compiled([(0, 1, 1.0, []), (1, 2, 0.0, [1.0])])
    with pytest.raises(ValueError, match="rewards has length 2 but the graph has 3 vertices"):
        s.moments([1.0], 1, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"rewards\[1\] is -1"):
        s.moments([1.0], 1, [0.0, -1.0, 0.0])
    with pytest.raises(ValueError, match=r"times\[1\] is -1"):
        s.pdf([1.0], [0.0, -1.0])
    d = _compiled([(0, 1, 1.0, []), (1, 2, 0.0, [0.5])], discrete=True)
    with pytest.raises(ValueError, match="whole numbers of steps"):
        d.pdf([1.0], [1.5])


# ---------------------------------------------------------------- FFI handlers and cache


@pytest.fixture(scope="module")
def ffi_call():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    for name, capsule in _core.ffi_targets().items():
        try:
            jax.ffi.register_ffi_target(f"test_core_ext_{name}", capsule, platform="cpu")
        except Exception:  # already registered by an earlier module instance
            pass

    def call(name, outs, *args, **attrs):
        return jax.ffi.ffi_call(f"test_core_ext_{name}", outs, vmap_method="broadcast_all")(
            *args, **attrs
        )

    return jax, call


def test_ffi_moments_pmf_and_cache(ffi_call) -> None:
    jax, call = ffi_call
    import jax.numpy as jnp

    b = _core.kingman(6)
    text = b.serialize()
    digest = ffi_digest(text)
    s = b.compile()
    thetas = jnp.array([[1.0], [2.0], [0.5]])
    rewards = jnp.zeros((3, 0))
    before = _core.cache_stats()
    out = call(
        "phasic_moments",
        jax.ShapeDtypeStruct((3, 3), jnp.float64),
        thetas,
        rewards,
        digest=digest,
        nr_moments=np.int64(3),
    )
    for i in range(3):
        np.testing.assert_allclose(out[i], s.moments(thetas[i], 3), rtol=1e-14)
    times = jnp.array([[0.1, 1.0], [0.2, 2.0], [0.3, 3.0]])
    pdf = call(
        "phasic_pmf",
        jax.ShapeDtypeStruct((3, 2), jnp.float64),
        thetas,
        times,
        digest=digest,
        discrete=False,
    )
    for i in range(3):
        np.testing.assert_allclose(pdf[i], s.pdf(thetas[i], times[i]), rtol=1e-14)
    after = _core.cache_stats()
    assert after["misses"] - before["misses"] <= 1  # parsed at most once on this thread
    assert after["hits"] - before["hits"] >= 1
    assert after["entries"] >= 1 and after["capacity"] >= 1


def test_ffi_batch_error_names_element(ffi_call) -> None:
    jax, call = ffi_call
    import jax.numpy as jnp

    text = _core.kingman(4).serialize()
    thetas = jnp.array([[1.0], [1.0], [-2.0], [-3.0]])
    with pytest.raises(Exception, match=r"batch element 2 of 4: edge \d+ .* has weight -"):
        call(
            "phasic_moments",
            jax.ShapeDtypeStruct((4, 2), jnp.float64),
            thetas,
            jnp.zeros((4, 0)),
            digest=ffi_digest(text),
            nr_moments=np.int64(2),
        )
    with pytest.raises(Exception, match="structure: version: this reader supports version 1"):
        bad = text.replace('"version": 1', '"version": 7')
        call(
            "phasic_moments",
            jax.ShapeDtypeStruct((2,), jnp.float64),
            jnp.array([1.0]),
            jnp.zeros((0,)),
            digest=ffi_digest(bad),
            nr_moments=np.int64(2),
        )
    with pytest.raises(Exception, match="graph is continuous but discrete=True"):
        call(
            "phasic_pmf",
            jax.ShapeDtypeStruct((1,), jnp.float64),
            jnp.array([1.0]),
            jnp.array([1.0]),
            digest=ffi_digest(text),
            discrete=True,
        )


def test_cache_lru_and_clear() -> None:
    _core.set_cache_capacity(2)
    try:
        _core.cache_clear()
        assert _core.cache_stats()["entries"] == 0
        _core.set_num_threads(1)
        assert _core.get_num_threads() == 1
    finally:
        _core.set_cache_capacity(32)
        _core.set_num_threads(max(1, _core.get_num_threads()))
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        _core.set_cache_capacity(0)
