// The distribution of the number of mutations K when mutations fall at rate mu per unit
// of reward: K | Y ~ Poisson(mu Y), Y the reward accumulated until absorption. P(K = k)
// for k = 0..kmax, exactly, as a discrete phase-type construction on the same
// elimination plan as the moments (no integral is truncated).
//
// Continuous graphs. With S the sub-intensity, s the exit rates and R = diag(r),
// P(K = k) = alpha (A^-1 mu R)^k A^-1 s with A = -S + mu R = diag(d) (I - P'),
// d = lambda + mu r: vertex j is left at rate d_j, to l with probability w_jl / d_j, and
// by absorption or a mutation with probability (a_j + mu r_j) / d_j. That chain's GTH
// pivots are sums of non-negative terms, so the factorization stays as stable as the
// moments'. Then f_0 = (I - P')^-1 (a / d), f_k = (I - P')^-1 ((mu r / d) o f_(k-1)) and
// P(K = k) = alpha . f_k.
//
// Discrete graphs: every visit of j adds Poisson(mu r_j) mutations. With
// e_j = exp(-mu r_j), p_j(i) the Poisson probabilities and g_m = a [m = 0] + P f_m
// (P with its remainder self-loops), f_k(j) = sum_i p_j(i) g_(k-i)(j); the i = 0 term
// holds f_k itself, so (I - diag(e) P) f_k = e o a [k = 0] + sum_(i>=1) p(i) o g_(k-i).
// I - diag(e) P is again GTH-shaped: edge probabilities e_j w_jl and exit
// (1 - e_j) + e_j a_j >= 0.
//
// Derivatives: theta as in every kernel, and mu as one more dual direction (index P).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "elimination.hpp"
#include "kernels.hpp"
#include "per_theta.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

// Poisson probabilities below this (value and derivatives) are dropped: every term
// they multiply is a probability <= 1, so what they could add is below 1e-300.
constexpr double kPoissonFlush = 1e-300;

// exp(-mu r) and 1 - exp(-mu r) (the latter without cancellation), with derivatives.
template <class T>
void no_mutation(const T& mu, double r, T& e, T& one_minus_e) {
  const double x = value(mu) * r;
  e = std::exp(-x);
  one_minus_e = -std::expm1(-x);
  if constexpr (Tangents<T>::n > 0)
    for (int k = 0; k < Tangents<T>::n; ++k) {
      e.d[k] = -r * e.v * mu.d[k];
      one_minus_e.d[k] = -e.d[k];
    }
}

// Per reward vector: the factored mutation chain (in ws) and its scalings per vertex.
template <class T>
struct MutationChain {
  std::vector<T> inv_d;   // continuous: 1 / (lambda + mu r)
  std::vector<T> e;       // discrete: exp(-mu r)
  std::vector<std::vector<T>> poisson;  // discrete: p_j(i), i = 1.. (flushed tail cut)
};

// Factors the chain of the header comment for rewards r (per transient vertex).
template <class T>
void factor_mutation(const Structure& s, Workspace<T>& ws, const T& mu, const double* r,
                     int64_t kmax, MutationChain<T>& c) {
  const int32_t n = s.n;
  ws.vals.resize(s.tt_dst.size());
  ws.aelim.resize(static_cast<size_t>(n));
  ws.dinv.resize(static_cast<size_t>(n));
  if (s.discrete) {
    c.e.resize(static_cast<size_t>(n));
    c.poisson.resize(static_cast<size_t>(n));
  } else {
    c.inv_d.resize(static_cast<size_t>(n));
  }
  for (int32_t j = 0; j < n; ++j) {
    if (s.discrete) {
      T e, one_minus_e;
      no_mutation(mu, r[j], e, one_minus_e);
      c.e[j] = e;
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) ws.vals[k] = e * ws.w[s.off_tt + k];
      ws.aelim[j] = one_minus_e + e * ws.absv[j];
      std::vector<T>& p = c.poisson[j];  // p[i - 1] = P(i mutations in one visit)
      p.clear();
      const T rate = mu * r[j];
      T term = e;
      for (int64_t i = 1; i <= kmax && value(rate) > 0.0; ++i) {
        term = term * rate * (1.0 / static_cast<double>(i));
        if (magnitude(term) < kPoissonFlush && static_cast<double>(i) > value(rate)) break;
        p.push_back(term);
      }
    } else {
      const T inv = reciprocal(ws.lam[j] + mu * r[j]);
      c.inv_d[j] = inv;
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) ws.vals[k] = ws.w[s.off_tt + k] * inv;
      ws.aelim[j] = (ws.absv[j] + mu * r[j]) * inv;
    }
  }
  factor_loaded(s, ws);
}

