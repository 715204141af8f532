"""Graph methods for the chain's state at given times (kernels in phasic.state_ffi).

Upstream names them `stop_probability(time)` and `accumulated_visiting_time(time)`;
both exist here as aliases of `state_probabilities` and `accumulated_visiting_time`,
which also take arrays of times and `theta=`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class StatesAtTime:
    """Mixin for Graph: P(X_t = v) and the expected time spent in each vertex up to t."""

    def state_probabilities(self, times: Any, *, theta: Any = None,
                            epochs: Any = None) -> np.ndarray:
        """P(X_t = v) for every vertex v: shape (T, V) for T times, (V,) for a scalar.

        Index 0 (the starting vertex) is 0; an absorbing vertex holds the probability
        of absorption there by t, a defect included from t = 0; rows sum to 1. On a
        discrete graph t is a whole number of steps. With `epochs` (breakpoints, see
        `phasic.epochs`), `theta=` of shape (E, P) gives each epoch's parameters.
        """
        from .state_ffi import compute_state_probabilities_ffi

        tau, theta = self._epochs(epochs, theta, "state_probabilities()")
        if tau is not None:
            return np.asarray(compute_state_probabilities_ffi(self, theta, times, epochs=tau))
        return np.asarray(compute_state_probabilities_ffi(self, self._theta(theta), times))

    def accumulated_visiting_time(self, times: Any, *, theta: Any = None,
                                  epochs: Any = None) -> np.ndarray:
        """E[∫_0^t 1{X_s = v} ds] for every vertex v: shape (T, V), (V,) for a scalar.

        Absorbing vertices and vertex 0 get 0, so a row sums to E[min(T, t)]. On a
        discrete graph: the expected number of visits to v among steps 0..t-1. With
        `epochs`, as `state_probabilities`.
        """
        from .state_ffi import compute_accumulated_visiting_time_ffi

        tau, theta = self._epochs(epochs, theta, "accumulated_visiting_time()")
        if tau is not None:
            return np.asarray(compute_accumulated_visiting_time_ffi(self, theta, times,
                                                                    epochs=tau))
        return np.asarray(compute_accumulated_visiting_time_ffi(self, self._theta(theta), times))

    def stop_probability(self, time: Any, *, theta: Any = None) -> np.ndarray:
        """Upstream's name for `state_probabilities` (absorbing entries differ: see there)."""
        return self.state_probabilities(time, theta=theta)

    state_probability = stop_probability
