"""Building a graph from a transition callback, upstream phasic's way.

A callback `fn(state, **kwargs)` receives a state (a new numpy int32 array it may
change or keep) and returns its transitions, a list whose items are

- `[next_state, weight]`: a constant weight (a float),
- `[next_state, [c0, c1, ...]]`: the weight c · theta,
- `[next_state, base, [c0, c1, ...]]`: the weight base + c · theta.

An empty list makes the state absorbing. The initial distribution (`ipv`) is a single
state (`[2, 0]`: start there with probability 1) or a list of `[state, weight]` items
like the transitions above; it is given by `@callback(ipv)`, by `Graph(fn, ipv=...)`,
or returned by `fn` when it is called with an empty state. Its weights become the
starting vertex's out-edges, which are relative (normalized to sum 1).

The builder explores the state space breadth-first: vertex 1 is the first initial
state and vertices are numbered in the order their states are first returned, as
upstream phasic numbers them. Transitions from one state to the same next state are
summed into one edge. The common return forms (a list of `[next_state, weight]` items
with list, tuple or integer-array states and number or number-list weights) are read
by the C++ builder in one call per state, which finds states in its hash table; any
other form is read and checked here. Either way building costs O(1) per transition
beyond the callback itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._ext import core
from .vertices import _as_state, _split_weight

# One parsed transition: (next state, constant part, coefficients c).
Parsed = tuple[tuple[int, ...], float, list[float]]
_INT = {int}
_PLAIN_NUMBERS = {int, float}


def callback(ipv: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator giving a transition callback its initial distribution `ipv`.

    `@phasic.callback([2, 0])` starts in state (2, 0); `@phasic.callback([[[1, 0], 0.3],
    [[0, 1], 0.7]])` starts in (1, 0) or (0, 1) with weights 0.3 and 0.7. `Graph(fn)` then
    builds the graph; passing `ipv=` as well is an error. Called with an empty state the
    decorated function returns the initial transitions (as upstream's does); otherwise it
    calls `fn`. `ipv` is checked here, when the function is decorated.
    """
    initial = _parse_ipv(ipv)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"@phasic.callback(ipv) decorates a function, got {type(fn).__name__}")

        @functools.wraps(fn)
        def wrapper(state: Any = (), **kwargs: Any) -> Any:
            if state is None or len(state) == 0:
                return [[list(s), base, list(c)] if c else [list(s), base]
                        for s, base, c in initial]
            return fn(state, **kwargs)

        wrapper.__ipv__ = ipv  # type: ignore[attr-defined]  # upstream's attribute name
        wrapper._phasic_initial = initial  # type: ignore[attr-defined]
        return wrapper

    return decorator


def build(fn: Callable[..., Any], ipv: Any, discrete: bool, kwargs: dict[str, Any]) -> Any:
    """The C++ GraphBuilder of the state space `fn` generates from the initial `ipv`.

    `ipv` is None when `fn` is decorated with `callback(ipv)` or returns the initial
    transitions for an empty state. `kwargs` are passed to every call of `fn`.
    """
    if not callable(fn):
        raise TypeError(f"the callback must be callable, got {type(fn).__name__}")
    initial = _initial_transitions(fn, ipv, kwargs)
    state_length = len(initial[0][0])
    builder = core().GraphBuilder(state_length, bool(discrete))
    _add_edges(builder, 0, _merged(initial), "the initial distribution (ipv)")
    src = 1
    while src < builder.vertices_length():  # vertices grow while we walk them: breadth-first
        returned = _call(fn, builder, src, kwargs)
        # The common forms are read in C++ in one call; anything else (and every
        # error) comes back as -1 with the graph unchanged, for the checks below.
        if returned is None or builder.add_plain_transitions(src, returned) < 0:
            _add_checked(builder, src, returned)
        src += 1
    return builder


def _add_checked(builder: Any, src: int, returned: Any) -> None:
    """Vertex `src`'s transitions read and validated in Python, with messages naming them."""
    key = tuple(builder.vertex_state(src))
    where = f"the callback's transitions from state {list(key)}"
    parsed = [_parse_item(item, len(key), where) for item in _as_list(returned, where)]
    for next_key, _, _ in parsed:
        if next_key == key:
            raise ValueError(
                f"{where} include the state itself; leave self-transitions out "
                "(continuous: they do not change the distribution; discrete: the "
                "probability of staying is 1 minus the sum of the out-probabilities)"
            )
    _add_edges(builder, src, _merged(parsed), where)