template <class T>
T dot(const std::vector<T>& a, const T* x) {
  T acc = 0.0;
  for (size_t j = 0; j < a.size(); ++j) fma_into(acc, a[j], x[j]);
  return acc;
}

// out[k] = P(K = k), k = 0..kmax, for rewards r per transient vertex, after
// edge_weights; ws.x and ws.y are scratch.
template <class T>
void mutation_pmf_row(const Structure& s, Workspace<T>& ws, const T& mu, const double* r,
                      int64_t kmax, T* out) {
  const int32_t n = s.n;
  thread_local MutationChain<T> c;
  factor_mutation(s, ws, mu, r, kmax, c);
  auto solve = [&](T* x) {
    lu_solve(s.plan, ws.lvals.data(), ws.uvals.data(), ws.dinv.data(), x);
  };
  ws.x.resize(static_cast<size_t>(n));
  T* f = ws.x.data();
  if (!s.discrete) {
    for (int32_t j = 0; j < n; ++j) f[j] = ws.absv[j] * c.inv_d[j];
    solve(f);
    out[0] = dot(ws.alpha, f);
    for (int64_t k = 1; k <= kmax; ++k) {
      for (int32_t j = 0; j < n; ++j) f[j] = f[j] * (mu * r[j] * c.inv_d[j]);
      solve(f);
      out[k] = dot(ws.alpha, f);
    }
    return;
  }
  // g[m * n + j] = g_m(j), kept for the convolution with the per-visit Poisson counts.
  std::vector<T> g(static_cast<size_t>(kmax + 1) * static_cast<size_t>(n));
  for (int64_t k = 0; k <= kmax; ++k) {
    for (int32_t j = 0; j < n; ++j) {
      T acc = k == 0 ? c.e[j] * ws.absv[j] : T(0.0);
      const std::vector<T>& p = c.poisson[j];
      const int64_t top = std::min<int64_t>(k, static_cast<int64_t>(p.size()));
      for (int64_t i = 1; i <= top; ++i)
        fma_into(acc, p[i - 1], g[static_cast<size_t>(k - i) * n + j]);
      f[j] = acc;
    }
    solve(f);
    out[k] = dot(ws.alpha, f);
    if (k == kmax) break;
    T* gk = g.data() + static_cast<size_t>(k) * n;
    for (int32_t j = 0; j < n; ++j) {
      T acc = clamp_value(1.0 - ws.lam[j]) * f[j];  // the remainder self-loop
      for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
        fma_into(acc, ws.w[s.off_tt + e], f[s.tt_dst[e]]);
      if (k == 0) acc += ws.absv[j];
      gk[j] = acc;
    }
    if (k % 64 == 0) poll_interrupt();
  }
}

// Checks theta-independent arguments: rewards rows, mu, kmax and the memory the
// discrete convolution would take.
void check_mutation_args(const Structure& s, double mu, const double* rewards, int64_t R,
                         int64_t V, int64_t kmax) {
  check_mutation_kmax(kmax);
  if (!std::isfinite(mu) || mu < 0.0)
    bad("mutation_rate is " + num(mu) + "; it must be finite and >= 0 (mutations per unit "
        "of reward)");
  check_reward_matrix(s, rewards, R, V);
  for (int64_t i = 0; i < R; ++i)
    for (int32_t j = 0; j < s.n; ++j) {  // the rewards the chain uses
      const double x = mu * rewards[i * V + s.tvert[j]];
      if (!(x <= 1e300))
        bad("mutation_rate x rewards[" + std::to_string(i) + ", " + std::to_string(s.tvert[j]) +
            "] = " + num(x) + " overflows; rescale the rewards or mutation_rate");
    }
  if (s.discrete && static_cast<double>(s.n) * static_cast<double>(kmax + 1) > 1e7)
    bad("kmax = " + std::to_string(kmax) + " on a discrete graph with " + std::to_string(s.n) +
        " transient vertices would keep " + num(static_cast<double>(s.n) * (kmax + 1)) +
        " values (transient vertices x (kmax + 1)), more than the 1e7 allowed; ask for a "
        "smaller kmax");
}

