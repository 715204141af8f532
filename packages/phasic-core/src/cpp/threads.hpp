// The OpenMP team size that batch loops and big sweeps use (phasic._core.set_num_threads).
#pragma once
#include <cstdint>

namespace phasic {

void set_num_threads(int64_t n);  // n >= 1; throws std::invalid_argument otherwise
int64_t get_num_threads();        // the value set, else omp_get_max_threads()

}  // namespace phasic
