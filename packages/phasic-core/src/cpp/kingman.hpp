#pragma once
#include <cstdint>

#include "graph.hpp"

namespace phasic {

// Block-counting Kingman coalescent for n samples: state length n - 1, state[i-1] =
// number of lineages subtending i samples; the absorbing state is (0, ..., 0, 1).
// Rates are coefficients on theta[0], the pair-coalescence rate. 2 <= n <= 50.
GraphBuilder kingman(int64_t n);

// The state space grows as the partitions of n: n = 50 has 204,227 vertices and ~3
// million edges (2.6 s, 0.3 GB to build), n = 60 ~1 million vertices and ~2 GB,
// n = 200 ~4e12 vertices. Larger n is refused with the count and the fix.
constexpr int64_t kKingmanMaxSamples = 50;

// Vertices of kingman(n): partitions of n, plus the starting vertex (n <= 400).
uint64_t kingman_vertices(int64_t n);

}  // namespace phasic
