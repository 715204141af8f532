#include "kingman.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace phasic {

uint64_t kingman_vertices(int64_t n) {
  // One vertex per integer partition of n (the block sizes), plus the starting vertex.
  std::vector<uint64_t> p(static_cast<size_t>(n) + 1, 0);
  p[0] = 1;
  for (int64_t part = 1; part <= n; ++part)
    for (int64_t m = part; m <= n; ++m) p[m] += p[m - part];
  return p[n] + 1;
}

GraphBuilder kingman(int64_t n) {
  if (n < 2)
    throw std::invalid_argument("kingman(n) needs 2 <= n <= " +
                                std::to_string(kKingmanMaxSamples) + " samples, got " +
                                std::to_string(n));
  if (n > kKingmanMaxSamples) {
    // Past ~2^60 vertices the count itself would overflow; say so instead.
    const std::string count =
        n <= 400 ? std::to_string(kingman_vertices(n)) : std::string("more than 10^19");
    throw std::invalid_argument(
        "kingman(n) with n = " + std::to_string(n) + " samples would have " + count +
        " states (one per integer partition of n; n = " + std::to_string(kKingmanMaxSamples) +
        " already has " + std::to_string(kingman_vertices(kKingmanMaxSamples)) +
        " and ~17 million edges); use n <= " + std::to_string(kKingmanMaxSamples) +
        ", or a model that lumps lineage counts");
  }
  const int64_t len = n - 1;
  GraphBuilder b(len, false);
  b.set_param_length(1);
  std::vector<int32_t> state(static_cast<size_t>(len), 0), next(static_cast<size_t>(len));
  state[0] = static_cast<int32_t>(n);
  const int64_t first = b.find_or_create_vertex(state.data(), state.size());
  b.add_edge(0, first, 1.0, nullptr, 0);
  // Vertices are created in breadth-first order, so walking indices visits them all.
  for (int64_t v = first; v < b.vertices_length(); ++v) {
    const int32_t* sp = b.data().states.data() + v * len;
    state.assign(sp, sp + len);
    int64_t lineages = 0;
    for (int32_t a : state) lineages += a;
    if (lineages < 2) continue;  // the absorbing state (one lineage left)
    for (int64_t i = 1; i <= len; ++i) {
      const double ai = state[i - 1];
      if (ai == 0) continue;
      for (int64_t j = i; j <= len; ++j) {
        const double aj = state[j - 1];
        const double rate = i < j ? ai * aj : ai * (ai - 1) / 2;
        if (rate <= 0) continue;
        next = state;
        --next[i - 1];
        --next[j - 1];
        if (i + j == n) {
          next[len - 1] = 1;  // the MRCA: represented as (0, ..., 0, 1)
        } else {
          ++next[i + j - 1];
        }
        const int64_t dst = b.find_or_create_vertex(next.data(), next.size());
        b.add_edge(v, dst, 0.0, &rate, 1);
      }
    }
  }
  return b;
}

}  // namespace phasic
