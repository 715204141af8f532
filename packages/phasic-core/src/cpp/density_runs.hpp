// What the density entry points share (internal to the kernels): the closed-class
// check before a sweep, the scaled series of every time run once per block of
// derivative directions, and the two ways of reading them (pmf with its Jacobian,
// log pmf with its gradient). densities.cpp serves a graph's own distribution with
// them, reward_density.cpp the distribution of a reward-weighted time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "per_theta.hpp"
#include "scaled_series.hpp"

namespace phasic {
namespace kernel {

// The elimination pivots of a cyclic graph detect closed classes for this theta
// (ws holds its edge weights; a Dual workspace is checked through its values).
template <class T>
void check_closed_classes_at(const Structure& s, const double* theta, int64_t plen,
                             Workspace<T>& ws) {
  if (s.n == 0 || s.acyclic) return;
  if constexpr (Tangents<T>::n == 0) {
    check_closed_classes(s, ws);
  } else {
    Workspace<double>& wd = workspace<double>();
    edge_weights(s, theta, plen, wd);
    check_closed_classes(s, wd);
  }
}

// The scaled series of every time: fill(tag, d0, out) writes them for T =
// decltype(tag), in doubles when `derivatives` is false or P is 0, else with dual
// numbers once per block of up to 8 directions. emit(o, d0, N) reads one run: o[i].acc
// carries the partials d0 .. d0 + N - 1 (N = 0 for doubles).
template <class Fill, class Emit>
void scaled_runs(int64_t P, bool derivatives, Fill&& fill, Emit&& emit) {
  if (!derivatives || P == 0) {
    std::vector<Scaled<double>> o;
    fill(double{}, int64_t{0}, o);
    emit(o, int64_t{0}, 0);
    return;
  }
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    std::vector<Scaled<T>> o;
    fill(tag, d0, o);
    emit(o, d0, static_cast<int>(std::min<int64_t>(Tangents<T>::n, P - d0)));
  });
}

// pmf[i] and jac[i * P + p] = d pmf[i] / d theta[p] from the series of `fill`
// (`derivatives` false: only a theta-length error can follow, from fill).
template <class Fill>
void emit_pmf_jac(int64_t P, int64_t n_times, bool derivatives, Fill&& fill, double* pmf,
                  double* jac) {
  scaled_runs(P, derivatives, fill, [&](const auto& o, int64_t d0, int N) {
    for (int64_t i = 0; i < n_times; ++i) {
      pmf[i] = unscale(o[i].ls, value(o[i].acc));
      for (int j = 0; j < N; ++j) jac[i * P + d0 + j] = unscale(o[i].ls, partial(o[i].acc, j));
    }
  });
}

// logf[i] = log pmf[i] and, when `derivatives`, dlogf[i * P + p] = d log pmf[i] / d theta[p].
template <class Fill>
void emit_log_pmf(int64_t P, int64_t n_times, bool derivatives, Fill&& fill, double* logf,
                  double* dlogf) {
  scaled_runs(P, derivatives, fill, [&](const auto& o, int64_t d0, int N) {
    for (int64_t i = 0; i < n_times; ++i) {
      logf[i] = log_value(o[i]);
      const double a = value(o[i].acc);
      // Where the density is exactly 0 (log = -inf) the derivative is 0.
      for (int j = 0; j < N; ++j) dlogf[i * P + d0 + j] = a > 0.0 ? partial(o[i].acc, j) / a : 0.0;
    }
  });
}

// The sum over every time of log pmf and, when `derivatives`, grad[p] = its
// derivative in theta[p] (a time where pmf is exactly 0 makes the sum -inf and adds 0
// to the gradient, as the per-time logs do). The logs are taken of products
// (sum_of_logs): one log per call, not one per time.
template <class Fill>
void emit_loglik(int64_t P, bool derivatives, Fill&& fill, double* value, double* grad) {
  scaled_runs(P, derivatives, fill, [&](const auto& o, int64_t d0, int N) {
    const double v = sum_of_logs(o, N > 0 ? grad + d0 : nullptr, N);
    if (d0 == 0) *value = v;
  });
}

}  // namespace kernel
}  // namespace phasic
