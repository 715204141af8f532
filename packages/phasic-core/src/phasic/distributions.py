"""What a `Graph` computes: moments, densities, waiting times, and the theta they use.

`Distributions` is the part of `Graph` that evaluates the distribution: it holds the
stored theta (`update_weights`), checks the arguments every method shares (theta,
rewards, times, `granularity`, `discrete`) and calls the C++ kernels through the
graph's compiled `structure()`. `Graph` (phasic.graph) inherits it; the methods rely
on the graph's `param_length()`, `vertices_length()`, `structure()`, `as_matrices()`,
`discrete` and its edge-weight helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Distributions:
    """Moments, PDF/PMF/CDF, covariance, waiting times and the stored theta of a graph."""

    # theta stored by update_weights; None until then (a class default so every way of
    # making a Graph starts without one).
    _stored: np.ndarray | None = None

    def update_weights(self, theta: Any) -> None:
        """Store `theta` (a copy, float64): methods called without `theta=` use it.

        It must have `param_length()` entries. It stays stored while the graph changes
        as long as `param_length()` does not; otherwise using it is a ValueError.
        """
        if theta is None:
            raise ValueError("update_weights needs a theta: a sequence of "
                             f"{self.param_length()} floats")
        self._stored = self._checked_theta(theta).copy()

    def update_parameterized_weights(self, theta: Any) -> None:
        """The same as `update_weights` (upstream phasic has both names)."""
        self.update_weights(theta)

    def _stored_theta(self, what: str) -> np.ndarray:
        """The stored theta, checked against today's param_length().

        `what` starts the error message when none is stored, e.g. "pdf() needs".
        """
        p = self.param_length()
        if self._stored is None:
            raise ValueError(
                f"{what} theta (this graph has {p} parameter(s)) and none is stored: "
                f"pass theta=, a sequence of {p} floats, or store one with "
                "update_weights(theta)"
            )
        if self._stored.shape[0] != p:
            raise ValueError(
                f"the theta stored by update_weights has {self._stored.shape[0]} entries but "
                f"the graph now has param_length() = {p} (edges with more coefficients were "
                f"added since); call update_weights again with {p} values"
            )
        return self._stored.copy()

    def _theta(self, theta: Any) -> np.ndarray:
        """theta as a float64 vector of length param_length(); None means the stored one."""
        if theta is not None:
            return self._checked_theta(theta)
        if self.param_length() == 0 and self._stored is None:
            return np.zeros(0, dtype=np.float64)
        return self._stored_theta("the edge weights need")

    def _checked_theta(self, theta: Any) -> np.ndarray:
        """A given theta validated as a float64 vector of length param_length()."""
        p = self.param_length()
        arr = np.asarray(theta)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"theta must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.ndim != 1 or arr.shape[0] != p:
            raise ValueError(
                f"theta must have shape ({p},) for this graph (param_length() = {p}), "
                f"got shape {arr.shape}"
            )
        return np.ascontiguousarray(arr)

    def _rewards(self, rewards: Any) -> np.ndarray | None:
        """Rewards as a float64 vector with one entry per vertex; None (or empty) means none."""
        if rewards is None:
            return None
        arr = np.asarray(rewards)
        if arr.size == 0 and arr.ndim == 1:
            return None  # upstream's default, `rewards=[]`, means no rewards
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"rewards must be numeric, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        v = self.vertices_length()
        if arr.shape != (v,):
            raise ValueError(
                f"rewards must have vertices_length() = {v} entries, one per vertex, where "
                f"index 0 is the starting vertex (its reward is not used); got shape "
                f"{arr.shape} (theta is not positional: pass it as theta=)"
            )
        return arr

    def _check_kind(self, discrete: Any, what: str) -> None:
        """`discrete` given to `what` must be None or this graph's kind."""
        if discrete is None:
            return
        if not isinstance(discrete, (bool, np.bool_)):
            raise TypeError(f"{what}: discrete must be None or a bool, got {discrete!r}")
        if bool(discrete) != self.discrete:
            kind = "discrete" if self.discrete else "continuous"
            raise TypeError(
                f"{what}: discrete={bool(discrete)} but this graph is {kind}; leave "
                f"discrete out (None) or pass discrete={self.discrete}"
            )

    @staticmethod
    def _check_granularity(granularity: Any) -> None:
        """`granularity` is upstream's discretization step count: an int >= 0, unused here."""
        if isinstance(granularity, bool) or not isinstance(granularity, (int, np.integer)):
            raise TypeError(f"granularity must be an int >= 0, got {granularity!r} (theta is "
                            "not positional: pass it as theta=)")
        if granularity < 0:
            raise ValueError(f"granularity must be an int >= 0, got {granularity}")

    def _epochs(self, epochs: Any, theta: Any, what: str) -> tuple[Any, Any]:
        """(breakpoints or None, theta) for a method called with `epochs=`.

        With breakpoints, theta= of shape (E, P) is required (the stored theta is one
        row); an empty `epochs` is one epoch, so a (1, P) theta becomes its row.
        """
        if epochs is None:
            return None, theta
        from .epochs import check_epochs, homogeneous_theta

        tau = check_epochs(epochs)
        if tau is None:
            return None, None if theta is None else homogeneous_theta(np.asarray(theta))
        if theta is None:
            raise ValueError(
                f"{what}: epochs= needs theta= of shape (E, P), one row of "
                f"{self.param_length()} parameter(s) per epoch (E = len(epochs) + 1 = "
                f"{tau.shape[0] + 1}); the theta stored by update_weights is a single row"
            )
        return tau, theta

    def moments(
        self, power: int, rewards: Any = None, discrete: bool | None = None, *,
        theta: Any = None, epochs: Any = None,
    ) -> np.ndarray:
        """The first `power` raw moments E[T^i] (or E[Y^i] with per-vertex rewards).

        `discrete`, if given, must match the graph's kind. `theta` defaults to the
        theta stored by `update_weights`. With `epochs` (breakpoints, see
        `phasic.epochs`), `theta=` of shape (E, P) gives each epoch's parameters
        (continuous graphs only).
        """
        tau, theta = self._epochs(epochs, theta, "moments()")
        if isinstance(power, bool) or not isinstance(power, (int, np.integer)):
            raise TypeError(f"power (the number of moments) must be an int, got {power!r}")
        if power <= 0:
            raise ValueError(f"power (the number of moments) must be >= 1, got {power}")
        self._check_kind(discrete, "moments()")
        if tau is not None:
            from .ffi import compute_moments_ffi

            return np.asarray(compute_moments_ffi(self, theta, int(power), self._rewards(rewards),
                                                  epochs=tau))
        return np.asarray(
            self.structure().moments(self._theta(theta), int(power), self._rewards(rewards))
        )

    def expectation(self, rewards: Any = None, *, theta: Any = None,
                    epochs: Any = None) -> float:
        """E[T] (or E[Y] with rewards); `epochs` as in `moments`."""
        return float(self.moments(1, rewards, theta=theta, epochs=epochs)[0])

    def variance(self, rewards: Any = None, *, theta: Any = None, epochs: Any = None) -> float:
        """Var[T] (or Var[Y] with rewards); `epochs` as in `moments`."""
        m = self.moments(2, rewards, theta=theta, epochs=epochs)
        return float(m[1] - m[0] ** 2)

    def covariance(
        self, rewards1: Any = None, rewards2: Any = None, *, theta: Any = None
    ) -> float:
        """Cov(Y1, Y2) for the reward-weighted times of two per-vertex reward vectors.

        Y = integral of r(X_t) dt (continuous) or the sum of r over the visited states
        (discrete). A reward vector left out (None or empty) is 1 on every vertex, i.e.
        the time T itself. `theta` defaults to the theta stored by `update_weights`.
        """
        rows = []
        for name, given in (("rewards1", rewards1), ("rewards2", rewards2)):
            r = self._rewards(given)
            r = np.ones(self.vertices_length()) if r is None else r
            bad = np.flatnonzero(~np.isfinite(r) | (r < 0))
            if bad.size:
                raise ValueError(f"{name}[{bad[0]}] is {r[bad[0]]}; rewards must be finite "
                                 "and >= 0")
            rows.append(r)
        cov = self.structure().covariance(self._theta(theta), np.concatenate(rows), 2)
        return float(np.asarray(cov)[1])

    def _times(self, t: Any, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
        arr = np.asarray(t)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        return np.ascontiguousarray(arr.reshape(-1)), arr.shape

    def _density(self, kernel: str, t: Any, what: str, theta: Any) -> np.ndarray | float:
        """The structure's `kernel` ("pdf" or "cdf") at `t`, shaped like `t`."""
        times, shape = self._times(t, what)
        values = getattr(self.structure(), kernel)(self._theta(theta), times)
        out = np.asarray(values).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def _epoch_density(self, tau: Any, t: Any, what: str, theta: Any,
                       cumulative: bool) -> np.ndarray | float:
        from .epoch_ffi import epoch_pdf

        times, shape = self._times(t, what)
        out = np.asarray(epoch_pdf(self, theta, times, tau, cumulative)).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def pdf(self, time: Any, granularity: int = 0, *, theta: Any = None,
            epochs: Any = None) -> np.ndarray | float:
        """The density at time(s) `time` (continuous graphs only).

        `granularity` (upstream's discretization step count) is accepted and unused:
        the density is computed exactly. With `epochs` (breakpoints, see
        `phasic.epochs`), `theta=` of shape (E, P) gives each epoch's parameters.
        """
        self._check_granularity(granularity)
        if self.discrete:
            raise TypeError("pdf() is for continuous graphs; this graph is discrete: use pmf()")
        tau, theta = self._epochs(epochs, theta, "pdf()")
        if tau is not None:
            return self._epoch_density(tau, time, "time", theta, False)
        return self._density("pdf", time, "time", theta)

    def pmf(self, k: Any, *, theta: Any = None) -> np.ndarray | float:
        """The probability mass at step(s) `k` (discrete graphs only)."""
        if not self.discrete:
            raise TypeError("pmf() is for discrete graphs; this graph is continuous: use pdf()")
        return self._density("pdf", k, "k", theta)

    def cdf(self, time: Any, granularity: int = 0, *, theta: Any = None,
            epochs: Any = None) -> np.ndarray | float:
        """P(T <= time) at time(s) or step(s) `time`; `granularity` and `epochs` as in `pdf`."""
        self._check_granularity(granularity)
        tau, theta = self._epochs(epochs, theta, "cdf()")
        if tau is not None:
            return self._epoch_density(tau, time, "time", theta, True)
        return self._density("cdf", time, "time", theta)

    def expected_waiting_time(self, rewards: Any = None, *, theta: Any = None) -> np.ndarray:
        """Expected (rewarded) time to absorption from each vertex, one entry per vertex.

        Entry i is E[Y | start at vertex i], Y the time (with `rewards`, the reward
        accumulated) until absorption: ((-S)^-1 r) on the transient vertices, 0 on
        absorbing ones, and entry 0 (the starting vertex, which takes no time) is
        `expectation(rewards, theta=theta)`. For a discrete graph it counts steps. It
        uses the sparse factorization the moments use (one solve), so it serves
        graphs of any size.
        """
        return self.structure().expected_rewards(self._theta(theta), self._rewards(rewards))

    def defect(self, rewards: Any = None, *, theta: Any = None) -> float:
        """The probability of absorption at T = 0 (with `rewards`, of Y = 0).

        Without rewards it is the share of the starting vertex's out-weight (start
        weights are relative) that goes straight into absorbing vertices. With
        per-vertex rewards (one >= 0 per vertex) it is the probability that the chain
        is absorbed without collecting any reward: it also counts paths through
        zero-reward vertices only, found by eliminating those at a numeric theta
        (`theta=` or the stored one). See `phasic.transforms`.
        """
        if rewards is not None:
            from .transforms import mass_at_zero

            return mass_at_zero(self, rewards, theta)
        weights = self._edge_weights(self._theta(theta))
        total = self._start_total(weights, theta)
        return sum(w for dst, w in weights[0] if not weights[dst]) / total


    def pmf_discrete(self, k: Any, *, theta: Any = None) -> np.ndarray | float:
        """P(T = k) at whole step(s) `k` of a discrete graph (upstream's name for `pmf`)."""
        return self.pmf(self._steps(k, "pmf_discrete"), theta=theta)

    def cdf_discrete(self, k: Any, *, theta: Any = None) -> np.ndarray | float:
        """P(T <= k) at whole step(s) `k` of a discrete graph."""
        return self.cdf(self._steps(k, "cdf_discrete"), theta=theta)

    def _steps(self, k: Any, what: str) -> np.ndarray:
        """`k` checked as whole numbers of steps for a discrete graph."""
        if not self.discrete:
            raise TypeError(
                f"{what}() is for discrete graphs; this graph is continuous (use pdf() / "
                "cdf(), or build it with Graph(..., discrete=True))"
            )
        arr = np.asarray(k)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what}() steps must be numeric, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{what}() steps must be whole numbers, got {arr.tolist()}")
        return arr
