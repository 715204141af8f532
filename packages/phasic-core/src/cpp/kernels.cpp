#include "kernels.hpp"

#include "dual.hpp"
#include "elimination.hpp"
#include "poisson.hpp"
#include "threads.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace phasic {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

// Uniformization takes about (largest exit rate) x t steps (fewer when the mass
// empties early). A sweep that passes kMaxSteps steps stops with this error instead
// of running for hours (a fuzzed rate of 1.9e19 at t = 1 never finished).
constexpr double kMaxSteps = 2e6;

[[noreturn]] void too_stiff(double lambda, double t_max) {
  bad("uniformization would need about " + num(lambda * t_max) + " steps (largest exit rate " +
      num(lambda) + " x largest time " + num(t_max) +
      "), more than the 2e6 allowed: the rates are too stiff for this time span (a fast "
      "transition keeps the step tiny while slow states hold mass); use shorter times or "
      "remove the fast transitions");
}

// Scratch reused across calls on the same thread (XLA and OpenMP threads persist).
// One per scalar type: double for values, Dual<N> for values with derivatives.
template <class T>
struct Workspace {
  std::vector<T> w;      // edge weights for this theta
  std::vector<T> lam;    // total out-weight per transient vertex
  std::vector<T> absv;   // weight of the edges into absorption per vertex
  std::vector<T> aelim;  // absorption probability during elimination
  std::vector<T> vals;   // T->T edge probabilities (CSR order)
  std::vector<T> dense;  // rows of the elimination, scattered (lu_factor's scratch)
  std::vector<T> dinv;   // 1 / pivot per elimination step
  std::vector<T> lvals, uvals;  // factors in plan order (contiguous for the solves)
  std::vector<T> alpha;  // initial distribution over transient vertices
  std::vector<T> x, y;
  std::vector<double> r;  // rewards do not depend on theta
  std::vector<std::vector<T>> q;
  std::vector<double> theta_ext;  // theta and a trailing 0 (edges without a coefficient)
  std::vector<T> fy, facc;        // fused moments: k moments per position, accumulators
  // Gather uniformization (Layout order): P entries, diagonal, absorption rates,
  // the two probability vectors, per-chunk partial sums.
  std::vector<double> gp, gd, gs, ga, gb, gpart;
};

// OpenMP team for one big sweep. A team pays two barriers per step, and a member
// that the OS preempts stalls every barrier: on 2 cores, Kingman n = 30's pdf took
// 32 ms on two threads against 57 ms on one with one other busy process, but
// 450-620 ms against 140 ms with five. So the choice is measured, not guessed: each
// big sweep reports its time per multiply-add, one moving average per mode, and the
// faster mode is used, trying the other one every 16th sweep to follow the load. The
// results are the same bits for any team size, so this only moves time. Sweeps
// below kMinWork multiply-adds per step, or inside a running parallel batch loop
// (which already uses the cores), run on one thread. PHASIC_SWEEP_TEAM=always or
// =never fixes the choice (tests).
constexpr double kMinWork = 2e4;
std::atomic<double> g_sweep_cost[2] = {{0.0}, {0.0}};  // s per multiply-add; 0: unknown
std::atomic<int64_t> g_sweep_calls{0};

int sweep_team(double work) {
  if (work < kMinWork || omp_in_parallel()) return 1;
  const int64_t nt = get_num_threads();
  if (nt < 2) return 1;
  const int full =
      static_cast<int>(std::max<int64_t>(2, std::min<int64_t>(nt, work / (kMinWork / 2))));
  if (const char* fixed = std::getenv("PHASIC_SWEEP_TEAM")) {
    if (std::strcmp(fixed, "always") == 0) return full;
    if (std::strcmp(fixed, "never") == 0) return 1;
  }
  const double one = g_sweep_cost[0].load(), team = g_sweep_cost[1].load();
  if (one == 0.0) return 1;
  if (team == 0.0) return full;
  bool use_team = team < one;
  if (g_sweep_calls++ % 16 == 15) use_team = !use_team;
  return use_team ? full : 1;
}

// Records a big sweep's cost (seconds per multiply-add) for its mode.
void sweep_record(int team, double seconds, double madds) {
  if (madds <= 0.0) return;
  std::atomic<double>& avg = g_sweep_cost[team > 1 ? 1 : 0];
  const double x = seconds / madds, old = avg.load();
  avg.store(old == 0.0 ? x : 0.75 * old + 0.25 * x);
}

// Times one sweep and records it when it was big enough to have had the choice.
class SweepTimer {
 public:
  SweepTimer(int team, double work) : team_(team), big_(work >= kMinWork && !omp_in_parallel()),
                                      start_(std::chrono::steady_clock::now()) {}
  void done(double madds) const {
    if (!big_) return;
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start_;
    sweep_record(team_, dt.count(), madds);
  }

 private:
  int team_;
  bool big_;
  std::chrono::steady_clock::time_point start_;
};

// How many continuous sweeps ran piecewise and how many as one sweep at the largest
// rate (sweep_counts(): tests check which path served a call).
std::atomic<int64_t> g_sweeps_piecewise{0}, g_sweeps_single{0};

// Shrinks [lo, hi] to the first and last nonzero entries of x (empty: lo > hi).
template <class T>
inline void trim_window(const T* x, int32_t& lo, int32_t& hi) {
  while (lo <= hi && is_zero(x[lo])) ++lo;
  while (hi >= lo && is_zero(x[hi])) --hi;
}

template <class T>
Workspace<T>& workspace() {
  thread_local Workspace<T> ws;
  return ws;
}

// Adds coef to the derivative of x with respect to parameter `param` when that
// parameter is one of the directions [dir0, dir0 + N) carried by T.
template <class T>
inline void seed(T& x, int32_t param, double coef, int64_t dir0) {
  if constexpr (Tangents<T>::n > 0) {
    const int64_t k = static_cast<int64_t>(param) - dir0;
    if (k >= 0 && k < Tangents<T>::n) x.d[k] += coef;
  } else {
    (void)x, (void)param, (void)coef, (void)dir0;
  }
}

// The value clamped at >= 0 (rounding), derivatives kept: the remainder 1 - sum of
// out-probabilities is linear in theta, and so is its derivative.
template <class T>
inline T clamp_value(T x) {
  if constexpr (Tangents<T>::n > 0) {
    if (x.v < 0.0) x.v = 0.0;
    return x;
  } else {
    return std::max(0.0, x);
  }
}

