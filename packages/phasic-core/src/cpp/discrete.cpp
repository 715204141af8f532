// Discrete graphs: exact forward stepping v_k = alpha P^k, pmf(k) = v_(k-1) . s, in
// plain doubles (pmf, cdf) and scaled with derivatives (pmf_jac, log pmf).
#include <algorithm>
#include <numeric>
#include <vector>

#include "sweeps.hpp"

namespace phasic {
namespace kernel {

// Discrete: exact forward stepping v_k = alpha P^k, pmf(k) = v_{k-1} . s.
void discrete_distribution(const Structure& s, Workspace<double>& ws, const double* times,
                           int64_t n_times, double* pmf, double* cdf) {
  const int32_t n = s.n;
  const double defect = std::max(0.0, 1.0 - alpha_mass(ws));
  std::vector<int64_t> idx(static_cast<size_t>(n_times));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return times[a] < times[b]; });
  std::vector<double> v(ws.alpha), next(static_cast<size_t>(n));
  double cum = defect;  // cdf at the current step
  int64_t step = 0;     // v holds alpha P^step
  double cur_pmf = defect;
  for (int64_t ii : idx) {
    const int64_t target = static_cast<int64_t>(times[ii]);
    while (step < target) {
      // pmf(step + 1) = v_step . s
      double p = 0.0;
      for (int32_t j = 0; j < n; ++j) p += v[j] * ws.absv[j];
      cur_pmf = p;
      cum += p;
      std::fill(next.begin(), next.end(), 0.0);
      for (int32_t j = 0; j < n; ++j) {
        const double vj = v[j];
        if (vj == 0.0) continue;
        next[j] += vj * std::max(0.0, 1.0 - ws.lam[j]);
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          next[s.tt_dst[e]] += vj * ws.w[s.off_tt + e];
      }
      v.swap(next);
      ++step;
    }
    if (pmf) pmf[ii] = cur_pmf;
    if (cdf) cdf[ii] = std::min(1.0, cum);
  }
}

// Discrete: exact forward stepping, v_k = alpha P^k (rescaled), pmf(k) = v_{k-1} . s.
template <class T>
void discrete_scaled(const Structure& s, const Workspace<T>& ws, const double* times,
                     int64_t n_times, Scaled<T>* out) {
  const int32_t n = s.n;
  std::vector<int64_t> idx(static_cast<size_t>(n_times));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return times[a] < times[b]; });
  std::vector<T> v(ws.alpha), next(static_cast<size_t>(n)), diag(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) diag[j] = clamp_value(1.0 - ws.lam[j]);
  double log_scale = 0.0, prev_mag = 0.0;
  for (const T& a : v) prev_mag += magnitude(a);
  Scaled<T> cur;  // pmf at the current step; step 0: the defect
  cur.ls = 0.0;
  cur.acc = clamp_value(1.0 - alpha_mass(ws));
  int64_t step = 0;
  for (int64_t ii : idx) {
    const int64_t target = static_cast<int64_t>(times[ii]);
    while (step < target) {
      T p = 0.0;
      std::fill(next.begin(), next.end(), T(0.0));
      for (int32_t j = 0; j < n; ++j) {
        const T& vj = v[j];
        if (is_zero(vj)) continue;
        fma_into(p, vj, ws.absv[j]);
        fma_into(next[j], vj, diag[j]);
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          fma_into(next[s.tt_dst[e]], vj, ws.w[s.off_tt + e]);
      }
      cur.ls = log_scale;
      cur.acc = p;
      VecSize size =
          flush_and_measure(next.data(), next.data() + next.size(), kFlushRel * prev_mag);
      rescale(next, size, log_scale);
      prev_mag = size.mag;
      v.swap(next);
      ++step;
    }
    out[ii] = cur;
  }
}

#define PHASIC_INSTANTIATE(T)                                                                 \
  template void discrete_scaled<T>(const Structure&, const Workspace<T>&, const double*, int64_t, \
                                   Scaled<T>*);
PHASIC_EACH_SCALAR(PHASIC_INSTANTIATE)
#undef PHASIC_INSTANTIATE

}  // namespace kernel
}  // namespace phasic
