#pragma once
#include <cstdint>

#include "graph.hpp"

namespace phasic {

// Block-counting Kingman coalescent for n samples: state length n - 1, state[i-1] =
// number of lineages subtending i samples; the absorbing state is (0, ..., 0, 1).
// Rates are coefficients on theta[0], the pair-coalescence rate. 2 <= n <= 60.
GraphBuilder kingman(int64_t n);

// The state space grows as the partitions of n, about 2.1x per 5 samples: n = 50 has
// 204,227 vertices, n = 60 966,468 vertices and ~17 million edges, n = 200 ~4e12. The
// bound is the largest size run end to end (build, compile, moments, pdf, gradient) on a
// 2-core, 24 GB machine (bench/scale.py); n = 70 would need ~4x that memory. Larger n is
// refused with the count and the fix.
constexpr int64_t kKingmanMaxSamples = 60;

// Vertices of kingman(n): partitions of n, plus the starting vertex (n <= 400).
uint64_t kingman_vertices(int64_t n);

}  // namespace phasic