// Edge weights for theta, with every per-theta check on them. Weights are linear in
// theta, so their derivatives are the coefficients (seeded for directions dir0..).
template <class T>
void edge_weights(const Structure& s, const double* theta, int64_t plen, Workspace<T>& ws,
                  int64_t dir0 = 0) {
  if (plen != s.P)
    bad("theta has length " + std::to_string(plen) + " but the graph has " + std::to_string(s.P) +
        " parameter" + (s.P == 1 ? "" : "s") + " (param_length)");
  for (int64_t p = 0; p < plen; ++p)
    if (!std::isfinite(theta[p])) bad("theta[" + std::to_string(p) + "] is " + num(theta[p]));
  ws.w.resize(static_cast<size_t>(s.E));
  T* w = ws.w.data();
  const double* w0 = s.w0.data();
  bool ok = true;
  if (s.single_coef) {
    const int32_t* spar = s.spar.data();
    const double* sval = s.sval.data();
    for (int64_t p = 0; p < s.E; ++p) {
      const double x = w0[p] + (spar[p] >= 0 ? sval[p] * theta[spar[p]] : 0.0);
      ok &= (x >= 0.0) & (x <= std::numeric_limits<double>::max());
      w[p] = x;
      if (spar[p] >= 0) seed(w[p], spar[p], sval[p], dir0);
    }
  } else {
    for (int64_t p = 0; p < s.E; ++p) {
      double x = w0[p];
      for (int64_t k = s.pcoef_ptr[p]; k < s.pcoef_ptr[p + 1]; ++k)
        x += s.pcoef_value[k] * theta[s.pcoef_param[k]];
      ok &= (x >= 0.0) & (x <= std::numeric_limits<double>::max());
      w[p] = x;
      for (int64_t k = s.pcoef_ptr[p]; k < s.pcoef_ptr[p + 1]; ++k)
        seed(w[p], s.pcoef_param[k], s.pcoef_value[k], dir0);
    }
  }
  if (!ok)
    for (int64_t p = 0; p < s.E; ++p)
      if (!(value(w[p]) >= 0.0) || !std::isfinite(value(w[p]))) {
        const int32_t e = s.eperm[p];
        bad("edge " + std::to_string(e) + " (vertex " + std::to_string(s.efrom[e]) +
            " \u2192 vertex " + std::to_string(s.eto[e]) + ") has weight " + num(value(w[p])) +
            " for this theta; weights must be finite and >= 0");
      }
  ws.alpha.assign(static_cast<size_t>(s.n), T(0.0));
  double total = 0.0;
  for (size_t k = 0; k < s.alpha_edge.size(); ++k) {
    total += value(w[k]);
    if (s.alpha_t[k] >= 0) ws.alpha[s.alpha_t[k]] += w[k];
  }
  if (total > 1.0 + 1e-12)
    bad("the initial probabilities (edges out of vertex 0) sum to " + num(total) +
        " > 1 for this theta");
  ws.lam.resize(static_cast<size_t>(s.n));
  ws.absv.resize(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) {
    T a = 0.0, t = 0.0;
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k) a += w[s.off_ta + k];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) t += w[s.off_tt + k];
    ws.lam[j] = a + t;
    ws.absv[j] = a;
    const double total_out = value(ws.lam[j]);
    if (s.discrete) {
      if (total_out > 1.0 + 1e-12)
        bad(s.vertex_string(s.tvert[j]) + " has out-probabilities summing to " + num(total_out) +
            " > 1 for this theta");
    } else if (!(total_out > 0.0)) {
      bad(s.vertex_string(s.tvert[j]) +
          " has total out-rate 0 for this theta, so it can never reach absorption");
    }
  }
}

template <class T>
T alpha_mass(const Workspace<T>& ws) {
  T m = 0.0;
  for (const T& a : ws.alpha) m += a;
  return m;
}

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
  ws.r.assign(static_cast<size_t>(s.n), 1.0);
  if (rewards == nullptr) return;
  if (rewards_len != s.V)
    bad("rewards has length " + std::to_string(rewards_len) + " but the graph has " +
        std::to_string(s.V) + " vertices (one reward per vertex)");
  for (int64_t v = 0; v < s.V; ++v)
    if (!(rewards[v] >= 0.0) || !std::isfinite(rewards[v]))
      bad("rewards[" + std::to_string(v) + "] is " + num(rewards[v]) +
          "; rewards must be finite and >= 0");
  for (int32_t j = 0; j < s.n; ++j) ws.r[j] = rewards[s.tvert[j]];
}

