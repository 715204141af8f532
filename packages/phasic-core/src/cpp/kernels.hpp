// Per-theta numeric kernels over a compiled Structure. All throw
// std::invalid_argument with a message naming the offending input.
#pragma once
#include <cstdint>

#include "structure.hpp"

namespace phasic {

// out[i-1] = E[T^i] (rewards == nullptr) or E[Y^i], i = 1..k. rewards has s.V entries.
void compute_moments(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t rewards_len, int64_t k, double* out);

// Continuous graphs: density and CDF at each time; discrete graphs: PMF and CDF at
// each (integer) time. Either output may be nullptr.
void compute_distribution(const Structure& s, const double* theta, int64_t theta_len,
                          const double* times, int64_t n_times, double* pdf, double* cdf);

// Rough cost of one evaluation, used to decide whether a batch is worth threads.
double work_estimate(const Structure& s);

}  // namespace phasic
