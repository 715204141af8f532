#include "threads.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

namespace phasic {
namespace {
std::atomic<int64_t> g_threads{0};  // 0: omp_get_max_threads()
}  // namespace

void set_num_threads(int64_t n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1, got " + std::to_string(n));
  g_threads = n;
}

int64_t get_num_threads() {
  const int64_t n = g_threads.load();
  return n > 0 ? n : std::max(1, omp_get_max_threads());
}

}  // namespace phasic
