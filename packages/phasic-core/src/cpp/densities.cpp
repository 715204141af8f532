// Density entry points: which sweep serves a call (discrete stepping, piecewise or
// single-sweep uniformization), the plain pdf/pmf/cdf, and the scaled series behind
// the derivatives (pdf_jac) and log-densities (log_pdf, phasic_log_pmf).
#include <algorithm>
#include <vector>

#include "kernels.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

// Checks theta and times, then the scaled series of every time (derivatives for
// directions dir0.. when T is a Dual).
template <class T>
void scaled_distribution(const Structure& s, const double* theta, int64_t plen,
                         const double* times, int64_t n_times, int64_t dir0,
                         std::vector<Scaled<T>>& out) {
  Workspace<T>& ws = workspace<T>();
  edge_weights(s, theta, plen, ws, dir0);
  check_times(s, times, n_times);
  out.assign(static_cast<size_t>(n_times), Scaled<T>{});
  if (n_times == 0) return;
  // The elimination pivots detect closed classes (as in compute_distribution).
  if (s.n > 0 && !s.acyclic) {
    if constexpr (Tangents<T>::n == 0) {
      check_closed_classes(s, ws);
    } else {
      Workspace<double>& wd = workspace<double>();
      edge_weights(s, theta, plen, wd);
      check_closed_classes(s, wd);
    }
  }
  if (s.discrete)
    discrete_scaled(s, ws, times, n_times, out.data());
  else if (!piecewise_scaled(s, ws, times, n_times, /*strict=*/true, out.data()))
    uniformized(s, ws, times, n_times, out.data());
}

// The scaled series of every time: in doubles when `derivatives` is false or there
// is nothing to differentiate (a theta length error is then reported too), else with
// dual numbers, once per block of up to 8 directions. emit(o, d0, N) reads one run:
// o[i].acc carries the partials d0 .. d0 + N - 1 (N = 0 for doubles).
template <class Emit>
void scaled_runs(const Structure& s, const double* theta, int64_t theta_len,
                 const double* times, int64_t n_times, bool derivatives, Emit&& emit) {
  const int64_t P = theta_len;
  if (!derivatives || P == 0 || s.P != P) {
    std::vector<Scaled<double>> o;
    scaled_distribution<double>(s, theta, theta_len, times, n_times, 0, o);
    emit(o, int64_t{0}, 0);
    return;
  }
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    std::vector<Scaled<T>> o;
    scaled_distribution<T>(s, theta, P, times, n_times, d0, o);
    emit(o, d0, static_cast<int>(std::min<int64_t>(Tangents<T>::n, P - d0)));
  });
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void compute_pmf_jac(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* pmf, double* jac) {
  const int64_t P = theta_len;
  scaled_runs(s, theta, P, times, n_times, true, [&](const auto& o, int64_t d0, int N) {
    for (int64_t i = 0; i < n_times; ++i) {
      pmf[i] = unscale(o[i].ls, value(o[i].acc));
      for (int j = 0; j < N; ++j) jac[i * P + d0 + j] = unscale(o[i].ls, partial(o[i].acc, j));
    }
  });
}

void compute_log_pmf(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* logf, double* dlogf) {
  const int64_t P = theta_len;
  scaled_runs(s, theta, P, times, n_times, dlogf != nullptr,
              [&](const auto& o, int64_t d0, int N) {
                for (int64_t i = 0; i < n_times; ++i) {
                  logf[i] = log_value(o[i]);
                  const double a = value(o[i].acc);
                  // Where the density is exactly 0 (log = -inf) the derivative is 0.
                  for (int j = 0; j < N; ++j)
                    dlogf[i * P + d0 + j] = a > 0.0 ? partial(o[i].acc, j) / a : 0.0;
                }
              });
}

void compute_distribution(const Structure& s, const double* theta, int64_t theta_len,
                          const double* times, int64_t n_times, double* pdf, double* cdf) {
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  check_times(s, times, n_times);
  if (n_times == 0) return;
  // Cheap structural sanity: the elimination pivots also detect closed classes.
  if (s.n > 0 && !s.acyclic) check_closed_classes(s, ws);
  if (s.discrete)
    discrete_distribution(s, ws, times, n_times, pdf, cdf);
  else if (cdf != nullptr || pdf == nullptr || !piecewise_pdf(s, ws, times, n_times, pdf))
    continuous_distribution(s, ws, times, n_times, pdf, cdf);
}

}  // namespace phasic
