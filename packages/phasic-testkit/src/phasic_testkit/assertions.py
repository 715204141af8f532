"""Assertions for code that runs on every rank of a multiprocess test.

Values are exchanged through the jax.distributed key-value store rather than a
collective: it works for values of different shapes or dtypes on different ranks
(which is exactly what a failing test may produce), and a rank that never arrives
is reported by number after a timeout instead of hanging the others.
"""

from __future__ import annotations

import io
import itertools
import pickle
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _distributed

_PREFIX = "phasic_testkit"
# Every rank calls the assertions in the same order, so a per-process counter gives
# matching keys on all ranks without any coordination.
_sequence = itertools.count()

DEFAULT_TIMEOUT = 60.0


def _to_bytes(value: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _exchange(kind: str, payload: bytes, timeout: float) -> dict[int, bytes]:
    """Publish `payload` for this rank and collect every rank's, naming absent ranks."""
    __tracebackhide__ = True
    me, n = _distributed.process_info()
    client = _distributed.kv_client()
    key = f"{_PREFIX}/{kind}/{next(_sequence)}"
    client.key_value_set_bytes(f"{key}/{me}", payload)
    deadline = time.monotonic() + timeout
    got: dict[int, bytes] = {}
    while True:
        for k, v in client.key_value_dir_get_bytes(f"{key}/"):
            got[int(k.rsplit("/", 1)[1])] = v
        if len(got) == n:
            return got
        if time.monotonic() > deadline:
            missing = sorted(set(range(n)) - set(got))
            raise AssertionError(
                f"{kind}: rank(s) {missing} of {n} did not arrive within {timeout:g} s "
                f"(rank {me} waited at key {key}); they are hung, crashed, or called the "
                "cross-process assertions in a different order"
            )
        time.sleep(0.01)


def gather(value: Any, *, timeout: float = DEFAULT_TIMEOUT) -> list[np.ndarray]:
    """Every rank's `value` as a numpy array, in rank order (every rank must call it)."""
    __tracebackhide__ = True
    got = _exchange("gather", _to_bytes(value), timeout)
    return [_from_bytes(got[r]) for r in sorted(got)]


def barrier(name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until every rank reached `barrier(name)`; the error names the missing ranks."""
    __tracebackhide__ = True
    if not isinstance(name, str) or not name:
        raise ValueError(f"barrier needs a non-empty string name, got {name!r}")
    _exchange(f"barrier[{name}]", b"", timeout)


def _describe(a: np.ndarray) -> str:
    with np.printoptions(precision=17, threshold=20, edgeitems=3):
        return f"{np.array2string(a)} (shape {a.shape}, dtype {a.dtype})"


def _compare_across(
    x: Any, close: Callable[[np.ndarray, np.ndarray], bool], what: str, timeout: float
) -> None:
    __tracebackhide__ = True
    values = gather(x, timeout=timeout)
    ref = values[0]
    bad = [r for r, v in enumerate(values) if v.shape != ref.shape or not close(ref, v)]
    if not bad:
        return
    me, _ = _distributed.process_info()
    lines = [f"values differ across processes ({what}): rank(s) {bad} diverge from rank 0"]
    lines.append(f"  rank 0: {_describe(ref)}")
    for r in bad:
        v = values[r]
        detail = ""
        if v.shape == ref.shape and np.issubdtype(v.dtype, np.number):
            diff = np.abs(v.astype(np.float64) - ref.astype(np.float64))
            detail = f"  max |diff| = {np.nanmax(diff):.6g}" if diff.size else ""
        lines.append(f"  rank {r}: {_describe(v)}{detail}")
    lines.append(f"  (raised on rank {me})")
    raise AssertionError("\n".join(lines))


def assert_allclose_across_processes(
    x: Any, *, rtol: float = 1e-7, atol: float = 0.0, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Every rank's `x` equals rank 0's within |x - x0| <= atol + rtol * |x0|.

    Every rank must call it; it fails on every rank, naming the diverging ranks.
    """
    __tracebackhide__ = True
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    _compare_across(
        x, lambda a, b: bool(np.allclose(b, a, rtol=rtol, atol=atol, equal_nan=True)),
        f"rtol={rtol:g}, atol={atol:g}", timeout,
    )


def assert_equal_across_processes(x: Any, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Every rank's `x` is exactly rank 0's (same shape, dtype and values)."""
    __tracebackhide__ = True
    _compare_across(
        x, lambda a, b: a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind
                                                                    in "fc")),
        "exact", timeout,
    )


def assert_same_on_all_devices(array: Any) -> None:
    """Each addressable device holds the same copy of a replicated jax.Array.

    Catches a computation that was meant to be replicated but produced different
    values on different devices. A sharded (not replicated) array is an error.
    """
    __tracebackhide__ = True
    import jax

    if not isinstance(array, jax.Array):
        raise TypeError(f"assert_same_on_all_devices needs a jax.Array, got {type(array)}")
    shards = array.addressable_shards
    partial = [s for s in shards if s.data.shape != array.shape]
    if partial:
        raise ValueError(
            f"the array is sharded, not replicated (device {partial[0].device} holds shape "
            f"{partial[0].data.shape} of {array.shape}); replicate it first, e.g. with "
            "jax.device_put(x, NamedSharding(mesh, PartitionSpec()))"
        )
    ref = np.asarray(shards[0].data)
    bad = [(s.device, np.asarray(s.data)) for s in shards[1:]
           if not np.array_equal(np.asarray(s.data), ref, equal_nan=ref.dtype.kind in "fc")]
    if bad:
        lines = [f"the copies of a replicated array differ across devices: "
                 f"{[str(d) for d, _ in bad]} differ from {shards[0].device}",
                 f"  {shards[0].device}: {_describe(ref)}"]
        lines += [f"  {d}: {_describe(v)}" for d, v in bad]
        raise AssertionError("\n".join(lines))


# Default relative tolerance of the vmap/jit checks, in units of the result's machine
# epsilon: XLA may pick a different vectorized kernel or fuse and reorder operations,
# which moves results by a few ulps, never by more than a handful for small inputs.
ULPS = 64


def _default_rtol(a: np.ndarray) -> float:
    return ULPS * float(np.finfo(a.dtype).eps) if np.issubdtype(a.dtype, np.inexact) else 0.0


def _assert_trees_close(
    got: Any, want: Any, rtol: float | None, atol: float, label: str
) -> None:
    __tracebackhide__ = True
    import jax

    g_leaves, g_tree = jax.tree_util.tree_flatten(got)
    w_leaves, w_tree = jax.tree_util.tree_flatten(want)
    if g_tree != w_tree:
        raise AssertionError(f"{label}: output structures differ: {g_tree} vs {w_tree}")
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves, strict=True)):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            raise AssertionError(f"{label}: output leaf {i} has shape {g.shape} vs {w.shape}")
        tol = _default_rtol(w) if rtol is None else rtol
        if not np.allclose(g, w, rtol=tol, atol=atol, equal_nan=True):
            where = np.argwhere(~np.isclose(g, w, rtol=tol, atol=atol, equal_nan=True))
            idx = tuple(int(j) for j in where[0])
            raise AssertionError(
                f"{label}: output leaf {i} differs at {len(where)} position(s); first at "
                f"index {idx}: {g[idx]!r} vs {w[idx]!r} (rtol={tol:g}, atol={atol:g})"
            )


def assert_vmap_matches_loop(
    f: Callable[..., Any],
    *batched_args: Any,
    in_axes: int | Sequence[int | None] = 0,
    rtol: float | None = None,
    atol: float = 0.0,
) -> None:
    """`jax.vmap(f, in_axes)(*args)` equals stacking `f` applied to each batch element.

    The default `rtol` is 64 machine epsilons of the output dtype (1.4e-14 in float64).
    """
    __tracebackhide__ = True
    import jax
    import jax.numpy as jnp

    if not batched_args:
        raise ValueError("assert_vmap_matches_loop needs at least one argument to batch over")
    axes = [in_axes] * len(batched_args) if isinstance(in_axes, int | None) else list(in_axes)
    if len(axes) != len(batched_args):
        raise ValueError(f"in_axes has {len(axes)} entries for {len(batched_args)} arguments")
    sizes = {np.shape(a)[ax] for a, ax in zip(batched_args, axes, strict=True) if ax is not None}
    if len(sizes) != 1:
        raise ValueError(f"the batched arguments need one common batch size, got {sizes}")
    (size,) = sizes
    got = jax.vmap(f, in_axes=tuple(axes))(*batched_args)
    rows = []
    for i in range(size):
        args_i = [a if ax is None else jnp.take(jnp.asarray(a), i, axis=ax)
                  for a, ax in zip(batched_args, axes, strict=True)]
        rows.append(f(*args_i))
    want = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *rows)
    _assert_trees_close(got, want, rtol, atol, "vmap vs loop")


def assert_jit_matches_eager(
    f: Callable[..., Any], *args: Any, rtol: float | None = None, atol: float = 0.0
) -> None:
    """`jax.jit(f)(*args)` equals `f(*args)` run op by op (under jax.disable_jit).

    The default `rtol` is 64 machine epsilons of the output dtype.
    """
    __tracebackhide__ = True
    import jax

    got = jax.jit(f)(*args)
    with jax.disable_jit():
        want = f(*args)
    _assert_trees_close(got, want, rtol, atol, "jit vs eager")


def assert_serializable(obj: Any) -> None:
    """`obj` survives plain pickle and captures no closures or device arrays.

    The rule "no closures in call paths": what is sent to other processes (functions,
    partials, bound methods, their arguments) must be importable by name and carry
    only plain data. A lambda, a nested function, a closure cell or a jax.Array held
    inside the callable is reported with where it was found.
    """
    __tracebackhide__ = True
    problems: list[str] = []
    _scan(obj, "obj", problems, set())
    try:
        data = pickle.dumps(obj)
        pickle.loads(data)
    except Exception as exc:  # pickle raises several types; all mean "not serializable"
        problems.append(f"plain pickle fails: {type(exc).__name__}: {exc}")
    if problems:
        raise AssertionError("not serializable across processes:\n  " + "\n  ".join(problems))


def _scan(obj: Any, path: str, problems: list[str], seen: set[int]) -> None:
    import functools

    import jax

    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, jax.Array):
        problems.append(f"{path} is a captured jax.Array {obj.shape}; pass it as an argument")
    elif isinstance(obj, types.FunctionType):
        if obj.__closure__:
            names = obj.__code__.co_freevars
            problems.append(f"{path} ({obj.__qualname__}) is a closure over {names}; "
                            "make it a module-level function and pass those as arguments")
        elif "<lambda>" in obj.__qualname__ or "<locals>" in obj.__qualname__:
            problems.append(f"{path} ({obj.__qualname__}) is not importable by name; "
                            "define it at module level")
    elif isinstance(obj, functools.partial):
        _scan(obj.func, f"{path}.func", problems, seen)
        for i, a in enumerate(obj.args):
            _scan(a, f"{path}.args[{i}]", problems, seen)
        for k, a in obj.keywords.items():
            _scan(a, f"{path}.keywords[{k!r}]", problems, seen)
    elif isinstance(obj, types.MethodType):
        _scan(obj.__func__, f"{path}.__func__", problems, seen)
        _scan(obj.__self__, f"{path}.__self__", problems, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, a in enumerate(obj):
            _scan(a, f"{path}[{i}]", problems, seen)
    elif isinstance(obj, dict):
        for k, a in obj.items():
            _scan(a, f"{path}[{k!r}]", problems, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type | types.ModuleType):
        for k, a in vars(obj).items():
            _scan(a, f"{path}.{k}", problems, seen)