def _initial_transitions(fn: Callable[..., Any], ipv: Any, kwargs: dict[str, Any]) -> list[Parsed]:
    """The initial transitions from `ipv`, the decorator, or `fn` called with an empty state."""
    decorated = getattr(fn, "_phasic_initial", None)
    if decorated is not None:
        if ipv is not None:
            raise ValueError(
                "the callback is decorated with @phasic.callback(ipv), which already gives "
                "the initial distribution; do not pass ipv as well"
            )
        return decorated
    if ipv is not None:
        return _parse_ipv(ipv)
    hint = ("pass ipv= (a starting state such as [2, 0], or [[state, weight], ...]), "
            "decorate the callback with @phasic.callback(ipv), or make it return the "
            "initial transitions when called with an empty state")
    try:
        returned = fn(np.zeros(0, dtype=np.int32), **kwargs)
    except Exception as exc:
        raise ValueError(
            f"no initial distribution: {hint}. Calling the callback with an empty state "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc
    if not returned:
        raise ValueError(f"no initial distribution: {hint}. The callback returned "
                         f"{returned!r} for an empty state")
    return _parse_ipv(returned)


def _parse_ipv(ipv: Any) -> list[Parsed]:
    """`ipv` (one state, or [state, weight] items) as parsed initial transitions."""
    where = "the initial distribution (ipv)"
    if isinstance(ipv, np.ndarray) and ipv.ndim == 1 and ipv.dtype.kind in "iu":
        ipv = ipv.tolist()
    if isinstance(ipv, (str, bytes)) or not isinstance(ipv, (list, tuple)):
        raise TypeError(f"{where} must be a state such as [2, 0] or a list of "
                        f"[state, weight] items, got {type(ipv).__name__}")
    if len(ipv) == 0:
        raise ValueError(f"{where} is empty; give a starting state such as [2, 0]")
    if all(_is_int(x) for x in ipv):
        ipv = [[ipv, 1.0]]
    first = ipv[0]
    state = first[0] if isinstance(first, (list, tuple)) and len(first) in (2, 3) else None
    length = len(state) if isinstance(state, (list, tuple, np.ndarray)) else 0
    if length == 0:
        raise ValueError(
            f"{where} must be a state such as [2, 0] or a list of [state, weight] items "
            f"with non-empty states, got {ipv!r}"
        )
    initial = [_parse_item(item, length, where) for item in ipv]
    if all(not c for _, _, c in initial) and sum(base for _, base, _ in initial) <= 0.0:
        raise ValueError(f"the weights of {where} sum to 0; at least one must be positive")
    return initial


def _call(fn: Callable[..., Any], builder: Any, src: int, kwargs: dict[str, Any]) -> Any:
    """fn(state, **kwargs) with vertex `src`'s state as a fresh int32 array; its
    exceptions name the state."""
    try:
        return fn(builder.state_array(src), **kwargs)
    except Exception as exc:
        exc.add_note(f"(raised by the graph callback for state {builder.vertex_state(src)})")
        raise


def _as_list(returned: Any, where: str) -> Sequence[Any]:
    if isinstance(returned, (list, tuple)):
        return returned
    if returned is None or isinstance(returned, (str, bytes, int, float)):
        raise TypeError(f"{where}: the callback must return a list of transitions "
                        f"([next_state, weight] items, [] if absorbing), got {returned!r}")
    return list(returned)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _parse_item(item: Any, state_length: int, where: str) -> Parsed:
    """One returned transition as (next state, constant, coefficients), validated."""
    if not isinstance(item, (list, tuple, np.ndarray)) or len(item) not in (2, 3):
        raise TypeError(
            f"{where}: {item!r} is not a transition; each must be [next_state, weight], "
            "[next_state, [c0, c1, ...]] or [next_state, base, [c0, c1, ...]]"
        )
    key = _state_key(item[0], state_length, item, where)
    try:
        base, coefficients = _read_weight(item)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: item {item!r}: {exc}") from None
    if not coefficients and base < 0.0:
        raise ValueError(f"{where}: item {item!r} has the negative weight {base}; "
                         "weights are rates or probabilities, >= 0")
    return key, base, coefficients


def _read_weight(item: Sequence[Any]) -> tuple[float, list[float]]:
    """The weight of a 2- or 3-item transition as (base, coefficients)."""
    if len(item) == 2:
        return _plain_weight(item[1]) or _split_weight(item[1])
    if not _is_number(item[1]):
        raise TypeError("in [next_state, base, [c0, ...]] the base must be a float")
    if not isinstance(item[2], (list, tuple, np.ndarray)):
        raise TypeError("in [next_state, base, [c0, ...]] the last entry must be the "
                        "coefficient list")
    return _split_weight(item[1])[0], _split_weight(item[2])[1]


def _plain_weight(weight: Any) -> tuple[float, list[float]] | None:
    """A finite float, or a list of finite Python numbers, as (base, coefficients).

    The common forms, read without numpy; None for anything else, which
    `_split_weight` then reads or rejects with its message.
    """
    if type(weight) is float:
        return (weight, []) if math.isfinite(weight) else None
    if (type(weight) is list and set(map(type, weight)) <= _PLAIN_NUMBERS
            and all(map(math.isfinite, weight))):
        return 0.0, list(map(float, weight))
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _state_key(state: Any, state_length: int, item: Any, where: str) -> tuple[int, ...]:
    """A returned state as a tuple of Python ints of length `state_length`."""
    if isinstance(state, np.ndarray):
        if state.dtype.kind in "iu" and state.shape == (state_length,):
            return tuple(state.tolist())
    elif isinstance(state, (list, tuple)):
        key = tuple(state)
        if len(key) == state_length and set(map(type, key)) == _INT:
            return key  # the common case, checked without conversion
    try:
        return tuple(_as_state(state, state_length))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: item {item!r}: {exc}") from None


def _merged(parsed: list[Parsed]) -> dict[tuple[int, ...], tuple[float, list[float]]]:
    """Transitions to the same next state summed into one (constant, coefficients)."""
    merged: dict[tuple[int, ...], tuple[float, list[float]]] = {}
    for key, base, coefficients in parsed:
        if key in merged:
            old_base, old = merged[key]
            n = max(len(old), len(coefficients))
            old = old + [0.0] * (n - len(old))
            new = coefficients + [0.0] * (n - len(coefficients))
            merged[key] = (old_base + base, [a + b for a, b in zip(old, new, strict=True)])
        else:
            merged[key] = (base, coefficients)
    return merged


def _add_edges(builder: Any, src: int, merged: dict[tuple[int, ...], tuple[float, list[float]]],
               where: str) -> None:
    for key, (base, coefficients) in merged.items():
        try:
            dst = int(builder.find_or_create_vertex(list(key)))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{where}: state {key} is not valid: {exc}") from None
        builder.add_edge(src, dst, base, coefficients)
