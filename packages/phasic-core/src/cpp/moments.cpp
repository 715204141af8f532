// Moments: the numeric replay of the elimination plan (factor), the solves, the
// moment recursions for continuous and discrete graphs, and the fused one-sweep
// moments of acyclic continuous graphs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "elimination.hpp"
#include "kernels.hpp"
#include "per_theta.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {

std::vector<double> transient_rewards(const Structure& s, const double* rewards,
                                      int64_t rewards_len) {
  if (rewards_len != s.V)
    bad("rewards has length " + std::to_string(rewards_len) + " but the graph has " +
        std::to_string(s.V) + " vertices (one reward per vertex)");
  for (int64_t v = 0; v < s.V; ++v)
    if (!(rewards[v] >= 0.0) || !std::isfinite(rewards[v]))
      bad("rewards[" + std::to_string(v) + "] is " + num(rewards[v]) +
          "; rewards must be finite and >= 0");
  std::vector<double> r(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) r[j] = rewards[s.tvert[j]];
  return r;
}

namespace {

// Numeric replay of the recorded elimination (GTH form: pivots are sums of
// non-negative terms, so there is no cancellation; elimination.hpp).
template <class T>
void factor(const Structure& s, Workspace<T>& ws) {
  const int32_t n = s.n;
  ws.vals.resize(s.tt_dst.size());
  ws.dinv.resize(static_cast<size_t>(n));
  ws.aelim.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) {
    // Continuous: embedded chain p = rate / lambda. Discrete: the probabilities.
    if (s.discrete) {
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) ws.vals[k] = ws.w[s.off_tt + k];
      ws.aelim[j] = ws.absv[j];
    } else {
      const T scale = reciprocal(ws.lam[j]);
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
        ws.vals[k] = ws.w[s.off_tt + k] * scale;
      ws.aelim[j] = ws.absv[j] / ws.lam[j];
    }
  }
  factor_loaded(s, ws);
}

// Solves (I - P) x = b in place using the factorization in ws.
template <class T>
void solve(const Structure& s, const Workspace<T>& ws, T* x) {
  lu_solve(s.plan, ws.lvals.data(), ws.uvals.data(), ws.dinv.data(), x);
}

template <class T>
T dot_alpha(const Workspace<T>& ws, const T* x, int32_t n) {
  T acc = 0.0;
  for (int32_t j = 0; j < n; ++j) fma_into(acc, ws.alpha[j], x[j]);
  return acc;
}

// Rewards per transient vertex (checked), or all ones.
template <class T>
void load_rewards(const Structure& s, Workspace<T>& ws, const double* rewards,
                  int64_t rewards_len) {
  if (rewards == nullptr)
    ws.r.assign(static_cast<size_t>(s.n), 1.0);
  else
    ws.r = transient_rewards(s, rewards, rewards_len);
}

// out[i-1] = E[T^i] or E[Y^i], i = 1..k, after edge_weights and load_rewards;
// per_vertex (nullable, k x n) receives E[. | start in transient vertex j] before the
// dot with alpha.
template <class T>
void moments_impl(const Structure& s, Workspace<T>& ws, int64_t k, T* out,
                  T* per_vertex = nullptr) {
  const int32_t n = s.n;
  if (k == 0) return;
  if (n == 0) {
    std::fill(out, out + k, T(0.0));
    return;
  }
  factor(s, ws);
  ws.x.resize(static_cast<size_t>(n));
  T* x = ws.x.data();
  if (!s.discrete) {
    // y_i = U diag(r) y_{i-1}: one solve with b = (r / lambda) * y_{i-1}.
    ws.y.assign(static_cast<size_t>(n), T(1.0));
    double fact = 1.0;
    for (int64_t i = 1; i <= k; ++i) {
      for (int32_t j = 0; j < n; ++j) x[j] = ws.r[j] * ws.y[j] / ws.lam[j];
      solve(s, ws, x);
      std::copy(x, x + n, ws.y.begin());
      fact *= static_cast<double>(i);
      out[i - 1] = fact * dot_alpha(ws, x, n);
      if (per_vertex)
        for (int32_t j = 0; j < n; ++j) per_vertex[(i - 1) * n + j] = x[j] * fact;
    }
    return;
  }
  // Discrete: (I - P) m_k = sum_{i<k} C(k,i) r^(k-i) q_i, q_0 = 1, q_i = P m_i.
  if (ws.q.size() < static_cast<size_t>(k)) ws.q.resize(static_cast<size_t>(k));
  ws.q[0].assign(static_cast<size_t>(n), T(1.0));
  std::vector<double> binom{1.0};
  for (int64_t kk = 1; kk <= k; ++kk) {
    std::vector<double> next(static_cast<size_t>(kk) + 1, 1.0);
    for (int64_t i = 1; i < kk; ++i) next[i] = binom[i - 1] + binom[i];
    binom.swap(next);
    for (int32_t j = 0; j < n; ++j) {
      T acc = 0.0;
      double rp = ws.r[j];  // rp = r^(kk - i), i from kk-1 down to 0
      for (int64_t i = kk - 1; i >= 0; --i) {
        fma_into(acc, ws.q[i][j], binom[i] * rp);
        rp *= ws.r[j];
      }
      x[j] = acc;
    }
    solve(s, ws, x);
    out[kk - 1] = dot_alpha(ws, x, n);
    if (per_vertex) std::copy(x, x + n, per_vertex + (kk - 1) * n);
    if (kk < k) {
      std::vector<T>& q = ws.q[kk];
      q.resize(static_cast<size_t>(n));
      for (int32_t j = 0; j < n; ++j) {
        T acc = clamp_value(1.0 - ws.lam[j]) * x[j];  // self-loop remainder
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          fma_into(acc, ws.w[s.off_tt + e], x[s.tt_dst[e]]);
        q[j] = acc;
      }
    }
  }
}

