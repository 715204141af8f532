// The chain's state at given times: P(X_t = v) for every vertex and the expected time
// spent in each vertex up to t. Continuous graphs by uniformization at a fixed rate,
// discrete graphs by exact stepping. The sweep starts from any vector over the
// vertices, so a chain of sweeps (one per epoch) can hand its end state on.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "poisson.hpp"
#include "state_step.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

// Discrete: x_k = x_0 P^k exactly; prob = x_t, acc = sum_{k<t} x_k (transient only).
template <class T>
void discrete_states(const Structure& s, const Workspace<T>& ws, const T* start,
                     const double* times, int64_t n_times, T* prob, T* acc) {
  const std::vector<char> absorbing = absorbing_flags(s);
  std::vector<T> diag(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) diag[j] = clamp_value(T(1.0) - ws.lam[j]);
  std::vector<T> x(start, start + s.V), y(static_cast<size_t>(s.V)), sum(static_cast<size_t>(s.V));
  double t_max = 0.0;
  for (int64_t i = 0; i < n_times; ++i) t_max = std::max(t_max, times[i]);
  if (t_max > kMaxSteps)
    bad("time " + num(t_max) + " needs more than the 2e6 steps allowed; ask for smaller times");
  // Times in increasing order, so one walk serves them all.
  std::vector<int64_t> order(static_cast<size_t>(n_times));
  for (int64_t i = 0; i < n_times; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return times[a] < times[b]; });
  int64_t step = 0;
  for (int64_t i : order) {
    const auto target = static_cast<int64_t>(times[i]);
    for (; step < target; ++step) {
      if (step % 4096 == 0) poll_interrupt();
      for (int32_t j = 0; j < s.n; ++j) sum[s.tvert[j]] += x[s.tvert[j]];
      step_vector(s, ws, diag, 1.0, absorbing, x.data(), y.data());
      std::swap(x, y);
    }
    for (int64_t v = 0; v < s.V; ++v) {
      if (prob) prob[i * s.V + v] = x[v];
      if (acc) acc[i * s.V + v] = sum[v];
    }
  }
}

// Continuous: with a fixed lambda >= every exit rate, P = I + S / lambda and
// p(t) = sum_n Pois(n; lambda t) x_0 P^n. The accumulated time is
// int_0^t p = (1 / lambda) sum_n P(N > n) x_0 P^n, N ~ Pois(lambda t). lambda is a
// constant, so derivatives flow through P alone and stay exact.
template <class T>
void continuous_states(const Structure& s, const Workspace<T>& ws, const T* start,
                       const double* times, int64_t n_times, T* prob, T* acc) {
  const std::vector<char> absorbing = absorbing_flags(s);
  double lambda = 0.0;
  for (int32_t j = 0; j < s.n; ++j) lambda = std::max(lambda, value(ws.lam[j]));
  if (lambda == 0.0) lambda = 1.0;  // no transient vertex: nothing moves
  std::vector<T> diag(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) diag[j] = clamp_value(T(1.0) - ws.lam[j] * (1.0 / lambda));
  const int64_t V = s.V;
  std::vector<T> x(start, start + V), y(static_cast<size_t>(V));
  std::vector<T> p(static_cast<size_t>(n_times * V), T(0.0)), a(static_cast<size_t>(n_times * V), T(0.0));
  std::vector<double> mu(static_cast<size_t>(n_times)), cum(static_cast<size_t>(n_times), 0.0);
  std::vector<char> done(static_cast<size_t>(n_times), 0);
  double mu_max = 0.0;
  for (int64_t i = 0; i < n_times; ++i) mu_max = std::max(mu_max, mu[i] = lambda * times[i]);
  int64_t remaining = n_times;
  for (int64_t n = 0; remaining > 0; ++n) {
    if (static_cast<double>(n) > kMaxSteps) too_stiff(lambda, mu_max / lambda);
    if (n % 4096 == 0) poll_interrupt();
    const double mass = transient_mass(s, x.data());
    const LogPoisson log_pois(static_cast<double>(n));
    for (int64_t i = 0; i < n_times; ++i) {
      if (done[i]) continue;
      const double wgt = mu[i] == 0.0 ? (n == 0 ? 1.0 : 0.0) : std::exp(log_pois(mu[i]));
      cum[i] += wgt;
      const double above = std::max(0.0, 1.0 - cum[i]);  // P(N > n)
      T* pi = p.data() + i * V;
      T* ai = a.data() + i * V;
      for (int32_t j = 0; j < s.n; ++j) {
        const int32_t v = s.tvert[j];
        pi[v] += x[v] * wgt;
        ai[v] += x[v] * (above / lambda);
      }
      for (int64_t v = 1; v < V; ++v)
        if (absorbing[v]) pi[v] += x[v] * wgt;
      // Rigorous bound on P(N > n) once n + 2 > mu: the Poisson terms beyond n shrink
      // by at least mu / (n + 2) each, and sum_{m > n} P(N > m) by the same ratio.
      double tail = 1.0;
      const double ratio = mu[i] / (static_cast<double>(n) + 2.0);
      if (mu[i] == 0.0) tail = 0.0;
      else if (ratio < 1.0) tail = wgt * (mu[i] / (n + 1.0)) / (1.0 - ratio);
      const double acc_tail = ratio < 1.0 ? tail / (1.0 - ratio) : 1e300;
      // Every later vector keeps its absorbed mass, which only grows: adding it for
      // all later terms now leaves an error below tail x transient mass.
      const bool ok = mass == 0.0 || (tail * mass <= 1e-17 && acc_tail * mass <= 1e-17 * mu[i]);
      if (ok) {
        for (int64_t v = 1; v < V; ++v)
          if (absorbing[v]) pi[v] += x[v] * above;
        done[i] = 1;
        --remaining;
      }
    }
    step_vector(s, ws, diag, lambda, absorbing, x.data(), y.data());
    std::swap(x, y);
  }
  for (int64_t k = 0; k < n_times * V; ++k) {
    if (prob) prob[k] = p[k];
    if (acc) acc[k] = a[k];
  }
}

}  // namespace

