// One uniformization (or discrete) step over all vertices and the helpers around it,
// shared by the state sweep (state_at_time.cpp) and the layered sweeps of propagate
// (propagate.cpp). Internal to the kernels.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "per_theta.hpp"

namespace phasic {
namespace kernel {

// y = x P over all vertices: transient j keeps diag[j] of its mass and sends
// w / scale along each edge (scale = lambda for uniformization, 1 for discrete
// graphs); absorbing vertices keep theirs. x and y have s.V entries.
template <class T>
inline void step_vector(const Structure& s, const Workspace<T>& ws, const std::vector<T>& diag,
                        double scale, const std::vector<char>& absorbing, const T* x, T* y) {
  const double inv = 1.0 / scale;
  for (int64_t v = 0; v < s.V; ++v) y[v] = absorbing[v] ? x[v] : T(0.0);
  for (int32_t j = 0; j < s.n; ++j) {
    const T xj = x[s.tvert[j]];
    if (is_zero(xj)) continue;
    y[s.tvert[j]] += xj * diag[j];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
      y[s.tvert[s.tt_dst[k]]] += xj * (ws.w[s.off_tt + k] * inv);
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
      y[s.eto[s.ta_edge[k]]] += xj * (ws.w[s.off_ta + k] * inv);
  }
}

// Mass of x on transient vertices (values only: it bounds truncation errors).
template <class T>
inline double transient_mass(const Structure& s, const T* x) {
  double m = 0.0;
  for (int32_t j = 0; j < s.n; ++j) m += std::fabs(value(x[s.tvert[j]]));
  return m;
}

inline std::vector<char> absorbing_flags(const Structure& s) {
  std::vector<char> a(static_cast<size_t>(s.V), 0);
  for (int64_t v = 1; v < s.V; ++v) a[v] = s.tidx[v] < 0;
  return a;
}

// The start vector for the graph's own initial distribution: alpha on transient
// vertices, each start edge into an absorbing vertex (a defect) its share there.
template <class T>
inline std::vector<T> start_vector(const Structure& s, const Workspace<T>& ws) {
  std::vector<T> x(static_cast<size_t>(s.V), T(0.0));
  for (int32_t j = 0; j < s.n; ++j) x[s.tvert[j]] = ws.alpha[j];
  const int64_t n_start = static_cast<int64_t>(s.alpha_edge.size());
  T total = 0.0;
  for (int64_t k = 0; k < n_start; ++k) total += ws.w[k];
  const T inv = reciprocal(total);
  for (int64_t k = 0; k < n_start; ++k)
    if (s.alpha_t[k] < 0) x[s.eto[s.alpha_edge[k]]] += ws.w[k] * inv;
  return x;
}

}  // namespace kernel
}  // namespace phasic