// out[0..kmax] for one reward row (s.V entries) after edge_weights, mu carrying its
// derivative direction.
template <class T>
void mutation_pmf_one(const Structure& s, Workspace<T>& ws, const T& mu, const double* rewards,
                      int64_t kmax, T* out) {
  const int32_t n = s.n;
  for (int64_t k = 0; k <= kmax; ++k) out[k] = 0.0;
  if (n == 0) {  // every start goes straight to absorption: K = 0
    out[0] = ws.defect;
    return;
  }
  std::vector<double> r(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) r[j] = rewards[s.tvert[j]];
  mutation_pmf_row(s, ws, mu, r.data(), kmax, out);
  out[0] += ws.defect;
}

// A closed class also has mutation exits when its rewards are positive, so the plain
// chain's pivots must find it, once per theta (acyclic continuous graphs have none:
// edge_weights checked every exit rate).
void check_closed(const Structure& s, const double* theta, int64_t theta_len) {
  if (s.n == 0 || (!s.discrete && s.acyclic)) return;
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  check_closed_classes(s, ws);
}

// A probability (or derivative) that is not finite is an error, as for the moments.
void check_finite(const double* out, const double* jac, int64_t count, int64_t D) {
  const int64_t q = first_not_finite(out, jac, count, D);
  if (q >= 0)
    bad("P(K = " + std::to_string(q) + ") (flattened index) is not finite (value " +
        num(out[q]) + "); rescale the rewards, mutation_rate or time (theta)");
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void check_mutation_kmax(int64_t kmax) {
  check_range("kmax", kmax, kMaxMutationCount,
              "the pmf is computed for every count 0..kmax, one solve each");
}

void compute_mutation_pmf(const Structure& s, const double* theta, int64_t theta_len,
                          double mutation_rate, const double* rewards, int64_t nr_rewards,
                          int64_t rewards_len, int64_t kmax, double* out) {
  check_mutation_args(s, mutation_rate, rewards, nr_rewards, rewards_len, kmax);
  check_closed(s, theta, theta_len);
  const int64_t V = rewards_len, K = kmax + 1;
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  for (int64_t i = 0; i < nr_rewards; ++i)
    mutation_pmf_one(s, ws, mutation_rate, rewards + i * V, kmax, out + i * K);
  check_finite(out, nullptr, nr_rewards * K, 0);
}

void compute_mutation_pmf_jac(const Structure& s, const double* theta, int64_t theta_len,
                              double mutation_rate, const double* rewards, int64_t nr_rewards,
                              int64_t rewards_len, int64_t kmax, double* out, double* jac) {
  check_mutation_args(s, mutation_rate, rewards, nr_rewards, rewards_len, kmax);
  check_closed(s, theta, theta_len);
  const int64_t P = theta_len, D = P + 1, V = rewards_len, K = kmax + 1;
  for_each_block(D, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    constexpr int N = Tangents<T>::n;
    Workspace<T>& ws = workspace<T>();
    edge_weights(s, theta, theta_len, ws, d0);
    T mu = mutation_rate;
    seed(mu, static_cast<int32_t>(P), 1.0, d0);  // mu is direction P
    std::vector<T> res(static_cast<size_t>(K));
    for (int64_t i = 0; i < nr_rewards; ++i) {
      mutation_pmf_one(s, ws, mu, rewards + i * V, kmax, res.data());
      for (int64_t k = 0; k < K; ++k) {
        out[i * K + k] = res[k].v;
        for (int j = 0; j < N && d0 + j < D; ++j) jac[(i * K + k) * D + d0 + j] = res[k].d[j];
      }
    }
  });
  check_finite(out, jac, nr_rewards * K, D);
}

}  // namespace phasic