template <class T>
void state_sweep(const Structure& s, const Workspace<T>& ws, const T* start,
                 const double* times, int64_t n_times, T* prob, T* acc) {
  if (s.discrete)
    discrete_states(s, ws, start, times, n_times, prob, acc);
  else
    continuous_states(s, ws, start, times, n_times, prob, acc);
}

#define PHASIC_STATE_SWEEP(T)                                                                \
  template void state_sweep<T>(const Structure&, const Workspace<T>&, const T*, const double*, \
                               int64_t, T*, T*);
PHASIC_EACH_SCALAR(PHASIC_STATE_SWEEP)
#undef PHASIC_STATE_SWEEP

}  // namespace kernel

void compute_state_at_time(const Structure& s, const double* theta, int64_t theta_len,
                           const double* times, int64_t n_times, double* prob, double* acc) {
  using namespace kernel;
  check_times(s, times, n_times);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  const std::vector<double> x = start_vector(s, ws);
  state_sweep(s, ws, x.data(), times, n_times, prob, acc);
}

void compute_state_at_time_jac(const Structure& s, const double* theta, int64_t theta_len,
                               const double* times, int64_t n_times, double* prob, double* acc,
                               double* prob_jac, double* acc_jac) {
  using namespace kernel;
  check_times(s, times, n_times);
  const int64_t N = n_times * s.V, P = theta_len;
  if (P == 0) {
    compute_state_at_time(s, theta, theta_len, times, n_times, prob, acc);
    return;
  }
  for_each_block(P, [&](auto zero, int64_t d0) {
    using T = decltype(zero);
    Workspace<T>& ws = workspace<T>();
    edge_weights(s, theta, theta_len, ws, d0);
    const std::vector<T> x = start_vector(s, ws);
    std::vector<T> p(static_cast<size_t>(N)), a(static_cast<size_t>(N));
    state_sweep(s, ws, x.data(), times, n_times, p.data(), a.data());
    const int64_t m = std::min<int64_t>(Tangents<T>::n, P - d0);
    for (int64_t k = 0; k < N; ++k) {
      prob[k] = p[k].v;
      acc[k] = a[k].v;
      for (int64_t q = 0; q < m; ++q) {
        prob_jac[k * P + d0 + q] = p[k].d[q];
        acc_jac[k * P + d0 + q] = a[k].d[q];
      }
    }
  });
}

}  // namespace phasic
