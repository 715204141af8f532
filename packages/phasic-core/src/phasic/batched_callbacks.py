"""Building a graph from a batched transition callback: many states per call.

A batched callback `fn(states, **kwargs)` receives a 2-d numpy int32 array, one state
per row (a new array it may change or keep), and returns the transitions of all of
them at once as a tuple of three arrays:

- `rows`: integers, shape (K,): transition k leaves the state `states[rows[k]]`;
- `next_states`: integers, shape (K, state_length): the state it goes to;
- `weights`: floats, shape (K,) for constant weights (rates, or probabilities in a
  discrete graph; >= 0), or shape (K, P) for coefficient vectors: the weight of
  transition k is weights[k] · theta.

A state without rows is absorbing. Transitions from one state to the same next state
are summed, and each state's transitions are taken in the order their rows appear,
so the vertices are numbered as the per-state callback numbers them (breadth-first,
in the order states are first returned) whatever the batch size: a batched callback
that returns, state by state, what a per-state callback returns builds the same graph.

The work per state then happens in numpy over the whole batch and in C++ (state
lookup, summing, edges), not in one Python call per state. Every returned array is
checked here (types, shapes, finite and non-negative weights, rows in range, no
transition to the state itself) with a message naming the array and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._ext import core

DEFAULT_BATCH_SIZE = 4096  # states per call: large enough to amortize numpy, bounded memory
_INT32 = np.iinfo(np.int32)
_FORM = ("return (rows, next_states, weights): rows an integer array of shape (K,), "
         "next_states an integer array of shape (K, state_length) and weights a float "
         "array of shape (K,) (constants) or (K, P) (coefficients)")


def build_batched(fn: Callable[..., Any], initial: Any, discrete: bool, batch_size: int,
                  kwargs: dict[str, Any]) -> Any:
    """The C++ GraphBuilder of the state space the batched callback `fn` generates.

    `initial` is the parsed initial distribution (`phasic.callbacks._parse_ipv`);
    `fn` gets at most `batch_size` states per call and `kwargs` on every call.
    """
    from .callbacks import _add_edges, _merged  # callbacks imports graph, graph this

    state_length = len(initial[0][0])
    builder = core().GraphBuilder(state_length, bool(discrete))
    _add_edges(builder, 0, _merged(initial), "the initial distribution (ipv)")
    src = 1
    while src < builder.vertices_length():  # vertices grow while we walk them: breadth-first
        count = min(batch_size, builder.vertices_length() - src)
        states = builder.states_array(src, count)
        try:
            returned = fn(states, **kwargs)
        except Exception as exc:
            exc.add_note(f"(raised by the batched graph callback for the {count} states of "
                         f"vertices {src} .. {src + count - 1})")
            raise
        rows, next_states, weights = transitions(returned, states)
        try:
            builder.add_batched_transitions(src, count, rows, next_states, weights)
        except ValueError as exc:
            raise ValueError(f"the batched callback's transitions: {exc}") from None
        src += count
    return builder


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` as a positive int, or a TypeError/ValueError naming it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int (states per call), got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (states per call), got {batch_size}")
    return int(batch_size)


def transitions(returned: Any, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The callback's (rows, next_states, weights) for `states`, validated and converted
    to the contiguous int64, int32 and float64 arrays the C++ builder reads."""
    if not isinstance(returned, (tuple, list)) or len(returned) != 3:
        raise TypeError(f"the batched callback must {_FORM}; it returned "
                        f"{_describe(returned)}")
    count, state_length = states.shape
    rows = _integers(returned[0], "rows", 1)
    k = rows.shape[0]
    next_states = _integers(returned[1], "next_states", 2, empty_shape=(0, state_length))
    if next_states.shape != (k, state_length):
        raise ValueError(f"the batched callback's next_states has shape {next_states.shape}; "
                         f"it must be (len(rows), state_length) = ({k}, {state_length})")
    weights = _weights(returned[2], k)
    if k:
        bad = np.flatnonzero((rows < 0) | (rows >= count))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"the batched callback's rows[{i}] = {int(rows[i])} is not a row "
                             f"of the {count} states it was given (0 .. {count - 1})")
        bad = np.flatnonzero((next_states < _INT32.min) | (next_states > _INT32.max))
        if bad.size:
            i = int(bad[0]) // state_length
            raise ValueError(f"the batched callback's next_states[{i}] = "
                             f"{next_states[i].tolist()} has entries outside int32")
    return (np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(next_states, dtype=np.int32), weights)


def _describe(x: Any) -> str:
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} items"
    return repr(x) if isinstance(x, (int, float, str, type(None))) else type(x).__name__


def _array(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise TypeError(f"the batched callback's {name} is not an array ({exc}); {_FORM}") from None


def _integers(x: Any, name: str, ndim: int, empty_shape: tuple[int, ...] = (0,)) -> np.ndarray:
    """An integer array of `ndim` dimensions (anything empty: no transitions)."""
    a = _array(x, name)
    if a.size == 0:
        return np.zeros(empty_shape, dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"the batched callback's {name} must be an integer array, got dtype "
                        f"{a.dtype}; {_FORM}")
    if a.ndim != ndim:
        raise ValueError(f"the batched callback's {name} must have {ndim} dimension(s), got "
                         f"shape {a.shape}; {_FORM}")
    return a


def _weights(x: Any, k: int) -> np.ndarray:
    """Weights of shape (k,) (constants >= 0) or (k, P) (coefficients), finite, float64."""
    a = _array(x, "weights")
    if a.size == 0 and k == 0:
        return np.zeros(0)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"the batched callback's weights must be a float array, got dtype "
                        f"{a.dtype}; {_FORM}")
    if a.ndim not in (1, 2) or a.shape[0] != k or (a.ndim == 2 and a.shape[1] == 0):
        raise ValueError(f"the batched callback's weights has shape {a.shape}; it must be "
                         f"({k},) (constants) or ({k}, P) with P >= 1 (coefficients), one "
                         "row per transition")
    a = np.ascontiguousarray(a, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(a).reshape(k, -1).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"the batched callback's weights[{i}] = {a[i].tolist()} is not "
                         "finite; weights must be finite numbers")
    if a.ndim == 1:
        neg = np.flatnonzero(a < 0.0)
        if neg.size:
            i = int(neg[0])
            raise ValueError(f"the batched callback's weights[{i}] = {a[i]} is negative; "
                             "constant weights are rates or probabilities, >= 0")
    return a
