// Covariance of reward-weighted times: for R reward vectors r_i (one entry per vertex),
// the R x R matrix Cov(Y_i, Y_j) with Y_i = integral of r_i(X_t) dt (continuous) or
// sum over steps of r_i(X_k) (discrete), from one factorization of I - P.
//
// With U = (-S)^-1 (continuous) or (I - P)^-1 (discrete) and u_i = U r_i:
//   E[Y_i Y_j] = alpha U (r_i o u_j) + alpha U (r_j o u_i)          (continuous)
//   E[Y_i Y_j] = alpha U (r_i o u_j) + alpha U (r_j o u_i) - alpha U (r_i o r_j)  (discrete;
//                the visit counted on both sides of the split k <= l, k >= l once too many)
// The row vector g = alpha U is one transposed solve, each u_i one solve, and every
// entry a dot product with g. alpha is normalized, so a defect (start mass on an
// absorbing vertex) contributes Y = 0 to every moment.
#include <cmath>
#include <string>
#include <vector>

#include "elimination.hpp"
#include "kernels.hpp"
#include "per_theta.hpp"

namespace phasic {
namespace kernel {
namespace {

// Each of the R rows of V rewards finite and >= 0.
void check_reward_rows(const Structure& s, const double* rewards, int64_t R, int64_t V) {
  if (R < 1) bad("rewards needs at least one row (reward vector), got 0");
  if (V != s.V)
    bad("rewards has " + std::to_string(V) + " entries per row but the graph has " +
        std::to_string(s.V) + " vertices (one reward per vertex)");
  for (int64_t i = 0; i < R; ++i)
    for (int64_t v = 0; v < V; ++v) {
      const double x = rewards[i * V + v];
      if (!(x >= 0.0) || !std::isfinite(x))
        bad("rewards[" + std::to_string(i) + ", " + std::to_string(v) + "] is " + num(x) +
            "; rewards must be finite and >= 0");
    }
}

// u = U r over the transient vertices (r per transient vertex), after factor_transient:
// the expected reward accumulated until absorption from each transient vertex.
template <class T>
void expected_from_each(const Structure& s, const Workspace<T>& ws, const double* r, T* u) {
  for (int32_t j = 0; j < s.n; ++j) u[j] = s.discrete ? T(r[j]) : T(r[j]) / ws.lam[j];
  lu_solve(s.plan, ws.lvals.data(), ws.uvals.data(), ws.dinv.data(), u);
}

// out (R x R, row-major) after edge_weights; rewards checked.
template <class T>
void covariance_impl(const Structure& s, Workspace<T>& ws, const double* rewards, int64_t R,
                     T* out) {
  const int32_t n = s.n;
  const int64_t V = s.V;
  if (n == 0) {  // no transient vertex: every Y is 0
    for (int64_t k = 0; k < R * R; ++k) out[k] = 0.0;
    return;
  }
  factor_transient(s, ws);
  // Rewards per transient vertex, row by row.
  std::vector<double> r(static_cast<size_t>(R * n));
  for (int64_t i = 0; i < R; ++i)
    for (int32_t j = 0; j < n; ++j) r[i * n + j] = rewards[i * V + s.tvert[j]];
  // g = alpha U: (I - P)^T z = alpha, then g = z / lambda (continuous: U = (I - P)^-1
  // diag(1 / lambda), the embedded chain and the mean holding times).
  std::vector<T> g(ws.alpha.begin(), ws.alpha.end());
  lu_solve_transposed(s.plan, ws.lvals.data(), ws.uvals.data(), ws.dinv.data(), g.data());
  if (!s.discrete)
    for (int32_t j = 0; j < n; ++j) g[j] = g[j] / ws.lam[j];
  // u_i = U r_i and the means E[Y_i] = g . r_i.
  std::vector<T> u(static_cast<size_t>(R * n)), mean(static_cast<size_t>(R), T(0.0));
  for (int64_t i = 0; i < R; ++i) {
    const double* ri = r.data() + i * n;
    for (int32_t j = 0; j < n; ++j) fma_into(mean[i], g[j], ri[j]);
    expected_from_each(s, ws, ri, u.data() + i * n);
  }
  for (int64_t i = 0; i < R; ++i) {
    const double* ri = r.data() + i * n;
    const T* ui = u.data() + i * n;
    for (int64_t k = i; k < R; ++k) {
      const double* rk = r.data() + k * n;
      const T* uk = u.data() + k * n;
      T acc = 0.0;
      for (int32_t j = 0; j < n; ++j) {
        T both = ri[j] * uk[j];
        fma_into(both, ui[j], rk[j]);
        if (s.discrete) both = both - T(ri[j] * rk[j]);
        acc += g[j] * both;
      }
      const T c = acc - mean[i] * mean[k];
      out[i * R + k] = c;
      out[k * R + i] = c;
    }
  }
}

// An entry (or a derivative of one) that overflows is an error, as for the moments.
void check_finite(const double* out, const double* jac, int64_t R, int64_t P) {
  const int64_t k = first_not_finite(out, jac, R * R, P);
  if (k >= 0)
    bad("covariance entry (" + std::to_string(k / R) + ", " + std::to_string(k % R) +
        ") overflows a double (its value is " + num(out[k]) +
        (jac != nullptr ? " or a derivative is not finite" : "") +
        "); rescale the rewards or time (theta)");
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void compute_covariance(const Structure& s, const double* theta, int64_t theta_len,
                        const double* rewards, int64_t nr_rewards, int64_t rewards_len,
                        double* out) {
  check_reward_rows(s, rewards, nr_rewards, rewards_len);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  covariance_impl(s, ws, rewards, nr_rewards, out);
  check_finite(out, nullptr, nr_rewards, 0);
}

void compute_expected_rewards(const Structure& s, const double* theta, int64_t theta_len,
                              const double* rewards, int64_t rewards_len, double* out) {
  std::vector<double> ones;
  if (rewards == nullptr) {
    ones.assign(static_cast<size_t>(s.V), 1.0);
    rewards = ones.data();
    rewards_len = s.V;
  }
  check_reward_rows(s, rewards, 1, rewards_len);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  for (int64_t v = 0; v < s.V; ++v) out[v] = 0.0;
  if (s.n == 0) return;
  factor_transient(s, ws);
  std::vector<double> r(static_cast<size_t>(s.n)), u(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) r[j] = rewards[s.tvert[j]];
  expected_from_each(s, ws, r.data(), u.data());
  double start = 0.0;  // the starting vertex takes no time: alpha . u (a defect adds 0)
  for (int32_t j = 0; j < s.n; ++j) {
    out[s.tvert[j]] = u[j];
    start += ws.alpha[j] * u[j];
  }
  out[0] = start;
  for (int64_t v = 0; v < s.V; ++v)
    if (!std::isfinite(out[v]))
      bad("the expected reward from vertex " + std::to_string(v) +
          " overflows a double; rescale the rewards or time (theta)");
}

void compute_covariance_jac(const Structure& s, const double* theta, int64_t theta_len,
                            const double* rewards, int64_t nr_rewards, int64_t rewards_len,
                            double* out, double* jac) {
  const int64_t P = theta_len, R = nr_rewards;
  if (P == 0) {
    compute_covariance(s, theta, theta_len, rewards, nr_rewards, rewards_len, out);
    return;
  }
  check_reward_rows(s, rewards, nr_rewards, rewards_len);
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    constexpr int N = Tangents<T>::n;
    Workspace<T>& ws = workspace<T>();
    edge_weights(s, theta, theta_len, ws, d0);
    std::vector<T> res(static_cast<size_t>(R * R));
    covariance_impl(s, ws, rewards, R, res.data());
    for (int64_t k = 0; k < R * R; ++k) {
      out[k] = res[k].v;
      for (int j = 0; j < N && d0 + j < P; ++j) jac[k * P + d0 + j] = res[k].d[j];
    }
  });
  check_finite(out, jac, R, P);
}

namespace kernel {

void check_reward_matrix(const Structure& s, const double* rewards, int64_t R, int64_t V) {
  check_reward_rows(s, rewards, R, V);
}

}  // namespace kernel
}  // namespace phasic