// Acyclic continuous graphs, all k moments in one sweep over the vertices sinks first
// (Layout::fused_moments): y_0 = 1 and lam_v y_i[v] = r_v y_(i-1)[v] + sum_c w_vc y_i[c],
// which is y_i = U diag(r) y_(i-1) solved by back substitution, with the edge weights
// computed inline from their coefficients. One pass over contiguous edge records in
// elimination order, no per-call allocation once the workspace has grown. Returns
// false, having reported nothing, when the fast path does not apply or an input
// check fails: the general path then runs and names the problem. KC > 0 fixes k.
template <class T, int KC>
bool fused_moments_k(const Structure& s, const double* theta, int64_t plen, int64_t k_rt,
                     T* out, int64_t dir0) {
  const Layout& L = s.layout;
  const int64_t k = KC > 0 ? KC : k_rt;
  Workspace<T>& ws = workspace<T>();
  ws.theta_ext.assign(theta, theta + plen);
  ws.theta_ext.push_back(0.0);
  const double* th = ws.theta_ext.data();
  const int32_t n = s.n;
  ws.fy.resize(static_cast<size_t>((n + 1) * k));
  T* y = ws.fy.data();
  std::fill(y + static_cast<int64_t>(n) * k, y + static_cast<int64_t>(n + 1) * k, T(0.0));
  ws.facc.resize(static_cast<size_t>(k));
  T local[KC > 0 ? KC : 1];
  T* acc = KC > 0 ? local : ws.facc.data();
  const MomentEdge* ed = L.m_edge.data();
  const int64_t* ptr = L.m_ptr.data();
  const int32_t* tidx = L.m_tidx.data();
  const double* r = ws.r.data();
  constexpr double kMax = std::numeric_limits<double>::max();
  bool ok = true;
  for (int32_t p = 0; p < n; ++p) {
    T lam = 0.0;
    for (int64_t i = 0; i < k; ++i) acc[i] = 0.0;
    for (int64_t e = ptr[p]; e < ptr[p + 1]; ++e) {
      const MomentEdge& m = ed[e];
      const double x = m.w0 + m.coef * th[m.param];
      ok &= (x >= 0.0) & (x <= kMax);
      T w = x;
      seed(w, m.param, m.coef, dir0);
      lam += w;
      const T* yc = y + static_cast<int64_t>(m.child) * k;
      for (int64_t i = 0; i < k; ++i) fma_into(acc[i], w, yc[i]);
    }
    ok &= value(lam) > 0.0;
    const T inv = reciprocal(lam);
    const double rv = r[tidx[p]];
    T* yp = y + static_cast<int64_t>(p) * k;
    T prev = 1.0;
    for (int64_t i = 0; i < k; ++i) {
      T a = acc[i];
      fma_into(a, prev, rv);
      yp[i] = a * inv;
      prev = yp[i];
    }
  }
  // The initial distribution, checked as in edge_weights: the start weights divided
  // by their sum (in T, so the derivatives follow the quotient rule).
  for (int64_t i = 0; i < k; ++i) acc[i] = 0.0;
  T total = 0.0;
  for (size_t a = 0; a < L.m_alpha.size(); ++a) {
    const int32_t par = s.spar[a];
    const double x = s.w0[a] + (par >= 0 ? s.sval[a] * th[par] : 0.0);
    ok &= (x >= 0.0) & (x <= kMax);
    T w = x;
    if (par >= 0) seed(w, par, s.sval[a], dir0);
    total += w;
    if (L.m_alpha[a] < 0) continue;
    const T* yc = y + static_cast<int64_t>(L.m_alpha[a]) * k;
    for (int64_t i = 0; i < k; ++i) fma_into(acc[i], w, yc[i]);
  }
  if (!ok || !(value(total) > 0.0) || !std::isfinite(value(total))) return false;
  const T inv = reciprocal(total);
  double fact = 1.0;
  for (int64_t i = 0; i < k; ++i) {
    fact *= static_cast<double>(i + 1);
    out[i] = acc[i] * inv * fact;
  }
  return true;
}

