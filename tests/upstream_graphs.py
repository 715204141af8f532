"""The hand-written cyclic graph the upstream-API tests share, with its dense matrices.

The graph is written down together with its sub-intensity matrix S and initial vector
alpha, so reference values come from numpy/scipy on those matrices, never from phasic.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from phasic import Graph

PDF_RTOL = 1e-10
THETA = np.array([1.5, 0.25])
# The graph of `cyclic_graph()` at THETA, over its transient vertices a, b, c
# (vertex indices 1, 2, 3; the absorbing vertex d is index 4).
ALPHA = np.array([0.7, 0.3, 0.0])
S = np.array([
    [-4.0, 3.0, 0.0],   # a: to b at 2*theta0 = 3, to d at 1
    [0.5, -3.5, 3.0],   # b: to a at 0.5, to c at 3
    [0.0, 0.0, -1.0],   # c: to d at 4*theta1 = 1
])


def cyclic_graph() -> Graph:
    """A continuous graph with a cycle a <-> b and both constant and theta weights."""
    g = Graph(2)
    a = g.find_or_create_vertex([1, 0])
    b = g.find_or_create_vertex([2, 0])
    c = g.find_or_create_vertex([1, 1])
    d = g.find_or_create_vertex([0, 1])
    g.starting_vertex().add_edge(a, 0.7)
    g.starting_vertex().add_edge(b, 0.3)
    a.add_edge(b, [2.0, 0.0])
    a.add_edge(d, 1.0)
    b.add_edge(a, 0.5)
    b.add_edge(c, 3.0)
    c.add_edge(d, [0.0, 4.0])
    return g


def dense_pdf(alpha: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(alpha @ scipy.linalg.expm(s * t) @ (-s.sum(axis=1)))


def dense_cdf(alpha: np.ndarray, s: np.ndarray, t: float) -> float:
    return 1.0 - float(alpha @ scipy.linalg.expm(s * t) @ np.ones(len(alpha)))


def defect_graph() -> Graph:
    """Start -> a (0.6) and start -> done (0.4, a defect); a -> done at rate 2."""
    g = Graph(1)
    a = g.find_or_create_vertex([1])
    done = g.find_or_create_vertex([2])
    g.starting_vertex().add_edge(a, 0.6)
    g.starting_vertex().add_edge(done, 0.4)
    a.add_edge(done, 2.0)
    return g
