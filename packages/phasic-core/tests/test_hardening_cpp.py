"""Hardening of the C++ kernels and their bindings against hostile or extreme inputs.

Hash flooding, discrete graphs stepped to far times, moment counts and overflow,
dense coefficient vectors, structure-cache key collisions, JSON encoding and token
length, length limits, and the Kingman model's size. Each test failed before its fix.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic import _core, models
from phasic.ffi import compute_log_pmf_ffi, compute_moments_ffi, structure_key

jax.config.update("jax_enable_x64", True)

MASK = (1 << 64) - 1


def _old_hash_collisions(count: int) -> list[list[int]]:
    """States of length 8 on which the old, unseeded state hash took one value.

    The old hash folded two 32-bit entries at a time into a lane as a = f(a ^ x), with
    f(z) = g(z * 0x100000001b3), g(y) = y ^ (y >> 31), both invertible; the other
    lane only saw entries 2, 3, 6, 7 (kept 0 here). For any first word x0 the second
    word x1 = f(a0 ^ x0) ^ f^-1(A) brings the lane to the same A.
    """
    prime = 0x100000001B3
    inv_prime = pow(prime, -1, 1 << 64)

    def f(z: int) -> int:
        y = (z * prime) & MASK
        return y ^ (y >> 31)

    def f_inv(a: int) -> int:
        x = a
        for _ in range(3):  # g^-1 by fixed-point iteration (31-bit shifts: 3 rounds)
            x = a ^ (x >> 31)
        return (x * inv_prime) & MASK

    def int32(u: int) -> int:
        return u - (1 << 32) if u >= 1 << 31 else u

    a0 = 0x9E3779B97F4A7C15 ^ 8
    target = f_inv(0x0123456789ABCDEF)
    states = []
    for x0 in range(1, count + 1):
        x1 = f(a0 ^ x0) ^ target
        states.append([int32(x0 & 0xFFFFFFFF), int32(x0 >> 32), 0, 0,
                       int32(x1 & 0xFFFFFFFF), int32(x1 >> 32), 0, 0])
    return states


def _graph_json(states: list[list[int]], edges: list[tuple[int, int]]) -> str:
    return json.dumps({
        "format": "phasic.graph", "version": 1, "discrete": False,
        "state_length": len(states[0]), "param_length": 0, "states": states,
        "edges": {"from": [e[0] for e in edges], "to": [e[1] for e in edges],
                  "weight": [1.0] * len(edges)},
        "coefficients": {"edge": [], "param": [], "value": []},
    })


def _probes_to_read(text: str) -> tuple[_core.GraphBuilder, int]:
    """The graph in `text` and the hash-table slots examined while reading it."""
    before = _core.hash_probes()
    b = _core.GraphBuilder.from_json(text)
    return b, _core.hash_probes() - before


# Reading a graph costs five hash-table operations per state (with one edge per
# state): three state insertions (the parser validates, GraphBuilder.from_data
# validates again and then builds its index) and two edge insertions (one per
# validation). Tables stay at most half full, and linear probing at load a costs
# (1 + 1/(1 - a)) / 2 slots per insertion on average while filling: <= 1.5, and 1.22
# at the 0.31 load of 40,000 states in 131,072 slots, so ~6.1 slots per state
# (measured 6.07-6.13 over 200 processes, each with its own seed). Sums over 200,000
# nearly independent operations hardly spread, so 10 cannot flake, while a flood
# costs ~n/2 slots per insertion (the next test).
PROBES_PER_STATE = 10


def test_crafted_colliding_states_read_in_linear_probes() -> None:
    # 40,000 states that collided under the old hash (2 MB of JSON; they took 38 s to
    # read, now ~0.1 s: docs/pages/hardening.md) and a chain of edges through them.
    n = 40_000
    states = [[0] * 8] + _old_hash_collisions(n)
    b, probes = _probes_to_read(_graph_json(states, [(v, v + 1) for v in range(n)]))
    assert b.vertices_length() == n + 1
    assert b.find_vertex(states[12_345]) == 12_345
    operations = 3 * n + 2 * n  # each examines at least its home slot (vertex 0: none)
    assert operations <= probes <= PROBES_PER_STATE * (n + 1), probes / (n + 1)


def _states_in_the_zero_states_slot(count: int) -> list[list[int]]:
    """`count` states whose seeded hash puts them in the all-zero state's slot of a 64-slot table.

    Found through the probe counter: in a table holding the all-zero state alone,
    looking up a state that shares its home slot examines two slots (that one, then
    the empty one after it), any other state one.
    """
    alone = _core.GraphBuilder(8, False)
    alone.find_or_create_vertex([0] * 8)  # vertex 1, alone in a 64-slot table
    found = []
    for x in range(1, 200_000):  # 1 in 64 qualifies
        state = [x, 0, 0, 0, 0, 0, 0, 0]
        before = _core.hash_probes()
        assert alone.find_vertex(state) == -1
        if _core.hash_probes() - before == 2:
            found.append(state)
            if len(found) == count:
                return found
    raise AssertionError(f"only {len(found)} states share the all-zero state's slot")


def test_probe_count_exposes_states_that_share_a_slot() -> None:
    # The control for the bound above: 31 states in one slot (the seed is secret, so
    # they are found by asking the counter) cost 1 + 2 + ... + 31 slots in each of
    # the three passes, ~46 per state; 40,000 such states would cost ~60,000 each.
    # The starting vertex (vertex 0) is not indexed; vertex 1 is all zeros as well.
    states = [[0] * 8, [0] * 8] + _states_in_the_zero_states_slot(30)
    b, probes = _probes_to_read(_graph_json(states, [(0, 1)]))
    per_pass = 31 * 32 // 2
    # and one slot for each of the one edge's two insertions
    assert probes == 3 * per_pass + 2
    assert probes > PROBES_PER_STATE * len(states)
    before = _core.hash_probes()
    assert b.find_vertex(states[31]) == 31  # last in line: examines all 31 slots
    assert _core.hash_probes() - before == 31


def test_results_do_not_depend_on_the_hash_seed() -> None:
    # Each process draws its own seed; the graph, its JSON and its numbers agree.
    code = textwrap.dedent("""
        import hashlib
        import numpy as np
        from phasic import models
        g = models.two_island(4)
        s = g.structure()
        out = g.to_json().encode() + s.pdf([1.0, 0.7], [0.5, 2.0]).tobytes()
        out += s.moments([1.0, 0.7], 3).tobytes()
        print(hashlib.sha256(out).hexdigest())
    """)
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, timeout=120).stdout for _ in range(2)}
    assert len(digests) == 1


def _geometric(p_exit: float) -> phasic.Graph:
    """Discrete: start -> a; a leaves for the absorbing state with p_exit, else stays."""
    g = phasic.Graph(1, discrete=True)
    a, b = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, p_exit)
    return g


def test_discrete_pmf_stops_once_the_mass_is_gone() -> None:
    g = _geometric(0.5)
    s = g.structure()
    # Stepping on to t = 1e9 (23 s before the stop) would now pass the 2e6-step cap
    # and raise (next test): returning at all shows that it stopped when empty.
    pmf = s.pdf([], [40.0, 1e9, 1e12])
    cdf = s.cdf([], [40.0, 1e9])
    assert pmf[0] == 0.5**40  # exact (powers of 2) up to where it stops
    assert pmf[1] == 0.0 and pmf[2] == 0.0
    assert cdf[0] == pytest.approx(1.0 - 0.5**40, rel=1e-15) and cdf[1] == 1.0


def test_discrete_steps_are_capped_with_a_clear_error() -> None:
    slow = _geometric(1e-7).structure()  # ~e^-0.2 of the mass left after 2e6 steps
    with pytest.raises(ValueError, match=r"needs 3000000 steps, more than the 2e6 allowed.*10\^"):
        slow.pdf([], [3e6])
    fast = _geometric(0.5).structure()  # the scaled log-pmf never empties
    with pytest.raises(ValueError, match=r"2e6 allowed.*ask for times below 2e6"):
        fast.log_pdf([], [1e9])
    with pytest.raises(Exception, match=r"2e6 allowed"):
        compute_log_pmf_ffi(_geometric(0.5).to_json(), jnp.zeros(0), jnp.array([1e9]),
                            discrete=True).block_until_ready()
    # Below the cap, a slowly draining chain's log-pmf is exact: (1 - p)^(t-1) p.
    log_pmf, _ = slow.log_pdf([], [1e6])
    want = (1e6 - 1) * math.log1p(-1e-7) + math.log(1e-7)
    assert log_pmf[0] == pytest.approx(want, rel=1e-11)


def test_long_eager_call_stops_on_ctrl_c() -> None:
    # A 3,000-state discrete ring that absorbs ~1e-7 per step: 2e6 steps take ~20 s.
    # (The absorption varies with period 7, which 3,000 is not a multiple of, so the
    # ring does not lump to fewer states.)
    # Ctrl-C (simulated by _thread.interrupt_main) must end it within a poll.
    code = textwrap.dedent("""
        import _thread, signal, threading, time
        import phasic
        # A background job of a non-interactive shell inherits SIGINT ignored, and Python
        # then installs no handler (interrupt_main would do nothing): install it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        n = 3000
        g = phasic.Graph(1, discrete=True)
        vs = [g.find_or_create_vertex((i + 1,)) for i in range(n)]
        out = g.find_or_create_vertex((n + 1,))
        g.starting_vertex().add_edge(vs[0], 1.0)
        for i, v in enumerate(vs):
            absorb = 1e-7 * (1 + i % 7 / 10)
            v.add_edge(vs[(i + 1) % n], 1.0 - absorb)
            v.add_edge(out, absorb)
        s = g.structure()
        threading.Timer(0.5, _thread.interrupt_main).start()
        start = time.perf_counter()
        try:
            s.pdf([], [1.9e6])
            print("finished", time.perf_counter() - start)
        except KeyboardInterrupt:
            print("interrupted", time.perf_counter() - start)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout.split()
    assert out[0] == "interrupted", out
    assert float(out[1]) < 5.0


