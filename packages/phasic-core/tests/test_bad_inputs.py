"""Bad inputs: each gives a Python exception whose message names the problem.

All cases run in child processes (core_bad_input_runner.py), so an abort or segfault in
the C++ code fails the case that caused it instead of killing pytest. One child
runs a whole group; if it dies, the case it was running is recorded as a crash and
the rest of the group continues in a fresh child.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

RUNNER = pathlib.Path(__file__).with_name("core_bad_input_runner.py")
K = "kjs"  # Kingman n = 4 JSON, one parameter
TH = "jnp.array([1.0])"
T = "jnp.array([0.5, 1.0])"
PS = "jnp.ones((2, k.vertices_length()))"  # a start of two layers for propagate
KERNEL = ("ValueError", "RuntimeError")  # detected in C++: ValueError or JAX's runtime error

# name: (group, code, accepted exception class names, regex the message must match)
CASES: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "theta too long": ("x64", f"phasic.compute_moments_ffi({K}, jnp.array([1.0, 2.0]), 2)",
                       ("ValueError",), r"theta.*shape \(1,\)"),
    "theta 2-d": ("x64", f"phasic.compute_pmf_ffi({K}, jnp.ones((1, 1)), {T})",
                  ("ValueError",), r"theta.*shape.*vmap"),
    "theta int dtype": ("x64", f"phasic.compute_moments_ffi({K}, jnp.array([1]), 2)",
                        ("TypeError",), r"theta.*int64.*float64"),
    "theta float32": ("x64", f"phasic.compute_moments_ffi({K}, jnp.array([1.0], "
                             "dtype=jnp.float32), 2)", ("TypeError",), r"theta.*float32"),
    "times float32": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, jnp.array([1.0], "
                             "dtype=jnp.float32))", ("TypeError",), r"times.*float32"),
    "theta strings": ("x64", f"phasic.compute_moments_ffi({K}, ['a'], 2)",
                      ("TypeError",), r"theta"),
    "graph theta wrong length": ("x64", "k.expectation(theta=[1.0, 2.0])", ("ValueError",),
                                 r"theta.*shape \(1,\)"),
    "graph theta missing": ("x64", "k.expectation()", ("ValueError",), r"theta"),
    "NaN rate (ffi)": ("x64", f"phasic.compute_moments_ffi({K}, jnp.array([np.nan]), 2)",
                       KERNEL, r"(?i)weight.*nan|nan.*weight|nan"),
    "NaN rate (graph)": ("x64", "k.pdf([0.5], theta=[float('nan')])", KERNEL, r"(?i)nan"),
    "negative rate (ffi)": ("x64", f"phasic.compute_pmf_ffi({K}, jnp.array([-1.0]), {T})",
                            KERNEL, r"edge \d+ .*weight -\d.*>= 0"),
    "negative rate (graph)": ("x64", "k.moments(2, theta=[-1.0])", KERNEL,
                              r"edge \d+ .*weight -\d.*>= 0"),
    "no absorbing path": ("x64", "no_exit.expectation()", KERNEL, r"(?i)absor"),
    "no absorbing path (ffi)": ("x64", "phasic.compute_pmf_ffi(no_exit, jnp.zeros(0), "
                                       f"{T})", KERNEL, r"(?i)absor"),
    "zero exit rate for theta": ("x64", "zero_exit.moments(1, theta=[0.0])", KERNEL, r"(?i)absor"),
    "start weights sum to 0": ("x64", "zero_start.expectation(theta=[0.0])", KERNEL,
                               r"start.*sum to 0 at theta = \[0\].*> 0"),
    "start weights sum to 0 (ffi)": ("x64", "phasic.compute_moments_ffi(zero_start, "
                                            "jnp.array([0.0]), 1)", KERNEL,
                                     r"start.*sum to 0 at theta = \[0\].*> 0"),
    "no start edge": ("x64", "no_start.pdf(1.0)", KERNEL, r"no out-edges.*add an edge"),
    "malformed JSON": ("x64", f"phasic.compute_moments_ffi('{{\"format\": ', {TH}, 1)",
                       ("ValueError",), r"(?i)json|format.*byte"),
    "not JSON at all": ("x64", f"phasic.compute_moments_ffi('{{not json', {TH}, 1)",
                        ("ValueError",), r"(?i)json|byte"),
    "JSON unknown key": ("x64", "phasic.compute_moments_ffi(kjs.replace('\"version\"', "
                                f"'\"bogus\": 1, \"version\"', 1), {TH}, 1)",
                         ("ValueError",), r"bogus"),
    "structure of wrong type": ("x64", f"phasic.compute_moments_ffi(42, {TH}, 1)",
                                ("TypeError",), r"structure_json"),
    "nr_moments zero": ("x64", f"phasic.compute_moments_ffi({K}, {TH}, 0)",
                        ("ValueError",), r"nr_moments.*>= 1"),
    "nr_moments negative": ("x64", f"phasic.compute_pmf_and_moments_ffi({K}, {TH}, {T}, -2)",
                            ("ValueError",), r"nr_moments"),
    "nr_moments float": ("x64", f"phasic.compute_moments_ffi({K}, {TH}, 2.0)",
                         ("TypeError",), r"nr_moments"),
    "nr_moments above 170 (ffi)": ("x64", f"phasic.compute_moments_ffi({K}, {TH}, 171)",
                                   ("ValueError",), r"nr_moments must be at most 170"),
    "nr_moments 2**60 (ffi)": ("x64", f"phasic.compute_pmf_and_moments_ffi({K}, {TH}, {T}, "
                                      "2**60)", ("ValueError",), r"at most 170.*k!"),
    "nr_moments above 170 (graph)": ("x64", "k.moments(171, theta=[1.0])", ("ValueError",),
                                     r"between 0 and 170"),
    "moments overflow": ("x64", "k.moments(40, theta=[1e-8])", ("ValueError",),
                         r"moment \d+ overflows a double.*at most \d+ moments"),
    "moments overflow (grad)": ("x64", f"jax.grad(lambda t: phasic.compute_moments_ffi({K}, t, "
                                       "40)[-1])(jnp.array([1e-8]))", KERNEL,
                                r"overflows a double"),
    "discrete time past the step cap": ("x64", "geo.structure().log_pdf([], [1e9])",
                                        ("ValueError",), r"1000000000 steps.*2e6 allowed"),
    "discrete time past the step cap (ffi)": ("x64", "phasic.compute_log_pmf_ffi(geo, "
                                                     "jnp.zeros(0), jnp.array([1e9]), "
                                                     "discrete=True)", KERNEL, r"2e6 allowed"),
    "kingman too large": ("x64", "models.kingman(61)", ("ValueError",),
                          r"1121506 states.*n <= 60"),
    "JSON with a byte-order mark": ("x64", "phasic.Graph.from_json('\\ufeff' + kjs)",
                                    ("ValueError",), r"byte-order mark"),
    "JSON non-ASCII before the object": ("x64", "phasic.Graph.from_json('\\u00e9' + kjs)",
                                         ("ValueError",), r"found '\\xc3' \(at byte 0\)"),
    "JSON 1 MB number": ("x64", "phasic.Graph.from_json(kjs.replace('\"weight\": [', "
                                "'\"weight\": [' + '9' * 10**6 + ', ', 1))", ("ValueError",),
                         r"\A(?!.{300})edges\.weight\[0\]: number 9+\.\.\. \(1000000 bytes\)"),
    "state_length above 2^24": ("x64", "phasic.Graph(2**24 + 1)", ("ValueError",),
                                r"state_length must be between 0 and 2\^24"),
    "negative time": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, jnp.array([0.5, -1.0]))",
                      KERNEL, r"times\[1\] is -1.*>= 0"),
    "NaN time": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, jnp.array([np.nan]))",
                 KERNEL, r"(?i)time.*nan|nan.*time"),
    "negative time (graph)": ("x64", "k.cdf([-0.5], theta=[1.0])", KERNEL,
                              r"times\[0\] is -0.5"),
    "rewards wrong length": ("x64", f"phasic.compute_moments_ffi({K}, {TH}, 1, "
                                    "rewards=jnp.ones(2))", ("ValueError",), r"rewards"),
    "negative reward": ("x64", f"phasic.compute_moments_ffi({K}, {TH}, 1, "
                               "rewards=-jnp.ones(k.vertices_length()))", KERNEL,
                        r"(?i)reward"),
    "discrete flag mismatch": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, {T}, discrete=True)",
                               ("ValueError",), r"discrete=False"),
    "pmf on continuous graph": ("x64", "k.pmf([1], theta=[1.0])", ("TypeError",), r"pdf"),
    "x64 off": ("nox64", "phasic.compute_moments_ffi(phasic.models.kingman(3).to_json(), "
                         "[1.0], 2)", ("TypeError",), r"jax_enable_x64"),
    "x64 off, pmf": ("nox64", "phasic.compute_pmf_ffi(phasic.models.kingman(3), [1.0], "
                              "[0.5])", ("TypeError",), r'jax\.config\.update\("jax_enable_x64'),
    # drawing (Graph.plot)
    "plot too many vertices": ("x64", "k.plot(max_vertices=3)", ("ValueError",),
                               r"\d+ vertices, more than max_vertices=3"),
    "plot theta wrong length": ("x64", "island.plot(theta=[1.0])", ("ValueError",),
                                r"theta must have shape \(2,\)"),
    "plot theta and symbolic": ("x64", "k.plot(theta=[1.0], symbolic=True)", ("ValueError",),
                                r"theta=.*or symbolic=True"),
    "plot upstream colouring": ("x64", "k.plot(color_by=[0.0] * 6)", ("TypeError",),
                                r"color_by.*not implemented"),
    "plot filename without suffix": ("x64", "k.plot('model')", ("ValueError",),
                                     r"format suffix such as 'model.svg'"),
    # reward transforms (phasic.transforms: reward_transform, defect(rewards), discretize)
    "reward_transform negative reward": ("x64", "k.reward_transform(-np.ones(k.vertices_length()))",
                                         ("ValueError",), r"rewards\[0\] is -1.0.*>= 0"),
    "reward_transform NaN reward": ("x64", "k.reward_transform(np.full(k.vertices_length(), "
                                           "np.nan))", ("ValueError",), r"rewards\[0\] is nan"),
    "reward_transform wrong length": ("x64", "k.reward_transform([1.0, 1.0])", ("ValueError",),
                                      r"vertices_length\(\) = \d+ entries"),
    "reward_transform zeros, no theta": ("x64", "k.reward_transform(models.kingman_sfs_rewards("
                                                "k, 3))", ("ValueError",),
                                         r"non-linear in theta.*pass theta="),
    "reward_transform discrete non-integer": ("x64", "geo.reward_transform([0, 1.5, 0])",
                                              ("ValueError",), r"rewards\[1\].*whole numbers"),
    "defect rewards zeros, no theta": ("x64", "k.defect(models.kingman_sfs_rewards(k, 3))",
                                       ("ValueError",), r"non-linear in theta"),
    "discretize negative rate": ("x64", "k.discretize(-1.0, theta=[1.0])", ("ValueError",),
                                 r"rate must be finite and > 0"),
    "discretize discrete graph": ("x64", "geo.discretize(0.5)", ("TypeError",),
                                  r"already discrete"),
    "reward_transform 2-d rewards": ("x64", "k.reward_transform(np.ones((2, k.vertices_length()))"
                                            ", theta=[1.0])", ("ValueError",),
                                     r"one vector.*shape \(2, \d+\)"),
    "reward_transform string rewards": ("x64", "k.reward_transform(['a'] * k.vertices_length())",
                                        ("TypeError",), r"rewards must be numeric"),
    "reward_transform_discrete continuous": ("x64", "k.reward_transform_discrete([1.0] * 6)",
                                             ("TypeError",), r"continuous.*reward_transform"),
    "discretize string rate": ("x64", "k.discretize('fast', theta=[1.0])", ("TypeError",),
                               r"rate must be a number or a callable"),
    "discretize callable negative": ("x64", "k.discretize(lambda s: -sum(s), theta=[1.0])",
                                     ("ValueError",), r"rate for state \[4, 0, 0\] is -4"),
    # sampling: phasic.sample (a JAX key drives the C++ sampler) and Graph.sample
    "sample: key not a key": ("x64", f"phasic.sample({K}, {TH}, 3, 5)", ("TypeError",),
                              r"key must be a JAX PRNG key"),
    "sample: array of keys": ("x64", f"phasic.sample({K}, {TH}, "
                                     "jax.random.split(jax.random.key(0)), 5)",
                              ("ValueError",), r"single PRNG key.*shape \(2,\).*vmap"),
    "sample: raw key of 3 words": ("x64", f"phasic.sample({K}, {TH}, jnp.zeros(3, jnp.uint32), "
                                          "5)", ("TypeError",), r"uint32 and shape \(2,\)"),
    "sample: negative shape": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), (3, -1))",
                               ("ValueError",), r"shape must not have negative entries"),
    "sample: float shape": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), 2.5)",
                            ("TypeError",), r"shape must be an int or a tuple of ints"),
    "sample: huge shape": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), (10**6, 10**6))",
                           ("ValueError",), r"phasic\.sample would need .* GiB.*memory"),
    "sample: rewards wrong length": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), 4, "
                                            "rewards=jnp.ones(2))", ("ValueError",),
                                     r"rewards must have shape \(\d+,\).*got shape \(2,\)"),
    "sample: rewards 3-d": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), 4, "
                                   "rewards=jnp.ones((1, 1, k.vertices_length())))",
                            ("ValueError",), r"rewards must have shape.*\(R, \d+\)"),
    "sample: negative reward": ("x64", f"phasic.sample({K}, {TH}, jax.random.key(0), 4, "
                                       "rewards=-jnp.ones((2, k.vertices_length())))", KERNEL,
                                r"rewards\[0, 0\] is -1.*finite and >= 0"),
    "sample: NaN rate": ("x64", f"phasic.sample({K}, jnp.array([np.nan]), jax.random.key(0), "
                                "4)", KERNEL, r"theta\[0\] is nan"),
    "sample: no absorbing path": ("x64", "phasic.sample(no_exit, jnp.zeros(0), "
                                         "jax.random.key(0), 4)",
                                  KERNEL, r"cannot reach (an absorbing vertex|absorption)"),
    "sample: zero exit rate for theta": ("x64", "phasic.sample(zero_exit, jnp.array([0.0]), "
                                                "jax.random.key(0), 4)", KERNEL,
                                         r"total out-rate 0.*never reach absorption"),
    "sample: discrete flag mismatch": ("x64", f"phasic.sample(geo, {TH}, jax.random.key(0), 4)",
                                       ("ValueError",), r"discrete=True"),
    "Graph.sample: negative reward row": ("x64", "k.sample(5, theta=[1.0], "
                                                 "rewards=-np.ones((2, k.vertices_length())))",
                                          ("ValueError",), r"rewards\[0, 0\] is -1\.0"),
    "Graph.sample: rewards wrong length": ("x64", "k.sample(5, theta=[1.0], "
                                                  "rewards=np.ones((2, 3)))", ("ValueError",),
                                           r"vertices_length\(\) = \d+ entries.*got shape \(3,\)"),
    "Graph.sample: huge n": ("x64", "k.sample(10**12, theta=[1.0])", ("ValueError",),
                             r"Graph\.sample would need .* GiB"),
    "Graph.sample: validate_rewards not bool": ("x64", "k.sample(5, theta=[1.0], "
                                                       "validate_rewards='yes')", ("TypeError",),
                                                r"validate_rewards must be a bool"),
    # reward-weighted densities (compute_pmf_ffi / compute_log_pmf_ffi / loglik with rewards)
    "reward density negative reward": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, {T}, "
                                              "rewards=-jnp.ones(k.vertices_length()))",
                                       ("ValueError",), r"rewards\[0\] is -1.*finite and >= 0"),
    "reward density NaN reward": ("x64", f"phasic.compute_log_pmf_ffi({K}, {TH}, {T}, "
                                         "rewards=jnp.full(k.vertices_length(), np.nan))",
                                  ("ValueError",), r"rewards\[0\] is nan"),
    "reward density wrong length": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, {T}, "
                                           "rewards=jnp.ones(2))", ("ValueError",),
                                    r"rewards must have shape \(\d+,\).*got shape \(2,\)"),
    "reward density 3-d rewards": ("x64", f"phasic.compute_pmf_ffi({K}, {TH}, {T}, "
                                          "rewards=jnp.ones((1, 1, k.vertices_length())))",
                                   ("ValueError",), r"rewards must have shape.*\(R, \d+\)"),
    "reward density traced negative reward": ("x64", f"jax.jit(lambda r: phasic.compute_pmf_ffi("
                                                     f"{K}, {TH}, {T}, rewards=r))("
                                                     "-jnp.ones(k.vertices_length()))", KERNEL,
                                              r"rewards\[0\] is -1"),
    "reward density traced negative reward in row 1": (
        "x64", f"jax.jit(lambda r: phasic.compute_pmf_ffi({K}, {TH}, {T}, rewards=r))("
               "jnp.stack([jnp.ones(k.vertices_length()), -jnp.ones(k.vertices_length())]))",
        KERNEL, r"reward row 1: rewards\[0\] is -1"),
    "reward density non-integer on discrete": ("x64", "phasic.compute_pmf_ffi(geo, jnp.zeros(0), "
                                                      "jnp.array([1.0]), discrete=True, "
                                                      "rewards=jnp.array([0.0, 1.5, 0.0]))",
                                               ("ValueError",), r"rewards\[1\] is 1.5.*whole"),
    "reward density traced non-integer on discrete": (
        "x64", "jax.jit(lambda r: phasic.compute_pmf_ffi(geo, jnp.zeros(0), jnp.array([1.0]), "
               "discrete=True, rewards=r))(jnp.array([0.0, 2.5, 0.0]))", KERNEL,
        r"rewards\[1\] is 2.5.*whole numbers"),
    "reward density gradient in rewards": ("x64", f"jax.grad(lambda r: phasic.compute_pmf_ffi("
                                                  f"{K}, {TH}, {T}, rewards=r)[0])("
                                                  "jnp.ones(k.vertices_length()))",
                                           ("TypeError",), r"rewards.*stop_gradient"),
    "reward density loglik rows mismatch": ("x64", f"phasic.loglik({K}, {TH}, jnp.ones((3, 2)), "
                                                   "rewards=jnp.ones((2, k.vertices_length())))",
                                            ("ValueError",), r"one row of observations per"),
    "reward density joint multivariate": ("x64", "phasic.ffi_wrappers.compute_pmf_multivariate_ffi("
                                                 f"{K}, {TH}, jnp.ones((2, 1)), "
                                                 "jnp.ones((1, k.vertices_length())), "
                                                 "compute_joint=True)", ("ValueError",),
                                          r"compute_joint=True.*not implemented"),
    # mutation counts (compute_mutation_pmf_ffi, Graph.mutation_pmf)
    "mutation kmax negative": ("x64", f"phasic.compute_mutation_pmf_ffi({K}, {TH}, 1.0, None, "
                                      "-1)", ("ValueError",), r"kmax.*between 0 and 100000.*-1"),
    "mutation kmax absurd": ("x64", "k.mutation_pmf(1.0, kmax=10**9, theta=[1.0])",
                             ("ValueError",), r"kmax.*between 0 and 100000.*1000000000"),
    "mutation kmax float": ("x64", "k.mutation_pmf(1.0, kmax=5.0, theta=[1.0])",
                            ("TypeError",), r"kmax.*int"),
    "mutation rate negative": ("x64", f"phasic.compute_mutation_pmf_ffi({K}, {TH}, -0.5, None, "
                                      "5)", KERNEL, r"mutation_rate is -0\.5.*finite and >= 0"),
    "mutation rate NaN": ("x64", "k.mutation_pmf(float('nan'), kmax=5, theta=[1.0])", KERNEL,
                          r"mutation_rate is nan.*finite and >= 0"),
    "mutation rate vector": ("x64", f"phasic.compute_mutation_pmf_ffi({K}, {TH}, "
                                    "jnp.ones(2), None, 5)", ("ValueError",),
                             r"mutation_rate must be a scalar.*vmap"),
    "mutation rewards wrong length": ("x64", f"phasic.compute_mutation_pmf_ffi({K}, {TH}, 1.0, "
                                             "jnp.ones(2), 5)", ("ValueError",),
                                      r"rewards must have shape \(\d+,\).*got shape \(2,\)"),
    "mutation rewards 3-d": ("x64", "k.mutation_pmf(1.0, np.ones((1, 1, 5)), kmax=5, "
                                    "theta=[1.0])", ("ValueError",), r"rewards must have shape"),
    "mutation reward negative": ("x64", "k.mutation_pmf(1.0, -np.ones(k.vertices_length()), "
                                        "kmax=5, theta=[1.0])", KERNEL,
                                 r"rewards\[0, 0\] is -1.*finite and >= 0"),
    "mutation reward NaN (ffi)": ("x64", f"phasic.compute_mutation_pmf_ffi({K}, {TH}, 1.0, "
                                         "jnp.full(k.vertices_length(), jnp.nan), 5)", KERNEL,
                                  r"rewards\[0, 0\] is nan"),
    # the state at a time (compute_state_probabilities_ffi, accumulated_visiting_time)
    "state time negative": ("x64", f"phasic.compute_state_probabilities_ffi({K}, {TH}, [-1.0])",
                            KERNEL, r"time.*-1.*>= 0"),
    "state time NaN": ("x64", "k.accumulated_visiting_time([float('nan')], theta=[1.0])",
                       KERNEL, r"time.*nan"),
    "state theta wrong length": ("x64", f"phasic.compute_state_probabilities_ffi({K}, "
                                        "jnp.ones(2), [1.0])", ("ValueError",),
                                 r"theta.*length"),
    "state times 2-d": ("x64", "k.state_probabilities(np.ones((2, 2)), theta=[1.0])",
                        ("ValueError",), r"times must be a scalar or 1-D"),
    # propagate and vertex_moments (phasic.propagate_ffi); [0]: one array to wait for
    "propagate start 1-d": ("x64", f"phasic.propagate({K}, {TH}, "
                                   f"jnp.ones(k.vertices_length()), {T})[0]", ("ValueError",),
                            r"start must have shape \(layers, \d+\).*p\[None, :\]"),
    "propagate start wrong width": ("x64", f"phasic.propagate({K}, {TH}, jnp.ones((2, 3)), "
                                           f"{T})[0]", ("ValueError",),
                                    r"start must have shape \(layers, \d+\).*got shape \(2, 3\)"),
    "propagate start no layer": ("x64", f"phasic.propagate({K}, {TH}, "
                                        f"jnp.ones((0, k.vertices_length())), {T})[0]",
                                 ("ValueError",), r"start.*layers >= 1"),
    "propagate start float32": ("x64", f"phasic.propagate({K}, {TH}, {PS}.astype(jnp.float32), "
                                       f"{T})[0]", ("TypeError",), r"start.*float32"),
    "propagate start NaN": ("x64", f"phasic.propagate({K}, {TH}, {PS}.at[0, 1].set(jnp.nan), "
                                   f"{T})[0]", KERNEL, r"start\[0, 1\] is nan.*finite"),
    "propagate start inf": ("x64", f"phasic.propagate({K}, {TH}, {PS}.at[1, 2].set(jnp.inf), "
                                   f"{T})[0]", KERNEL, r"start\[1, 2\] is inf.*finite"),
    "propagate time negative": ("x64", f"phasic.propagate({K}, {TH}, {PS}, "
                                       "jnp.array([1.0, -1.0]))[0]", KERNEL,
                                r"times\[1\] is -1.*finite and >= 0"),
    "propagate time inf": ("x64", f"phasic.propagate({K}, {TH}, {PS}, jnp.array([jnp.inf]))[0]",
                           KERNEL, r"times\[0\] is inf.*finite"),
    "propagate times 2-d": ("x64", f"phasic.propagate({K}, {TH}, {PS}, jnp.ones((2, 2)))[0]",
                            ("ValueError",), r"times must be 1-D.*atleast_1d"),
    "propagate times int": ("x64", f"phasic.propagate({K}, {TH}, {PS}, jnp.array([1]))[0]",
                            ("TypeError",), r"times.*int64.*float64"),
    "propagate rewards wrong length": ("x64", f"phasic.propagate({K}, {TH}, {PS}, {T}, "
                                              "jnp.ones(2))[0]", ("ValueError",),
                                       r"rewards must have one entry per vertex"),
    "propagate reward NaN": ("x64", f"phasic.propagate({K}, {TH}, {PS}, {T}, "
                                    "jnp.ones(k.vertices_length()).at[1].set(jnp.nan))[0]",
                             KERNEL, r"rewards\[1\] is nan.*finite and >= 0"),
    "propagate reward negative": ("x64", f"phasic.propagate({K}, {TH}, {PS}, {T}, "
                                         "-jnp.ones(k.vertices_length()))[0]", KERNEL,
                                  r"rewards\[0\] is -1.*finite and >= 0"),
    "propagate theta wrong length": ("x64", f"phasic.propagate({K}, jnp.ones(2), {PS}, {T})[0]",
                                     ("ValueError",), r"theta.*shape \(1,\)"),
    "propagate discrete graph": ("x64", "phasic.propagate(geo, jnp.zeros(0), "
                                        f"jnp.ones((1, geo.vertices_length())), {T})[0]",
                                 ("ValueError",), r"continuous graphs only.*discrete"),
    "vertex_moments nr_moments 0": ("x64", f"phasic.vertex_moments({K}, {TH}, 0)",
                                    ("ValueError",), r"nr_moments must be >= 1"),
    "vertex_moments rewards 2-d": ("x64", f"phasic.vertex_moments({K}, {TH}, 2, "
                                          "jnp.ones((1, k.vertices_length())))",
                                   ("ValueError",), r"rewards must have one entry per vertex"),
    "vertex_moments reward NaN": ("x64", f"phasic.vertex_moments({K}, {TH}, 2, "
                                         "jnp.full(k.vertices_length(), jnp.nan))", KERNEL,
                                  r"rewards\[0\] is nan.*finite and >= 0"),
    "vertex_moments theta NaN": ("x64", f"phasic.vertex_moments({K}, jnp.array([jnp.nan]), 2)",
                                 KERNEL, r"theta\[0\] is nan"),
}


def _run_group(group: str, names: list[str]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    remaining = list(names)
    while remaining:
        payload = json.dumps([{"name": n, "code": CASES[n][1]} for n in remaining])
        proc = subprocess.run([sys.executable, str(RUNNER), group], input=payload,
                              capture_output=True, text=True, timeout=120)
        started = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                started = line[6:]
            elif line.startswith("{"):
                res = json.loads(line)
                results[res["name"]] = res
                started = None
        done = [n for n in remaining if n in results]
        if started is not None:  # the child died inside this case
            results[started] = {"name": started, "crash": proc.returncode,
                                "stderr": proc.stderr[-2000:]}
        elif len(done) < len(remaining) and proc.returncode != 0 and not done:
            raise RuntimeError(f"runner failed before any case:\n{proc.stderr[-3000:]}")
        remaining = [n for n in remaining if n not in results]
    return results


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for group in ("x64", "nox64"):
        out.update(_run_group(group, [n for n, c in CASES.items() if c[0] == group]))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(results: dict[str, dict], name: str) -> None:
    _, code, accepted, pattern = CASES[name]
    res = results[name]
    assert "crash" not in res, f"{code!r} crashed the process (exit {res.get('crash')}):\n" \
                               f"{res.get('stderr')}"
    assert res["raised"] is not None, f"{code!r} raised nothing, returned {res['message']}"
    assert set(accepted) & set(res["mro"]), f"{code!r} raised {res['raised']}: {res['message']}"
    assert re.search(pattern, res["message"], re.S), \
        f"{code!r}: message does not match {pattern!r}: {res['message']}"
