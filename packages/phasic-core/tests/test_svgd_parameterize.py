"""phasic.svgd(structure, data, parameterize=f): particles of your own parameters.

`parameterize(x)` maps a particle x to theta, or to (theta, epochs) for an epoch
model; the likelihood is phasic.loglik at the mapped parameters. The same run
written by hand with `log_likelihood` is the reference: both trace the same
operations, so the particles must agree to the last bit. The epoch model is the
Kingman coalescent with a size change: x = (size ratio, change time) ->
theta = [[1], [1 / ratio]], tau = [change].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic.inference import _StructureLoglik
from phasic.reference import kingman_tmrca

N = 4
GRAPH = phasic.models.kingman(N)
JS = GRAPH.to_json()
DATA = np.random.default_rng(2).gamma(3.0, 0.5, 30)  # positive times, spread out
RUN = dict(n_particles=8, n_steps=12, step_size=0.1, seed=3, progress=False, chunk_size=6)


def log_prior(x):
    """Log-normal(0, 1) on every coordinate (positive parameters), up to a constant."""
    z = jnp.log(x)
    return -jnp.sum(z) - 0.5 * jnp.sum(z**2)


def size(x):
    """x = (population size,) -> theta = (pair-coalescence rate,) = 1 / size."""
    return 1.0 / x


def size_change(x):
    """x = (ratio, change) -> theta (2, 1) and the breakpoint (1,)."""
    return jnp.stack([jnp.ones(1, x.dtype), 1.0 / x[:1]]), x[1:2]


def test_identity_map_is_the_plain_run() -> None:
    plain = phasic.svgd(GRAPH, DATA, log_prior=log_prior, init=np.ones(1), **RUN)
    mapped = phasic.svgd(GRAPH, DATA, log_prior=log_prior, init=np.ones(1),
                         parameterize=lambda x: x, **RUN)
    np.testing.assert_array_equal(mapped.particles, plain.particles)


def test_size_map_matches_the_hand_written_likelihood_and_the_exact_density() -> None:
    def by_hand(x, t):
        return phasic.loglik(JS, 1.0 / x, t)

    mapped = phasic.svgd(GRAPH, DATA, log_prior=log_prior, init=np.ones(1),
                         parameterize=size, **RUN)
    hand = phasic.svgd(None, DATA, log_prior=log_prior, init=np.ones(1),
                       log_likelihood=by_hand, **RUN)
    np.testing.assert_array_equal(mapped.particles, hand.particles)
    # the mapped likelihood is the T_MRCA density at rate 1 / size (closed form, 1e-8)
    x = 1.7
    exact = np.log(kingman_tmrca(N, DATA, theta=1.0 / x, digits=40).pdf).sum()
    got = _StructureLoglik(JS, False, size)(jnp.array([x]), DATA)
    np.testing.assert_allclose(float(got), exact, rtol=1e-8)


def test_epoch_map_matches_the_hand_written_likelihood() -> None:
    def by_hand(x, t):
        theta, tau = size_change(x)
        return phasic.loglik(JS, theta, t, epochs=tau)

    init = np.array([2.0, 0.5])
    mapped = phasic.svgd(GRAPH, DATA, log_prior=log_prior, init=init,
                         parameterize=size_change, **RUN)
    hand = phasic.svgd(None, DATA, log_prior=log_prior, init=init, log_likelihood=by_hand,
                       **RUN)
    assert mapped.particles.shape == (8, 2)
    np.testing.assert_array_equal(mapped.particles, hand.particles)
    # the change times moved from their starting draws (svgd's centre * exp(0.5 N(0, 1)))
    x0 = init * np.exp(0.5 * np.random.default_rng(RUN["seed"]).standard_normal((8, 2)))
    assert np.all(np.abs(np.log(mapped.particles[:, 1] / x0[:, 1])) > 1e-3)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"parameterize": 3}, TypeError, "parameterize must be a callable x -> theta"),
        ({"parameterize": size, "log_likelihood": lambda x, t: 0.0}, ValueError,
         "either parameterize .* or log_likelihood, not both"),
        ({"parameterize": size, "structure": None}, ValueError,
         "parameterize needs `structure`"),
        ({"parameterize": size, "init": None}, ValueError,
         "with parameterize .* pass init"),
        ({"parameterize": lambda x: (x, x, x)}, ValueError,
         r"theta or a pair \(theta, epochs\), got a tuple of 3"),
    ],
)
def test_bad_parameterize(kw: dict, error: type, match: str) -> None:
    args = {"structure": GRAPH, "init": np.ones(1), "n_particles": 4, "n_steps": 1,
            "progress": False} | kw
    structure = args.pop("structure")
    with pytest.raises(error, match=match):
        phasic.svgd(structure, DATA, **args)
