// Density entry points: which sweep serves a call (discrete stepping, piecewise or
// single-sweep uniformization), the plain pdf/pmf/cdf, and the scaled series behind
// the derivatives (pdf_jac) and log-densities (log_pdf, phasic_log_pmf).
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "density_runs.hpp"
#include "kernels.hpp"
#include "lumping.hpp"
#include "sweeps.hpp"
#include "threads.hpp"

namespace phasic {
namespace kernel {

template <class T>
void scaled_sweep(const Structure& s, const Workspace<T>& ws, const double* times,
                  int64_t n_times, Scaled<T>* out) {
  if (s.discrete)
    discrete_scaled(s, ws, times, n_times, out);
  else if (!piecewise_scaled(s, ws, times, n_times, /*strict=*/true, out))
    uniformized(s, ws, times, n_times, out);
}
#define PHASIC_INSTANTIATE(T) \
  template void scaled_sweep<T>(const Structure&, const Workspace<T>&, const double*, int64_t, \
                                Scaled<T>*);
PHASIC_EACH_SCALAR(PHASIC_INSTANTIATE)
#undef PHASIC_INSTANTIATE

void plain_sweep(const Structure& s, Workspace<double>& ws, const double* times,
                 int64_t n_times, double* pdf, double* cdf) {
  if (s.discrete) {
    discrete_distribution(s, ws, times, n_times, pdf, cdf);
  } else if (cdf != nullptr || pdf == nullptr) {
    continuous_distribution(s, ws, times, n_times, pdf, cdf);
  } else if (!piecewise_pdf(s, ws, times, n_times, pdf)) {
    // The density alone: the recorded sweep sums each time over its window or an
    // anchor (time_windows.hpp, time_anchors.hpp) instead of adding every step's term
    // to every time (10,000 times on 41 states: 42 ms that way). A graph big enough
    // for a team of threads, with few times, keeps the per-step sums: their sweep runs
    // on the team, the recorded one on one thread.
    const double work = static_cast<double>(s.layout.in_src.size()) + s.n;
    if (n_times <= 64 && work >= kMinSweepWork) {
      continuous_distribution(s, ws, times, n_times, pdf, nullptr);
      return;
    }
    std::vector<Scaled<double>> o(static_cast<size_t>(n_times));
    uniformized(s, ws, times, n_times, o.data());
    for (int64_t i = 0; i < n_times; ++i) pdf[i] = unscale(o[i].ls, o[i].acc);
  }
}

namespace {

// The structure a density runs on (lumping.hpp), after theta's checks on the graph
// itself: a negative edge could hide in a lumped sum, and messages name its vertices.
// Its distinct rate forms decide; only where they fail does edge_weights go over every
// edge of the graph, to word the error.
const Structure& checked_structure(const Structure& s, const double* theta, int64_t plen) {
  const Structure& d = density_structure(s);
  if (&d != &s && !rates_ok(*s.rate_forms, s.P, s.discrete, theta, plen))
    edge_weights(s, theta, plen, workspace<double>());
  return d;
}

// Runs d's checks `f`; where they fail on a lumped d, the graph's own checks word the
// error (a block's rate out can be 0 where its vertices still move inside it), else d's.
template <class F>
void own_words(const Structure& s, const Structure& d, const double* theta, int64_t plen,
               F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
    if (&d != &s) {
      Workspace<double>& wd = workspace<double>();
      edge_weights(s, theta, plen, wd);
      check_closed_classes_at(s, theta, plen, wd);
    }
    throw;
  }
}

// Checks theta and times, then the scaled series of every time (derivatives for
// directions dir0.. when T is a Dual).
template <class T>
void scaled_distribution(const Structure& s, const double* theta, int64_t plen,
                         const double* times, int64_t n_times, int64_t dir0,
                         std::vector<Scaled<T>>& out) {
  const Structure& d = checked_structure(s, theta, plen);
  Workspace<T>& ws = workspace<T>();
  own_words(s, d, theta, plen, [&] { edge_weights(d, theta, plen, ws, dir0); });
  check_times(d, times, n_times);
  out.assign(static_cast<size_t>(n_times), Scaled<T>{});
  if (n_times == 0) return;
  // The elimination pivots detect closed classes (as in compute_distribution).
  own_words(s, d, theta, plen, [&] { check_closed_classes_at(d, theta, plen, ws); });
  scaled_sweep(d, ws, times, n_times, out.data());
}

// scaled_distribution as the fill of scaled_runs (density_runs.hpp).
auto series_of(const Structure& s, const double* theta, int64_t plen, const double* times,
               int64_t n_times) {
  return [&s, theta, plen, times, n_times](auto tag, int64_t d0, auto& out) {
    scaled_distribution<decltype(tag)>(s, theta, plen, times, n_times, d0, out);
  };
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void compute_pmf_jac(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* pmf, double* jac) {
  emit_pmf_jac(theta_len, n_times, s.P == theta_len,
               series_of(s, theta, theta_len, times, n_times), pmf, jac);
}

void compute_log_pmf(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* logf, double* dlogf) {
  emit_log_pmf(theta_len, n_times, dlogf != nullptr && s.P == theta_len,
               series_of(s, theta, theta_len, times, n_times), logf, dlogf);
}

void compute_loglik(const Structure& s, const double* theta, int64_t theta_len,
                    const double* times, int64_t n_times, double* value, double* grad) {
  emit_loglik(theta_len, grad != nullptr && s.P == theta_len,
              series_of(s, theta, theta_len, times, n_times), value, grad);
}

void compute_distribution(const Structure& s, const double* theta, int64_t theta_len,
                          const double* times, int64_t n_times, double* pdf, double* cdf) {
  const Structure& d = checked_structure(s, theta, theta_len);
  Workspace<double>& ws = workspace<double>();
  own_words(s, d, theta, theta_len, [&] { edge_weights(d, theta, theta_len, ws); });
  check_times(d, times, n_times);
  if (n_times == 0) return;
  // Cheap structural sanity: the elimination pivots also detect closed classes.
  own_words(s, d, theta, theta_len, [&] { check_closed_classes_at(d, theta, theta_len, ws); });
  plain_sweep(d, ws, times, n_times, pdf, cdf);
}

}  // namespace phasic