def test_nr_moments_is_bounded() -> None:
    k = models.kingman(4)
    s = k.structure()
    assert _core.max_moments == 170
    assert np.all(np.isfinite(s.moments([1.0], 170)))  # E[T^170] of a short time: finite
    for call in (lambda: s.moments([1.0], 171), lambda: s.moments_jac([1.0], 171),
                 lambda: k.moments(2**60, theta=[1.0])):
        with pytest.raises(ValueError, match=r"nr_moments must be between 0 and 170"):
            call()
    for n in (171, 2**60):
        with pytest.raises(ValueError, match=r"nr_moments must be at most 170"):
            compute_moments_ffi(k.to_json(), jnp.array([1.0]), n)


def test_moment_overflow_raises_instead_of_inf_and_nan_gradients() -> None:
    k = models.kingman(4)
    theta = [1e-8]  # mean time ~1.5e8: E[T^40] ~ 40! 1e327 overflows, E[T^30] ~ 1e278 fits
    with pytest.raises(ValueError, match=r"moment 3\d overflows a double.*at most 3\d moments"):
        k.structure().moments(theta, 40)
    with pytest.raises(ValueError, match=r"overflows a double"):
        k.structure().moments_jac(theta, 40)
    js = k.to_json()
    with pytest.raises(Exception, match=r"overflows a double"):
        jax.grad(lambda t: compute_moments_ffi(js, t, 40)[-1])(jnp.array(theta))
    # Where the moments fit, nothing changes: E[T^30] is finite and so is its gradient.
    grad = jax.grad(lambda t: compute_moments_ffi(js, t, 30)[-1])(jnp.array(theta))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_edges_have_sparse_coefficients() -> None:
    # 752 bytes of JSON declaring 2^24 parameters: a dense vector per edge needed GBs.
    g = phasic.Graph(1)
    a, b = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0)
    coefficients = [0.0] * 6
    coefficients[5] = 2.5
    a.add_edge(b, coefficients)
    doc = json.loads(g.to_json())
    doc["param_length"] = 2**24
    big = phasic.Graph.from_json(json.dumps(doc))
    tracemalloc.start()
    (edge,) = big.vertex_at(1).edges()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, peak  # a dense vector would be 2^24 entries (128 MB or more)
    assert edge.terms == ((5, 2.5),) and edge.param_length == 2**24 and edge.base == 0.0
    assert big._builder.out_edges(1) == [(2, 0.0, [5], [2.5])]
    small = g.vertex_at(1).edges()[0]
    assert small.coefficients == (0.0, 0.0, 0.0, 0.0, 0.0, 2.5)  # the dense view still works