// out[i-1] = E[T^i] or E[Y^i], i = 1..k, after edge_weights and load_rewards.
template <class T>
void moments_impl(const Structure& s, Workspace<T>& ws, int64_t k, T* out) {
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
  // The initial distribution, checked as in edge_weights.
  for (int64_t i = 0; i < k; ++i) acc[i] = 0.0;
  double total = 0.0;
  for (size_t a = 0; a < L.m_alpha.size(); ++a) {
    const int32_t par = s.spar[a];
    const double x = s.w0[a] + (par >= 0 ? s.sval[a] * th[par] : 0.0);
    ok &= (x >= 0.0) & (x <= kMax);
    total += x;
    if (L.m_alpha[a] < 0) continue;
    T w = x;
    if (par >= 0) seed(w, par, s.sval[a], dir0);
    const T* yc = y + static_cast<int64_t>(L.m_alpha[a]) * k;
    for (int64_t i = 0; i < k; ++i) fma_into(acc[i], w, yc[i]);
  }
  if (!ok || total > 1.0 + 1e-12) return false;
  double fact = 1.0;
  for (int64_t i = 0; i < k; ++i) {
    fact *= static_cast<double>(i + 1);
    out[i] = acc[i] * fact;
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

// Runs fn(T{}, dir0) for each block of at most 8 derivative directions, with T the
// smallest Dual type that holds the block.
template <class F>
void for_each_block(int64_t P, F&& fn) {
  for (int64_t d0 = 0; d0 < P; d0 += 8) {
    const int64_t m = std::min<int64_t>(8, P - d0);
    if (m == 1)
      fn(Dual<1>{}, d0);
    else if (m == 2)
      fn(Dual<2>{}, d0);
    else if (m == 3)
      fn(Dual<3>{}, d0);
    else if (m == 4)
      fn(Dual<4>{}, d0);
    else
      fn(Dual<8>{}, d0);
  }
}

}  // namespace

void compute_moments(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t rewards_len, int64_t k, double* out) {
  if (k < 0) bad("nr_moments must be >= 0, got " + std::to_string(k));
  Workspace<double>& ws = workspace<double>();
  if (s.layout.fused_moments && k > 0) {
    load_rewards(s, ws, rewards, rewards_len);
    if (fused_moments(s, theta, theta_len, k, out)) return;
  }
  edge_weights(s, theta, theta_len, ws);
  load_rewards(s, ws, rewards, rewards_len);
  moments_impl(s, ws, k, out);
}

void compute_moments_jac(const Structure& s, const double* theta, int64_t theta_len,
                         const double* rewards, int64_t rewards_len, int64_t k, double* out,
                         double* jac) {
  if (k < 0) bad("nr_moments must be >= 0, got " + std::to_string(k));
  const int64_t P = theta_len;
  if (P == 0 || k == 0) {
    compute_moments(s, theta, theta_len, rewards, rewards_len, k, out);
    return;
  }
  for_each_block(P, [&](auto tag, int64_t d0) {
    using T = decltype(tag);
    constexpr int N = Tangents<T>::n;
    Workspace<T>& ws = workspace<T>();
    std::vector<T> res(static_cast<size_t>(k));
    bool fused = false;
    if (s.layout.fused_moments) {
      load_rewards(s, ws, rewards, rewards_len);
      fused = fused_moments(s, theta, theta_len, k, res.data(), d0);
    }
    if (!fused) {
      edge_weights(s, theta, theta_len, ws, d0);
      load_rewards(s, ws, rewards, rewards_len);
      moments_impl(s, ws, k, res.data());
    }
    for (int64_t i = 0; i < k; ++i) {
      out[i] = res[i].v;
      for (int j = 0; j < N && d0 + j < P; ++j) jac[i * P + d0 + j] = res[i].d[j];
    }
  });
}

namespace {

void check_times(const Structure& s, const double* times, int64_t n_times) {
  for (int64_t i = 0; i < n_times; ++i) {
    const double t = times[i];
    if (!std::isfinite(t) || t < 0.0)
      bad("times[" + std::to_string(i) + "] is " + num(t) + "; times must be finite and >= 0");
    if (s.discrete && (t != std::floor(t) || t > 1e12))
      bad("times[" + std::to_string(i) + "] is " + num(t) +
          "; a discrete graph's times are whole numbers of steps");
  }
}

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

// Rows a..b of nxt = cur P (diagonal gd, in-edges gp from in_src), entries below 1e-60
// flushed; out[0] = sum cur . gs, out[1] = sum of the kept entries, out[2] = flushed.
void gather_rows(int32_t a, int32_t b, const double* __restrict cur, double* __restrict nxt,
                 const double* __restrict gd, const double* __restrict gs,
                 const double* __restrict gp, const int64_t* __restrict in_ptr,
                 const int32_t* __restrict in_src, double* __restrict out) {
  constexpr double kFlush = 1e-60;
  double cp = 0.0, mp = 0.0, dp = 0.0;
  for (int32_t q = a; q <= b; ++q) {
    const double vq = cur[q];
    double x = gd[q] * vq;
    // Two interleaved partial sums (a fixed order: the same bits on every thread).
    double y = 0.0;
    int64_t e = in_ptr[q];
    const int64_t e1 = in_ptr[q + 1];
    for (; e + 1 < e1; e += 2) {
      x += gp[e] * cur[in_src[e]];
      y += gp[e + 1] * cur[in_src[e + 1]];
    }
    if (e < e1) x += gp[e] * cur[in_src[e]];
    x += y;
    if (x < kFlush) {
      dp += x;
      x = 0.0;
    }
    nxt[q] = x;
    mp += x;
    cp += vq * gs[q];
  }
  out[0] = cp;
  out[1] = mp;
  out[2] = dp;
}

// Continuous: uniformization. c_n = alpha P^n s with P = I + S / lambda; the
// pdf is sum_n Pois(n; lambda t) c_n and the cdf is defect + sum_n Pois(n;
// lambda t) C_n, C_n = sum_{m<n} c_m / lambda. All terms are >= 0, so bounding the
// neglected Poisson tail bounds the relative error.
//
// The matvec is a gather over the in-edges of each row (Layout, CSR by destination,
// topological-like numbering), restricted to the index window that can hold mass.
// Rows are cut into fixed chunks of kChunk indices; each row is summed by one thread
// in a fixed order and the per-chunk partial sums are added in chunk order, so the
// result does not depend on the number of threads. Large sweeps run in one OpenMP
// region for the whole sweep (not one per step) when not already inside a parallel
// batch loop.
void continuous_distribution(const Structure& s, Workspace<double>& ws, const double* times,
                             int64_t n_times, double* pdf, double* cdf) {
  const Layout& L = s.layout;
  const int32_t n = s.n;
  const double mass0 = alpha_mass(ws);
  const double defect = std::max(0.0, 1.0 - mass0);
  double lambda = 0.0, smax = 0.0;
  for (int32_t j = 0; j < n; ++j) {
    lambda = std::max(lambda, ws.lam[j]);
    smax = std::max(smax, ws.absv[j]);
  }
  std::vector<double> spdf(static_cast<size_t>(n_times), 0.0), scdf(static_cast<size_t>(n_times), 0.0);
  if (n == 0 || mass0 == 0.0) {
    for (int64_t i = 0; i < n_times; ++i) {
      if (pdf) pdf[i] = 0.0;
      if (cdf) cdf[i] = defect;
    }
    return;
  }
  g_sweeps_single.fetch_add(1, std::memory_order_relaxed);
  std::vector<double> mu(static_cast<size_t>(n_times));
  std::vector<double> wsum(static_cast<size_t>(n_times), 0.0);  // Poisson weights so far
  std::vector<char> done(static_cast<size_t>(n_times), 0);
  int64_t remaining = n_times;
  for (int64_t i = 0; i < n_times; ++i) mu[i] = lambda * times[i];
  // Transition probabilities of the uniformized chain, in gather order.
  const double inv = 1.0 / lambda;
  const size_t nnz = L.in_src.size();
  ws.gp.resize(nnz);
  ws.gd.resize(static_cast<size_t>(n));
  ws.gs.resize(static_cast<size_t>(n));
  for (size_t k = 0; k < nnz; ++k) ws.gp[k] = ws.w[L.in_edge[k]] * inv;
  int32_t lo = n, hi = -1;  // window of v's nonzero entries
  ws.ga.assign(static_cast<size_t>(n), 0.0);
  ws.gb.assign(static_cast<size_t>(n), 0.0);
  for (int32_t q = 0; q < n; ++q) {
    const int32_t j = L.u_tidx[q];
    ws.gd[q] = std::max(0.0, 1.0 - ws.lam[j] * inv);
    ws.gs[q] = ws.absv[j];
    ws.ga[q] = ws.alpha[j];
    if (ws.ga[q] != 0.0) {
      lo = std::min(lo, q);
      hi = q;
    }
  }
  constexpr int32_t kChunk = 256;
  const int64_t n_chunks = (static_cast<int64_t>(n) + kChunk - 1) / kChunk;
  ws.gpart.assign(static_cast<size_t>(3 * n_chunks), 0.0);
  const double* gp = ws.gp.data();
  const double* gd = ws.gd.data();
  const double* gs = ws.gs.data();
  const int64_t* in_ptr = L.in_ptr.data();
  const int32_t* in_src = L.in_src.data();
  double* part = ws.gpart.data();
  double* cur = ws.ga.data();
  double* nxt = ws.gb.data();
  double big_c = 0.0;   // C_n
  double max_pdf = 0.0;
  // Entries below 1e-60 are set to zero (gather_rows; they would otherwise decay
  // through slow subnormal arithmetic); the dropped mass changes the pdf by at most
  // smax * dropped.
  double dropped = 0.0;
  double mu_max = 0.0;
  for (double m : mu) mu_max = std::max(mu_max, m);
  const double step_cap = std::min(4.0 * mu_max + 1e6, kMaxSteps + 1.0);
  int64_t step = 0;
  int32_t nlo = 0, nhi = -1;  // rows of the next vector that can be nonzero
  int32_t slo = n, shi = -1;  // rows of the `nxt` buffer that may hold stale values
  auto plan_step = [&] {      // the next window; stale entries outside it zeroed
    if (lo <= hi) {
      nlo = std::min(lo, L.reach_lo[lo]);
      nhi = std::max(hi, L.reach_hi[hi]);
    } else {
      nlo = 0;
      nhi = -1;
    }
    for (int32_t q = slo; q <= shi; ++q)
      if (q < nlo || q > nhi) nxt[q] = 0.0;
  };
  plan_step();
  bool finished = false, failed = false;
  const double row_cost = static_cast<double>(nnz + static_cast<size_t>(n)) / n;
  const int team = sweep_team(row_cost * n);
  const SweepTimer timer(team, row_cost * n);
  double rows_done = 0.0;
#pragma omp parallel num_threads(team) if (team > 1)
  while (!finished) {
    const int64_t c0 = nlo / kChunk, c1 = nhi < nlo ? c0 - 1 : nhi / kChunk;
#pragma omp for schedule(static)
    for (int64_t ck = c0; ck <= c1; ++ck)
      gather_rows(std::max<int32_t>(nlo, static_cast<int32_t>(ck * kChunk)),
                  std::min<int32_t>(nhi, static_cast<int32_t>(ck * kChunk + kChunk - 1)), cur, nxt,
                  gd, gs, gp, in_ptr, in_src, part + 3 * (ck - c0));
#pragma omp single
    {
      rows_done += std::max(0, nhi - nlo + 1);
      // c = v_step . s; mass of v_(step+1) bounds every later c.
      double c = 0.0, mass = 0.0;
      for (int64_t ck = c0; ck <= c1; ++ck) {
        c += part[3 * (ck - c0)];
        mass += part[3 * (ck - c0) + 1];
        dropped += part[3 * (ck - c0) + 2];
      }
      trim_window(nxt, nlo, nhi);
      slo = lo;
      shi = hi;
      lo = nlo;
      hi = nhi;
      std::swap(cur, nxt);
      const LogPoisson log_pois(static_cast<double>(step));
      for (int64_t i = 0; i < n_times; ++i) {
        if (done[i]) continue;
        double wgt, tail;
        if (mu[i] == 0.0) {
          wgt = step == 0 ? 1.0 : 0.0;
          tail = 0.0;
        } else {
          wgt = std::exp(log_pois(mu[i]));
          const double m1 = static_cast<double>(step + 1);
          if (m1 + 1.0 > mu[i]) {
            const double next_w = wgt * mu[i] / m1;
            tail = next_w / (1.0 - mu[i] / (m1 + 1.0));
          } else {
            tail = 1.0;
          }
        }
        spdf[i] += wgt * c;
        scdf[i] += wgt * big_c;
        wsum[i] += wgt;
        max_pdf = std::max(max_pdf, spdf[i]);
        // Truncation bounds; the flushed mass adds at most smax * dropped (< 1e-50).
        const double pdf_err = tail * smax * mass;
        const double cdf_err = tail * mass0;
        // Absolute 1e-21 of the largest: still 1e-9 relative where pdf >= 1e-12 max.
        const bool pdf_ok = pdf_err <= 1e-10 * spdf[i] || pdf_err <= 1e-21 * max_pdf ||
                            pdf_err < 1e-300;
        const bool cdf_ok = cdf_err <= 1e-10 * (scdf[i] + defect) || cdf_err < 1e-300;
        if (pdf_ok && cdf_ok) {
          done[i] = 1;
          --remaining;
        }
      }
      big_c += c * inv;
      if (mass == 0.0) {  // nothing left: every later term is 0 (pdf) and big_c (cdf)
        for (int64_t i = 0; i < n_times; ++i) {
          if (done[i]) continue;
          scdf[i] += big_c * std::max(0.0, 1.0 - wsum[i]);
          done[i] = 1;
          --remaining;
        }
      }
      ++step;
      if (remaining == 0) {
        finished = true;
      } else if (static_cast<double>(step) > step_cap) {
        finished = failed = true;
      } else {
        plan_step();
      }
    }
  }
  if (failed) {
    if (step_cap > kMaxSteps) too_stiff(lambda, mu_max / lambda);
    bad("uniformization did not converge within " + num(step_cap) + " steps");
  }
  timer.done(rows_done * row_cost);
  for (int64_t i = 0; i < n_times; ++i) {
    if (pdf) pdf[i] = spdf[i];
    if (cdf) cdf[i] = std::min(1.0, defect + scdf[i]);
  }
}

// ------------------------------------------------------------------ scaled series
// The kernels below serve derivatives and log-densities. They keep the probability
// vector in a representable range by rescaling it (the scale goes into a log), and
// sum each time's series as exp(ls) * acc, so densities far below 1e-308 keep full
// relative precision and their logarithm is finite.

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

inline double safe_log(double x) { return x > 0.0 ? std::log(x) : kNegInf; }

// The sum of one time's series is exp(ls) * acc (ls = -inf: no term yet).
template <class T>
struct Scaled {
  double ls = kNegInf;
  T acc = 0.0;
};

// Adds exp(log_w) * c. The reference ls moves up when a term would be more than
// e^300 times it, so acc never overflows and never loses the large terms.
template <class T>
inline void add_scaled(Scaled<T>& a, double log_w, const T& c) {
  if (a.ls == kNegInf || log_w > a.ls + 300.0) {
    if (a.ls != kNegInf) a.acc *= std::exp(a.ls - log_w);
    a.ls = log_w;
  }
  fma_into(a.acc, c, std::exp(log_w - a.ls));
}

template <class T>
inline double log_value(const Scaled<T>& a) {
  return a.ls + safe_log(value(a.acc));
}

// exp(ls) * x, computed so that it neither overflows nor underflows needlessly.
inline double unscale(double ls, double x) {
  if (x == 0.0 || ls == kNegInf) return 0.0;
  return std::copysign(std::exp(ls + std::log(std::fabs(x))), x);
}

// Entries below this fraction of the vector's size are dropped (no subnormal arithmetic).
constexpr double kFlushRel = 1e-150;

struct VecSize {
  double mag = 0.0;   // sum of magnitudes (values and derivatives)
  double mass = 0.0;  // sum of values (they are probabilities, >= 0)
};

// Drops entries below `cut` (they would otherwise decay into slow subnormal
// arithmetic; the caller sets cut to 1e-150 of the previous size, negligible next
// to the kept mass) and measures what is left, in one pass.
template <class T>
VecSize flush_and_measure(T* begin, T* end, double cut) {
  VecSize r;
  for (T* p = begin; p < end; ++p) {
    T& x = *p;
    const double m = magnitude(x);
    if (m == 0.0) continue;
    if (m < cut) {
      x = T(0.0);
      continue;
    }
    r.mag += m;
    r.mass += value(x);
  }
  return r;
}

// Rescales v to size 1 when its size leaves [1e-100, 1e100]; log_scale absorbs it.
template <class T>
void rescale(std::vector<T>& v, VecSize& size, double& log_scale) {
  if (size.mag == 0.0 || (size.mag >= 1e-100 && size.mag <= 1e100)) return;
  const double f = 1.0 / size.mag;
  for (T& x : v) x *= f;
  log_scale += std::log(size.mag);
  size.mass *= f;
  size.mag = 1.0;
}

// Continuous: uniformization with lambda fixed from the primal rates (any lambda >=
// the largest exit rate gives the same exp(S t), so only P = I + S / lambda carries
// derivatives). The truncation is rigorous for the values and the derivatives, and
// relative at every time (1e-10), however small the density.
template <class T>
void uniformized(const Structure& s, const Workspace<T>& ws, const double* times,
                 int64_t n_times, Scaled<T>* out) {
  constexpr int N = Tangents<T>::n;
  const int32_t n = s.n;
  for (int64_t i = 0; i < n_times; ++i) out[i] = Scaled<T>{};
  bool any = false;
  for (const T& a : ws.alpha) any |= !is_zero(a);
  if (n == 0 || !any || n_times == 0) return;
  g_sweeps_single.fetch_add(1, std::memory_order_relaxed);
  double lambda = 0.0, smax = 0.0;
  for (int32_t j = 0; j < n; ++j) {
    lambda = std::max(lambda, value(ws.lam[j]));
    smax = std::max(smax, value(ws.absv[j]));
  }
  const double inv = 1.0 / lambda;
  // P = I + S / lambda as a gather by destination in the Layout numbering (rows
  // summed in a fixed order), vectors and rates in that numbering too.
  const Layout& L = s.layout;
  const size_t nnz = L.in_src.size();
  std::vector<T> pu(nnz), diag(static_cast<size_t>(n)), absq(static_cast<size_t>(n));
  for (size_t k = 0; k < nnz; ++k) pu[k] = ws.w[L.in_edge[k]] * inv;
  for (int32_t q = 0; q < n; ++q) {
    diag[q] = clamp_value(1.0 - ws.lam[L.u_tidx[q]] * inv);
    absq[q] = ws.absv[L.u_tidx[q]];
  }
  // Largest row sum of |dP| and largest |ds| over the directions: they bound how
  // fast the derivatives of later terms can grow (the tangent bound below).
  double dp_max = 0.0, ds_max = 0.0;
  if constexpr (N > 0) {
    for (int32_t j = 0; j < n; ++j)
      for (int k = 0; k < N; ++k) {
        double row = std::fabs(diag[L.u_pos[j]].d[k]);
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          row += std::fabs(ws.w[s.off_tt + e].d[k] * inv);
        dp_max = std::max(dp_max, row);
        ds_max = std::max(ds_max, std::fabs(ws.absv[j].d[k]));
      }
  }
  std::vector<double> mu(static_cast<size_t>(n_times));
  std::vector<char> done(static_cast<size_t>(n_times), 0);
  int64_t remaining = n_times;
  double mu_max = 0.0;
  for (int64_t i = 0; i < n_times; ++i) {
    mu[i] = lambda * times[i];
    mu_max = std::max(mu_max, mu[i]);
  }
  const double step_cap = std::min(4.0 * mu_max + 1e6, kMaxSteps + 1.0);
  std::vector<T> v(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  int32_t lo = n, hi = -1;    // window of v's nonzero entries
  int32_t slo = n, shi = -1;  // rows of `next` that may hold stale values
  double prev_mag = 0.0;
  for (int32_t q = 0; q < n; ++q) {
    v[q] = ws.alpha[L.u_tidx[q]];
    prev_mag += magnitude(v[q]);
    if (!is_zero(v[q])) {
      lo = std::min(lo, q);
      hi = q;
    }
  }
  double log_scale = 0.0;  // v = exp(-log_scale) * alpha P^step
  constexpr double kRel = 1e-10, kTanAbs = 1e-13;
  for (int64_t step = 0; remaining > 0; ++step) {
    if (static_cast<double>(step) > step_cap) {
      if (step_cap > kMaxSteps) too_stiff(lambda, mu_max / lambda);
      bad("uniformization did not converge within " + num(step_cap) + " steps");
    }
    T c = 0.0;
    for (int32_t q = lo; q <= hi; ++q) fma_into(c, v[q], absq[q]);
    // Rows that can be nonzero, and stale ones (they compute to 0).
    const int32_t ra = lo <= hi ? std::min({lo, L.reach_lo[lo], slo}) : slo;
    const int32_t rb = lo <= hi ? std::max({hi, L.reach_hi[hi], shi}) : shi;
    for (int32_t q = ra; q <= rb; ++q) {
      T x = diag[q] * v[q];
      for (int64_t e = L.in_ptr[q]; e < L.in_ptr[q + 1]; ++e) fma_into(x, pu[e], v[L.in_src[e]]);
      next[q] = x;
    }
    VecSize size = flush_and_measure(next.data() + std::max(ra, 0), next.data() + rb + 1,
                                     kFlushRel * prev_mag);
    // Bounds on every later term (n = step + 1 onwards), in units of exp(log_scale):
    // c_m <= smax * mass (P is substochastic), and since dv_(n+k) = dv_(n+k-1) P +
    // v_(n+k-1) dP, |dv_(n+k)|_1 <= |dv_n|_1 + k dp_max mass, so |dc_(n+k)| <= A + k B.
    const double mass = size.mass, dv1 = std::max(0.0, size.mag - size.mass);
    const double val_bound = smax * mass;
    const double A = smax * dv1 + mass * ds_max, B = smax * dp_max * mass;
    const LogPoisson log_pois(static_cast<double>(step));
    const bool c_zero = is_zero(c);
    for (int64_t i = 0; i < n_times; ++i) {
      if (done[i]) continue;
      Scaled<T>& o = out[i];
      if (mu[i] == 0.0) {  // t = 0: the series is c_0 alone
        if (!c_zero) {
          o.ls = log_scale;
          o.acc = c;
        }
        done[i] = 1;
        --remaining;
        continue;
      }
      const double lw = log_pois(mu[i]) + log_scale;
      double lx = o.ls == kNegInf ? 0.0 : lw - o.ls;  // log of this term's weight in acc units
      if (!c_zero) {
        if (o.ls == kNegInf || lx > 300.0) {  // first term, or keep acc in range
          if (o.ls != kNegInf) o.acc *= std::exp(-lx);
          o.ls = lw;
          lx = 0.0;
        }
        fma_into(o.acc, c, std::exp(lx));
      }
      const double m1 = static_cast<double>(step + 1);
      if (!(m1 + 1.0 > mu[i])) continue;  // before the Poisson mode: no geometric tail bound
      // sum_{m > step} Pois(m) <= Pois(step) q and sum_k k Pois(n+k) <= Pois(step) q r/(1-r).
      const double r = mu[i] / (m1 + 1.0);
      const double q = mu[i] / m1 / (1.0 - r);
      const double verr = q * val_bound;
      const double terr = q * (A + B * r / (1.0 - r));
      const double f = value(o.acc), g = max_tangent(o.acc);
      bool ok;
      if (o.ls == kNegInf) {
        ok = verr == 0.0 && terr == 0.0;  // nothing so far and nothing can follow
      } else if (lx > -700.0 && lx < 700.0) {
        const double x = std::exp(lx);
        ok = x * verr <= kRel * f && (N == 0 || x * terr <= kRel * g || x * terr <= kTanAbs * f);
      } else {  // the weight is out of double range relative to acc: compare logs
        ok = lx + safe_log(verr) <= std::log(kRel) + safe_log(f) &&
             (N == 0 || lx + safe_log(terr) <= std::log(kRel) + safe_log(g) ||
              lx + safe_log(terr) <= std::log(kTanAbs) + safe_log(f));
      }
      if (ok) {
        done[i] = 1;
        --remaining;
      }
    }
    rescale(next, size, log_scale);
    prev_mag = size.mag;
    slo = lo;
    shi = hi;
    lo = ra;
    hi = rb;
    trim_window(next.data(), lo, hi);
    v.swap(next);
  }
}

// Rows a..b of one piecewise step: nxt = cur P (entries of magnitude below 1e-60
// dropped), c += cur . s, and z += w_end cur when w_end != 0. out: kept value mass,
// kept magnitude, dropped value mass, dropped derivative mass.
template <class T>
void piece_rows(int32_t a, int32_t b, const T* __restrict cur, T* __restrict nxt,
                T* __restrict z, double w_end, const T* __restrict diag,
                const T* __restrict absq, const T* __restrict pu,
                const int64_t* __restrict in_ptr, const int32_t* __restrict in_src, T& c,
                double* __restrict out) {
  constexpr double kFlush = 1e-60;
  double mass = 0.0, mag = 0.0, lost_m = 0.0, lost_g = 0.0;
  c = 0.0;
  for (int32_t q = a; q <= b; ++q) {
    const T& vq = cur[q];
    fma_into(c, vq, absq[q]);
    if (w_end != 0.0) fma_into(z[q], vq, w_end);
    T x = diag[q] * vq;
    for (int64_t e = in_ptr[q]; e < in_ptr[q + 1]; ++e) fma_into(x, pu[e], cur[in_src[e]]);
    const double m = magnitude(x);
    if (m != 0.0 && m < kFlush) {
      lost_m += value(x);
      lost_g += m - std::fabs(value(x));
      x = T(0.0);
    } else {
      mass += value(x);
      mag += m;
    }
    nxt[q] = x;
  }
  out[0] = mass;
  out[1] = mag;
  out[2] = lost_m;
  out[3] = lost_g;
}

// Continuous, acyclic graphs: piecewise uniformization, for the density alone (T =
// double) or with its derivatives (T = Dual). Mass only moves forward in the Layout
// numbering (topological for acyclic graphs), so once the vector is zero below index
// lo, exp(S dt) only involves states >= lo and a piece of time can use the largest
// exit rate among them (a suffix maximum) instead of the global one, held constant in
// theta (any rate at least the exit rates gives the same exp(S dt), so only P carries
// derivatives). Coalescent-like graphs lose their fast states early, so later pieces
// need far fewer steps. A piece spans kPieceSteps steps' worth of time (doubling while
// the rate does not drop) or up to the last requested time; it sums u P^n once for
// every requested time inside it and as the vector at its end, which starts the next.
//
// It works unscaled (values are probabilities) and bounds everything it neglects in
// L1, values and derivatives apart: entries dropped at the front of a piece or flushed
// below 1e-60, and the Poisson tail of each end vector. Neglected value mass m and
// derivative mass g (summed over directions) change a later density at time t by at
// most smax m, and its derivatives by at most smax g + m (ds_max + t smax dS_max)
// (d/dtheta of m e^{S tau} s, |dS| the row sums of the derivatives of S). A piece's
// times stop by the per-time bounds of `uniformized` held to 1e-11; after each piece
// its times are checked against what was neglected until their series were complete
// (5e-11 of the value, and of the largest partial or 5e-14 of the value). `strict` (the scaled
// kernels) also refuses densities below 1e-280, where unscaled arithmetic may have
// underflowed; otherwise (the plain pdf) an error within 1e-21 of the largest density
// is accepted, as in continuous_distribution. Returns false when a check fails or a
// series does not converge: the single sweep then runs instead.
//
// Steps are cut into fixed chunks of rows whose partial sums are added in chunk order,
// so results do not depend on the team size; big graphs run each piece on a team.
template <class T>
bool piecewise_scaled(const Structure& s, const Workspace<T>& ws, const double* times,
                      int64_t n_times, bool strict, Scaled<T>* out) {
  constexpr int N = Tangents<T>::n;
  constexpr double kPieceSteps = 64.0, kLoss = 1e-24;
  constexpr double kRel = 1e-11, kTanAbs = 1e-14, kCheck = 5e-11, kCheckTan = 5e-14;
  constexpr int32_t kChunk = 256;
  const Layout& L = s.layout;
  const int32_t n = s.n;
  if (!s.acyclic || s.discrete || n == 0 || n_times == 0) return false;
  const size_t nnz = L.in_src.size();
  // Per row q (gather order): suffix maxima of the exit rate and of the row sums of
  // |dS|; absorption rates; the starting vector.
  std::vector<double> gm(static_cast<size_t>(n)), dsm(static_cast<size_t>(n));
  std::vector<T> absq(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  double smax = 0.0, ds_max = 0.0;
  int32_t lo = n, hi = -1;  // window of the current vector's nonzero entries
  for (int32_t q = 0; q < n; ++q) {
    const int32_t j = L.u_tidx[q];
    gm[q] = value(ws.lam[j]);
    absq[q] = ws.absv[j];
    smax = std::max(smax, value(absq[q]));
    v[q] = ws.alpha[j];
    if (!is_zero(v[q])) {
      lo = std::min(lo, q);
      hi = q;
    }
    dsm[q] = 0.0;
    if constexpr (N > 0) {
      for (int k = 0; k < N; ++k) {
        double row = std::fabs(ws.lam[j].d[k]);
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          row += std::fabs(ws.w[s.off_tt + e].d[k]);
        dsm[q] = std::max(dsm[q], row);
        ds_max = std::max(ds_max, std::fabs(absq[q].d[k]));
      }
    }
  }
  for (int32_t q = n - 2; q >= 0; --q) {
    gm[q] = std::max(gm[q], gm[q + 1]);
    dsm[q] = std::max(dsm[q], dsm[q + 1]);
  }
  std::vector<int64_t> idx(static_cast<size_t>(n_times));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return times[a] < times[b]; });
  const double t_last = times[idx.back()];
  // Short sweeps (lambda t_max below ~400 steps) are cheaper in one piece: each cut
  // costs a Poisson tail (measured: Kingman n = 10 at t <= 5, 225 steps, 0.18 ms in
  // one sweep, 0.22 ms piecewise; n = 15, 525 steps, 0.72 vs 0.66 ms).
  if (!(smax > 0.0) || lo > hi || gm[lo] * t_last < 400.0) return false;
  // Effect of one unit of neglected magnitude on any later density or derivative.
  const double reach = smax * (1.0 + t_last * dsm[0]) + ds_max;

  std::vector<T> next(static_cast<size_t>(n)), zv(static_cast<size_t>(n)), pu(nnz);
  std::vector<T> diag(static_cast<size_t>(n)), acc(static_cast<size_t>(n_times));
  std::vector<double> tmu(static_cast<size_t>(n_times));
  std::vector<char> tdone(static_cast<size_t>(n_times));
  // Neglected value and derivative mass when each time's series was complete: what
  // is neglected later in its piece cannot reach it.
  std::vector<double> tlost_m(static_cast<size_t>(n_times)), tlost_g(static_cast<size_t>(n_times));
  T* cur = v.data();
  T* nxt = next.data();
  T* z = zv.data();
  const int64_t* in_ptr = L.in_ptr.data();
  const int32_t* in_src = L.in_src.data();
  const int64_t n_chunks = (static_cast<int64_t>(n) + kChunk - 1) / kChunk;
  std::vector<T> part_c(static_cast<size_t>(n_chunks));
  std::vector<double> part(static_cast<size_t>(4 * n_chunks));
  const double row_cost = (static_cast<double>(nnz) + n) / n * (N + 1);
  const int team = sweep_team(row_cost * n);
  const SweepTimer timer(team, row_cost * n);
  double rows_done = 0.0;
  double lost_m = 0.0, lost_g = 0.0;  // neglected value and derivative mass so far
  T last = 0.0;                       // density at the start of the next piece
  for (int32_t q = lo; q <= hi; ++q) fma_into(last, cur[q], absq[q]);
  double max_f = value(last), lambda_set = -1.0;
  int32_t slo = n, shi = -1;  // rows of nxt that may be nonzero
  int64_t total_steps = 0;
  bool stiff = false;

  // Whether time i is within the checks, its series complete with lm and lg neglected.
  auto within = [&](int64_t i, double lm, double lg) {
    const double f = value(acc[i]), g = max_tangent(acc[i]);
    const double em = smax * lm;
    const double eg = smax * lg + lm * (ds_max + times[i] * smax * dsm[0]);
    if (!strict) return em <= kCheck * f || em <= 1e-21 * max_f || em < 1e-300;
    if (f < 1e-280 && times[i] > 0.0) return false;  // may have underflowed
    return em <= kCheck * f && (N == 0 || eg <= kCheck * g || eg <= kCheckTan * f);
  };

  // The piece [t_a, t_end] at rate lambda: the series of the requested times
  // idx[first, last) into acc, the density at t_end into sp_end, the vector at t_end
  // into cur, the bounds on its neglected tail into tail_m and tail_g (they reach
  // later pieces only). False: a series did not converge within the step caps.
  auto piece = [&](double t_a, double t_end, double lambda, size_t first, size_t last_k,
                   T& sp_end, double& tail_m, double& tail_g) -> bool {
    const double inv = 1.0 / lambda;
    if (lambda != lambda_set) {  // P = I + S / lambda, in gather order
      for (size_t k = 0; k < nnz; ++k) pu[k] = ws.w[L.in_edge[k]] * inv;
      for (int32_t q = 0; q < n; ++q) diag[q] = clamp_value(1.0 - ws.lam[L.u_tidx[q]] * inv);
      lambda_set = lambda;
    }
    const double dp_max = dsm[lo] * inv;
    for (size_t k = first; k < last_k; ++k) {
      const int64_t i = idx[k];
      tmu[i] = lambda * (times[i] - t_a);
      tdone[i] = 0;
      acc[i] = 0.0;
    }
    size_t remaining = last_k - first;
    const double mu = lambda * (t_end - t_a);
    const double step_cap = 4.0 * mu + 1e6;
    const int32_t zlo = lo;
    int32_t zhi = hi;
    // Rows of this step: the window, what it reaches, and nxt's stale rows.
    int32_t ra = std::min(lo, slo), rb = std::max({hi, L.reach_hi[hi], shi});
    double w_end = std::exp(-mu);
    int64_t step = 0;
    bool end_done = false, finished = false, failed = false;
    sp_end = 0.0;
#pragma omp parallel num_threads(team) if (team > 1)
    while (!finished) {
      const int64_t c0 = ra / kChunk, c1 = rb / kChunk;
#pragma omp for schedule(static)
      for (int64_t ck = c0; ck <= c1; ++ck)
        piece_rows(std::max<int32_t>(ra, static_cast<int32_t>(ck * kChunk)),
                   std::min<int32_t>(rb, static_cast<int32_t>(ck * kChunk + kChunk - 1)), cur,
                   nxt, z, w_end, diag.data(), absq.data(), pu.data(), in_ptr, in_src,
                   part_c[ck - c0], part.data() + 4 * (ck - c0));
#pragma omp single
      {
        rows_done += rb - ra + 1;
        T c = 0.0;
        double mass = 0.0, mag = 0.0;
        for (int64_t ck = c0; ck <= c1; ++ck) {
          const double* p = part.data() + 4 * (ck - c0);
          c += part_c[ck - c0];
          mass += p[0];
          mag += p[1];
          lost_m += p[2];
          lost_g += p[3];
        }
        if (!end_done) {
          fma_into(sp_end, c, w_end);
          zhi = std::max(zhi, hi);
        }
        // Bounds on every later term, as in `uniformized`: c_m <= smax mass and
        // |dc_(n+k)| <= A + k B.
        const double dv1 = std::max(0.0, mag - mass);
        const double A = smax * dv1 + mass * ds_max, B = smax * dp_max * mass;
        const double m1 = static_cast<double>(step + 1);
        const LogPoisson log_pois(static_cast<double>(step));
        for (size_t k = first; k < last_k; ++k) {
          const int64_t i = idx[k];
          if (tdone[i]) continue;
          // A time so close to t_a that lambda (t - t_a) underflows is the series' first term.
          const double w = tmu[i] > 0.0 ? std::exp(log_pois(tmu[i])) : (step == 0 ? 1.0 : 0.0);
          fma_into(acc[i], c, w);
          if (!(m1 + 1.0 > tmu[i])) continue;  // before the mode: no geometric bound
          // sum_{m > step} Pois(m) <= Pois(step) q, q = mu / m1 / (1 - r).
          const double r = tmu[i] / (m1 + 1.0), qt = w * tmu[i] / m1 / (1.0 - r);
          const double verr = qt * smax * mass, terr = qt * (A + B * r / (1.0 - r));
          const double f = value(acc[i]);
          const bool v_ok = verr <= kRel * f ||
                            (!strict && (verr <= 1e-22 * max_f || verr < 1e-300));
          if (v_ok && (N == 0 || terr <= kRel * max_tangent(acc[i]) || terr <= kTanAbs * f)) {
            tdone[i] = 1;
            --remaining;
            max_f = std::max(max_f, f);
            tlost_m[i] = lost_m;
            tlost_g[i] = lost_g;
          }
        }
        if (!end_done && m1 + 1.0 > mu) {
          // The end vector's neglected tail: value mass W mass, derivative mass
          // W (|dv|_1 + N dp_max mass r / (1 - r)); it reaches every later density.
          const double r = mu / (m1 + 1.0), W = w_end * mu / m1 / (1.0 - r);
          const double tm = W * mass, tg = W * (dv1 + N * dp_max * mass * r / (1.0 - r));
          if (smax * tg + tm * reach <= kLoss * std::max(value(sp_end), max_f)) {
            end_done = true;
            tail_m = tm;
            tail_g = tg;
          }
        }
        slo = lo;
        shi = hi;
        lo = ra;
        hi = rb;
        trim_window(nxt, lo, hi);
        std::swap(cur, nxt);
        ++step;
        if (lo > hi || (end_done && remaining == 0)) {  // empty: later terms are 0
          finished = true;
        } else if (static_cast<double>(step) > step_cap ||
                   static_cast<double>(++total_steps) > kMaxSteps) {
          stiff = static_cast<double>(total_steps) > kMaxSteps;
          finished = failed = true;
        } else {
          ra = std::min(lo, slo);
          rb = std::max({hi, L.reach_hi[hi], shi});
          w_end = end_done ? 0.0 : std::exp(LogPoisson(static_cast<double>(step))(mu));
        }
      }
    }
    if (failed) return false;
    for (size_t k = first; k < last_k; ++k) {  // ended early by an empty vector
      const int64_t i = idx[k];
      if (!tdone[i]) {
        tlost_m[i] = lost_m;
        tlost_g[i] = lost_g;
      }
    }
    // The next piece starts from z; the two stepping buffers are cleared.
    std::fill(cur, cur + n, T(0.0));
    std::fill(nxt, nxt + n, T(0.0));
    std::swap(cur, z);
    slo = n;
    shi = -1;
    lo = zlo;
    hi = zhi;
    trim_window(cur, lo, hi);
    return true;
  };

  double t_prev = 0.0, last_lambda = 0.0, piece_steps = kPieceSteps;
  int64_t pieces = 0;
  size_t k = 0;  // next requested time (sorted)
  const size_t nt = static_cast<size_t>(n_times);
  while (k < nt) {
    if (times[idx[k]] <= t_prev) {  // t = 0 and repeats of a piece's end
      acc[idx[k]] = last;
      if (!within(idx[k++], lost_m, lost_g)) return false;
      continue;
    }
    // Drop front entries whose effect is at most kLoss of the last density.
    const double budget = kLoss * value(last) / reach;
    double dropped = 0.0;
    while (lo <= hi && dropped + magnitude(cur[lo]) <= budget) {
      dropped += magnitude(cur[lo]);
      lost_m += value(cur[lo]);
      lost_g += magnitude(cur[lo]) - std::fabs(value(cur[lo]));
      cur[lo++] = T(0.0);
    }
    if (lo > hi) {  // nothing left: every later density is 0
      for (; k < nt; ++k) {
        acc[idx[k]] = 0.0;
        if (!within(idx[k], lost_m, lost_g)) return false;
      }
      break;
    }
    const double lambda = gm[lo];
    // A cut costs one more Poisson tail; when the rate did not drop, the next piece is
    // twice as long, which bounds that overhead.
    piece_steps = pieces > 0 && !(lambda < last_lambda) ? 2.0 * piece_steps : kPieceSteps;
    last_lambda = lambda;
    double t_end = t_prev + piece_steps / lambda;
    if (!(t_end > t_prev && t_end < t_last) || ++pieces > 100000) t_end = t_last;
    size_t last_k = k;
    while (last_k < nt && times[idx[last_k]] <= t_end) ++last_k;
    T sp = 0.0;
    double tail_m = 0.0, tail_g = 0.0;
    if (!piece(t_prev, t_end, lambda, k, last_k, sp, tail_m, tail_g)) {
      // Past 2e6 steps even piecewise: one sweep at the largest rate needs more.
      if (stiff) too_stiff(gm[0], t_last);
      return false;
    }
    for (; k < last_k; ++k)
      if (!within(idx[k], tlost_m[idx[k]], tlost_g[idx[k]])) return false;
    lost_m += tail_m;
    lost_g += tail_g;
    t_prev = t_end;
    last = sp;
    max_f = std::max(max_f, value(sp));
  }
  timer.done(rows_done * row_cost);
  g_sweeps_piecewise.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < nt; ++i) {
    out[i].ls = is_zero(acc[i]) ? kNegInf : 0.0;
    out[i].acc = acc[i];
  }
  return true;
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
      factor(s, ws);
    } else {
      Workspace<double>& wd = workspace<double>();
      edge_weights(s, theta, plen, wd);
      factor(s, wd);
    }
  }
  if (s.discrete)
    discrete_scaled(s, ws, times, n_times, out.data());
  else if (!piecewise_scaled(s, ws, times, n_times, /*strict=*/true, out.data()))
    uniformized(s, ws, times, n_times, out.data());
}