// Theta checked (length, finite) and rewards loaded into ws.r first; see fused_moments_k.
template <class T>
bool fused_moments(const Structure& s, const double* theta, int64_t plen, int64_t k, T* out,
                   int64_t dir0 = 0) {
  if (!s.layout.fused_moments || k <= 0 || plen != s.P) return false;
  for (int64_t p = 0; p < plen; ++p)
    if (!std::isfinite(theta[p])) return false;
  switch (k) {
    case 1: return fused_moments_k<T, 1>(s, theta, plen, k, out, dir0);
    case 2: return fused_moments_k<T, 2>(s, theta, plen, k, out, dir0);
    case 3: return fused_moments_k<T, 3>(s, theta, plen, k, out, dir0);
    case 4: return fused_moments_k<T, 4>(s, theta, plen, k, out, dir0);
    default: return fused_moments_k<T, 0>(s, theta, plen, k, out, dir0);
  }
}

}  // namespace

void check_closed_classes(const Structure& s, Workspace<double>& ws) { factor(s, ws); }

template <class T>
void factor_transient(const Structure& s, Workspace<T>& ws) {
  factor(s, ws);
}

template <class T>
void factor_loaded(const Structure& s, Workspace<T>& ws) {
  ws.lvals.resize(s.plan.l_col.size());
  ws.uvals.resize(s.plan.u_col.size());
  double pivot = 0.0;
  const int32_t v = lu_factor(s.plan, s.tt_ptr.data(), s.tt_dst.data(), ws.vals.data(),
                              ws.aelim.data(), ws.dense, ws.lvals.data(), ws.uvals.data(),
                              ws.dinv.data(), &pivot);
  if (v >= 0)
    bad(s.vertex_string(s.tvert[v]) +
        " cannot reach absorption for this theta (its probability of ever leaving its "
        "closed class is " + num(pivot) + "); check for zero rates");
}
#define PHASIC_FACTOR_TRANSIENT(T)                                      \
  template void factor_transient<T>(const Structure&, Workspace<T>&); \
  template void factor_loaded<T>(const Structure&, Workspace<T>&);
PHASIC_EACH_SCALAR(PHASIC_FACTOR_TRANSIENT)
#undef PHASIC_FACTOR_TRANSIENT

}  // namespace kernel

using namespace kernel;

void check_nr_moments(int64_t nr_moments) {
  check_range("nr_moments", nr_moments, kMaxMoments,
              "moment k of a continuous graph carries a factor k!, which overflows a double "
              "past k = 170");
}

namespace {

// A moment (or a derivative of one) that overflows is an error: returned as inf, its
// reverse-mode gradient would silently become NaN.
void check_finite(const double* out, const double* jac, int64_t nr_moments, int64_t P) {
  const int64_t i = first_not_finite(out, jac, nr_moments, P);
  if (i >= 0)
    bad("moment " + std::to_string(i + 1) + " overflows a double (its value is " +
        num(out[i]) + (jac != nullptr ? " or a derivative is not finite" : "") +
        "); ask for at most " + std::to_string(i) +
        " moments, or rescale time (theta) so that the moments stay below 1.8e308");
}

}  // namespace

void compute_moments(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t rewards_len, int64_t nr_moments, double* out) {
  check_nr_moments(nr_moments);
  Workspace<double>& ws = workspace<double>();
  bool fused = false;
  if (s.layout.fused_moments && nr_moments > 0) {
    load_rewards(s, ws, rewards, rewards_len);
    fused = fused_moments(s, theta, theta_len, nr_moments, out);
  }
  if (!fused) {
    edge_weights(s, theta, theta_len, ws);
    load_rewards(s, ws, rewards, rewards_len);
    moments_impl(s, ws, nr_moments, out);
  }
  check_finite(out, nullptr, nr_moments, 0);
}

