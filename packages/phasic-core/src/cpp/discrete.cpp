// Discrete graphs: exact forward stepping v_k = alpha P^k, pmf(k) = v_(k-1) . s, in
// plain doubles (pmf, cdf) and scaled with derivatives (pmf_jac, log pmf). Stepping
// stops once the vector is empty (every later pmf is 0), and refuses to run past
// kMaxSteps steps while probability remains.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

// Entries of the plain vector below this are dropped: what they could add to any
// later pmf or cdf is below 1e-300 (times the number of states) in absolute terms,
// and without it a slowly draining chain would crawl through subnormal numbers for
// ~1,000 / -log10(rate) more steps before the vector is exactly empty.
constexpr double kDiscreteFlush = 1e-300;

// Steps between two polls for Ctrl-C (eager calls).
constexpr int64_t kPollSteps = 1024;

[[noreturn]] void too_many_steps(int64_t target, double log10_mass) {
  bad("a discrete pmf at time " + std::to_string(target) + " needs " + std::to_string(target) +
      " steps, more than the 2e6 allowed, and about 10^" + num(std::round(log10_mass)) +
      " of the probability is still in transient states after 2e6 steps; ask for times below "
      "2e6 (the pmf beyond is at most that probability), or make the chain absorb faster");
}

// Sorted order of the requested times.
std::vector<int64_t> sorted_order(const double* times, int64_t n_times) {
  std::vector<int64_t> idx(static_cast<size_t>(n_times));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return times[a] < times[b]; });
  return idx;
}

// Before step `step` of a walk to `target`: refuses past the cap and polls for Ctrl-C.
void before_step(int64_t step, int64_t target, double log10_mass) {
  if (static_cast<double>(step) >= kMaxSteps) too_many_steps(target, log10_mass);
  if (step % kPollSteps == 0) poll_interrupt();
}

}  // namespace

// Discrete: exact forward stepping v_k = alpha P^k, pmf(k) = v_{k-1} . s.
void discrete_distribution(const Structure& s, Workspace<double>& ws, const double* times,
                           int64_t n_times, double* pmf, double* cdf) {
  const int32_t n = s.n;
  const double defect = ws.defect;
  std::vector<double> v(ws.alpha), next(static_cast<size_t>(n));
  double cum = defect;  // cdf at the current step
  int64_t step = 0;     // v holds alpha P^step
  double cur_pmf = defect;
  double mass = 1.0;    // of v, once a step has run (0: empty, every later pmf is 0)
  for (int64_t ii : sorted_order(times, n_times)) {
    const int64_t target = static_cast<int64_t>(times[ii]);
    while (step < target) {
      if (mass == 0.0) {
        cur_pmf = 0.0;
        step = target;
        break;
      }
      before_step(step, target, std::log10(mass));
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
      mass = 0.0;
      for (double& x : next) {
        if (x < kDiscreteFlush) x = 0.0;
        mass += x;
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
  std::vector<T> v(ws.alpha), next(static_cast<size_t>(n)), diag(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) diag[j] = clamp_value(1.0 - ws.lam[j]);
  double log_scale = 0.0, prev_mag = 0.0, prev_mass = 1.0;
  for (const T& a : v) prev_mag += magnitude(a);
  Scaled<T> cur;  // pmf at the current step; step 0: the defect
  cur.ls = 0.0;
  cur.acc = ws.defect;
  int64_t step = 0;
  for (int64_t ii : sorted_order(times, n_times)) {
    const int64_t target = static_cast<int64_t>(times[ii]);
    while (step < target) {
      if (prev_mag == 0.0) {  // empty: every later pmf is exactly 0
        cur.ls = log_scale;
        cur.acc = T(0.0);
        step = target;
        break;
      }
      before_step(step, target, (log_scale + std::log(prev_mass)) / std::log(10.0));
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
      prev_mass = size.mass;
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