// The density alone, piecewise (acyclic graphs); false: use the single sweep.
bool piecewise_pdf(const Structure& s, const Workspace<double>& ws, const double* times,
                   int64_t n_times, double* pdf) {
  std::vector<Scaled<double>> o(static_cast<size_t>(n_times));
  if (!piecewise_scaled(s, ws, times, n_times, /*strict=*/false, o.data())) return false;
  for (int64_t i = 0; i < n_times; ++i) pdf[i] = o[i].acc;  // unscaled: ls is 0 or -inf
  return true;
}

}  // namespace

namespace {

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
  if (s.n > 0 && !s.acyclic) factor(s, ws);
  if (s.discrete)
    discrete_distribution(s, ws, times, n_times, pdf, cdf);
  else if (cdf != nullptr || pdf == nullptr || !piecewise_pdf(s, ws, times, n_times, pdf))
    continuous_distribution(s, ws, times, n_times, pdf, cdf);
}

SweepCounts sweep_counts() {
  return {g_sweeps_piecewise.load(std::memory_order_relaxed),
          g_sweeps_single.load(std::memory_order_relaxed)};
}

double work_estimate(const Structure& s) {
  return static_cast<double>(s.n) + static_cast<double>(s.tt_dst.size()) +
         s.plan.work;
}

}  // namespace phasic