def test_each_structure_is_evaluated_as_itself() -> None:
    # Two graphs of equal length and equal first and last 64 bytes (what the old
    # 64-bit-key cache needed a text comparison for): their SHA-256 digests differ,
    # and each program evaluates its own graph.
    def chain(rate: float) -> str:
        g = phasic.Graph(1)
        vs = [g.find_or_create_vertex((i + 1,)) for i in range(12)]
        g.starting_vertex().add_edge(vs[0], 1.0)
        for i in range(11):
            vs[i].add_edge(vs[i + 1], rate if i == 5 else 1.0)
        return g.to_json()

    t1, t2 = chain(1.5), chain(2.5)
    assert len(t1) == len(t2) and t1[:64] == t2[:64] and t1[-64:] == t2[-64:] and t1 != t2
    assert structure_key(t1) != structure_key(t2)
    p1, p2 = (np.asarray(phasic.compute_pmf_ffi(t, jnp.zeros(0), jnp.array([3.0])))
              for t in (t1, t2))
    np.testing.assert_allclose(p1, _core.Structure.from_json(t1).pdf([], [3.0]), rtol=1e-14)
    np.testing.assert_allclose(p2, _core.Structure.from_json(t2).pdf([], [3.0]), rtol=1e-14)
    assert p1[0] != pytest.approx(p2[0], rel=1e-6)