void compute_moments_jac(const Structure& s, const double* theta, int64_t theta_len,
                         const double* rewards, int64_t rewards_len, int64_t nr_moments,
                         double* out, double* jac) {
  check_nr_moments(nr_moments);
  const int64_t P = theta_len;
  if (P == 0 || nr_moments == 0) {
    compute_moments(s, theta, theta_len, rewards, rewards_len, nr_moments, out);
    return;
  }
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    constexpr int N = Tangents<T>::n;
    Workspace<T>& ws = workspace<T>();
    std::vector<T> res(static_cast<size_t>(nr_moments));
    bool fused = false;
    if (s.layout.fused_moments) {
      load_rewards(s, ws, rewards, rewards_len);
      fused = fused_moments(s, theta, theta_len, nr_moments, res.data(), d0);
    }
    if (!fused) {
      edge_weights(s, theta, theta_len, ws, d0);
      load_rewards(s, ws, rewards, rewards_len);
      moments_impl(s, ws, nr_moments, res.data());
    }
    for (int64_t i = 0; i < nr_moments; ++i) {
      out[i] = res[i].v;
      for (int j = 0; j < N && d0 + j < P; ++j) jac[i * P + d0 + j] = res[i].d[j];
    }
  });
  check_finite(out, jac, nr_moments, P);
}

namespace {

// Per-vertex moments for weights in ws (after edge_weights): out is nr_moments x s.V.
template <class T>
void vertex_moments_impl(const Structure& s, Workspace<T>& ws, const double* rewards,
                         int64_t rewards_len, int64_t k, T* out) {
  load_rewards(s, ws, rewards, rewards_len);
  std::fill(out, out + k * s.V, T(0.0));
  if (k == 0 || s.n == 0) return;
  std::vector<T> graph(static_cast<size_t>(k)), pv(static_cast<size_t>(k * s.n));
  moments_impl(s, ws, k, graph.data(), pv.data());
  for (int64_t i = 0; i < k; ++i) {
    out[i * s.V] = graph[i];  // vertex 0 leaves at once by alpha
    for (int32_t j = 0; j < s.n; ++j) out[i * s.V + s.tvert[j]] = pv[i * s.n + j];
  }
}

void check_vertex_finite(const Structure& s, const double* out, const double* jac,
                         int64_t nr_moments, int64_t P) {
  const int64_t q = first_not_finite(out, jac, nr_moments * s.V, P);
  if (q >= 0)
    bad("moment " + std::to_string(q / s.V + 1) + " from vertex " + std::to_string(q % s.V) +
        " overflows a double (its value is " + num(out[q]) +
        (jac != nullptr ? " or a derivative is not finite" : "") +
        "); ask for fewer moments, or rescale time (theta) or the rewards");
}

}  // namespace

void compute_vertex_moments(const Structure& s, const double* theta, int64_t theta_len,
                            const double* rewards, int64_t rewards_len, int64_t nr_moments,
                            double* out) {
  check_nr_moments(nr_moments);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  vertex_moments_impl(s, ws, rewards, rewards_len, nr_moments, out);
  check_vertex_finite(s, out, nullptr, nr_moments, 0);
}

void compute_vertex_moments_jac(const Structure& s, const double* theta, int64_t theta_len,
                                const double* rewards, int64_t rewards_len,
                                int64_t nr_moments, double* out, double* jac) {
  check_nr_moments(nr_moments);
  const int64_t P = theta_len, N = nr_moments * s.V;
  if (P == 0 || N == 0) {
    compute_vertex_moments(s, theta, theta_len, rewards, rewards_len, nr_moments, out);
    return;
  }
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    Workspace<T>& ws = workspace<T>();
    edge_weights(s, theta, theta_len, ws, d0);
    std::vector<T> res(static_cast<size_t>(N));
    vertex_moments_impl(s, ws, rewards, rewards_len, nr_moments, res.data());
    const int64_t m = std::min<int64_t>(Tangents<T>::n, P - d0);
    for (int64_t i = 0; i < N; ++i) {
      out[i] = res[i].v;
      for (int64_t q = 0; q < m; ++q) jac[i * P + d0 + q] = res[i].d[q];
    }
  });
  check_vertex_finite(s, out, jac, nr_moments, P);
}

}  // namespace phasic
