#pragma once
#include <cstdint>

#include "graph.hpp"

namespace phasic {

// Block-counting Kingman coalescent for n samples: state length n - 1, state[i-1] =
// number of lineages subtending i samples; the absorbing state is (0, ..., 0, 1).
// Rates are coefficients on theta[0], the pair-coalescence rate.
GraphBuilder kingman(int64_t n);

}  // namespace phasic