def test_registry_refuses_another_text_under_a_digest() -> None:
    text = models.kingman(3).to_json()
    digest = structure_key(text)
    assert len(digest) == 64 and int(digest, 16) >= 0
    _core.register_structure(digest, text)  # the same text again: accepted
    with pytest.raises(ValueError, match=f"digest {digest} is already registered with a "
                                         "different text"):
        _core.register_structure(digest, text + " ")
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        _core.register_structure(digest.upper(), text)
    with pytest.raises(ValueError, match="got 3 characters"):
        _core.register_structure("abc", text)


def test_unregistered_digest_is_a_clear_error() -> None:
    phasic.compute_pmf_ffi(models.kingman(3), jnp.ones(1), jnp.array([1.0]))  # registers targets
    unknown = "0" * 63 + "1"
    call = jax.ffi.ffi_call("phasic_pmf", jax.ShapeDtypeStruct((1,), jnp.float64))
    with pytest.raises(Exception, match=f"no structure is registered under digest {unknown} in "
                                        "this process.*registers the structure"):
        np.asarray(call(jnp.ones(1), jnp.array([1.0]), digest=unknown, discrete=False))
    # the process survives and keeps evaluating
    np.testing.assert_allclose(
        phasic.compute_pmf_ffi(models.kingman(2), jnp.ones(1), jnp.array([1.0])), [np.exp(-1.0)],
        rtol=1e-14)


def test_json_errors_are_ascii_positioned_and_short() -> None:
    text = models.kingman(3).to_json()
    with pytest.raises(ValueError, match=r"byte-order mark.*utf-8-sig"):
        phasic.Graph.from_json("\ufeff" + text)
    with pytest.raises(ValueError, match=r'got "phasic.gr\\xc3\\xa4ph" \(at byte \d+\)'):
        phasic.Graph.from_json(text.replace('"phasic.graph"', '"phasic.gräph"'))
    with pytest.raises(ValueError, match=r"found '\\xe2'"):
        _core.Structure.from_json(text.replace('{"format"', '\u2603{"format"', 1))
    huge = text.replace('"weight": [', '"weight": [' + "7" * 1_000_000 + ", ", 1)
    with pytest.raises(ValueError) as info:
        phasic.Graph.from_json(huge)
    message = str(info.value)
    assert len(message) < 300 and "(1000000 bytes)" in message
    assert message.startswith("edges.weight[0]: number 7777")


def test_length_limits_agree_between_builder_and_reader() -> None:
    for make in (lambda: phasic.Graph(2**24 + 1), lambda: _core.GraphBuilder(2**24 + 1, False)):
        with pytest.raises(ValueError, match=r"state_length must be between 0 and 2\^24"):
            make()
    b = _core.GraphBuilder(1, False)
    with pytest.raises(ValueError, match=r"param_length must be between 0 and 2\^24"):
        b.set_param_length(2**24 + 1)
    b.set_param_length(2**24)  # the largest the reader accepts: round trips
    assert _core.GraphBuilder.from_json(b.serialize()).param_length() == 2**24
    doc = json.loads(b.serialize())
    doc["param_length"] = 2**24 + 1
    with pytest.raises(ValueError, match=r"param_length: must be between 0 and 2\^24"):
        _core.GraphBuilder.from_json(json.dumps(doc))


@pytest.mark.parametrize(("n", "states"), [(61, "1121506"), (200, "3972999029389")])
def test_kingman_size_is_bounded(n: int, states: str) -> None:
    with pytest.raises(ValueError, match=rf"n = {n} samples would have {states} states.*"
                                         r"n <= 60"):
        models.kingman(n)
    assert models.kingman(20).vertices_length() == 628  # p(20) + 1
