// Per-theta machinery shared by every kernel family (internal to the kernels): the
// thread-local workspace, edge weights with their checks and derivative seeds, the
// blocks of derivative directions, time checks, and the step cap of the sweeps.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dual.hpp"
#include "structure.hpp"

namespace phasic {
namespace kernel {

[[noreturn]] inline void bad(const std::string& msg) { throw std::invalid_argument(msg); }

// x with 17 significant digits (every double reads back exactly).
std::string num(double x);

// 0 <= value <= most, or the error naming `name`, the range, the value and `why`
// the limit exists (check_nr_moments, check_mutation_kmax).
inline void check_range(const char* name, int64_t value, int64_t most, const char* why) {
  if (value < 0 || value > most)
    bad(std::string(name) + " must be between 0 and " + std::to_string(most) + ", got " +
        std::to_string(value) + " (" + why + ")");
}

// The index of the first of `count` values that is not finite, or whose D derivatives
// (row q of jac, when jac is given) are not all finite; -1 when every one is. The
// kernels' overflow checks word their own messages around it.
inline int64_t first_not_finite(const double* out, const double* jac, int64_t count, int64_t D) {
  for (int64_t q = 0; q < count; ++q) {
    bool ok = std::isfinite(out[q]);
    for (int64_t p = 0; ok && jac != nullptr && p < D; ++p) ok = std::isfinite(jac[q * D + p]);
    if (!ok) return q;
  }
  return -1;
}

// Uniformization takes about (largest exit rate) x t steps (fewer when the mass
// empties early). A sweep that passes kMaxSteps steps stops with this error instead
// of running for hours (a fuzzed rate of 1.9e19 at t = 1 never finished).
constexpr double kMaxSteps = 2e6;

// The "too stiff" error: about lambda x t_max steps would be needed.
[[noreturn]] void too_stiff(double lambda, double t_max);

// The start weights' sum at theta must be > 0 (they are normalized by it): throws
// naming theta and the fix otherwise, or when vertex 0 has no out-edge (n_start = 0).
void check_start_total(int64_t n_start, double total, const double* theta, int64_t plen);

// Calls the poll set_interrupt_poll() installed on this thread, if any (it may throw
// to abandon the call). Only from the calling thread, never in a parallel region.
void poll_interrupt();

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
  T defect = 0.0;        // the start weights' share into absorbing vertices (mass at T = 0)
  std::vector<T> x, y;
  std::vector<double> r;  // rewards do not depend on theta
  std::vector<std::vector<T>> q;
  std::vector<double> theta_ext;  // theta and a trailing 0 (edges without a coefficient)
  std::vector<T> fy, facc;        // fused moments: k moments per position, accumulators
  // Gather uniformization (Layout order): P entries, diagonal, absorption rates,
  // the two probability vectors, per-chunk partial sums.
  std::vector<double> gp, gd, gs, ga, gb, gpart;
};

// How many continuous sweeps ran piecewise and how many as one sweep at the largest
// rate (sweep_counts(): tests check which path served a call).
extern std::atomic<int64_t> g_sweeps_piecewise, g_sweeps_single;
// Multiply-adds of the steps of the scaled and piecewise sweeps (value and partials).
extern std::atomic<int64_t> g_sweep_madds;
// Observed times summed through anchors (time_anchors.hpp), for tests and benchmarks.
extern std::atomic<int64_t> g_anchored_times;

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

template <class T>
void derive_rates(const Structure& s, Workspace<T>& ws, const double* theta, int64_t plen);

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
  derive_rates(s, ws, theta, plen);
}

// From the edge weights in ws.w (by position): the initial distribution, the defect,
// each transient vertex's total out-weight and absorption weight, and their checks.
// theta (plen entries) only names the parameters in messages.
template <class T>
void derive_rates(const Structure& s, Workspace<T>& ws, const double* theta, int64_t plen) {
  const T* w = ws.w.data();
  // Start weights are relative: alpha_i = w_i / sum_j w_j over vertex 0's out-edges
  // (the alpha edges are positions 0..). Dividing in T carries the quotient rule.
  const int64_t n_start = static_cast<int64_t>(s.alpha_edge.size());
  T total = 0.0, to_absorbing = 0.0;
  for (int64_t k = 0; k < n_start; ++k) {
    total += w[k];
    if (s.alpha_t[k] < 0) to_absorbing += w[k];
  }
  check_start_total(n_start, value(total), theta, plen);
  const T inv = reciprocal(total);
  ws.alpha.assign(static_cast<size_t>(s.n), T(0.0));
  for (int64_t k = 0; k < n_start; ++k)
    if (s.alpha_t[k] >= 0) ws.alpha[s.alpha_t[k]] += w[k] * inv;
  ws.defect = to_absorbing * inv;
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

// Mass that starts in a transient vertex: 1 - ws.defect up to rounding.
template <class T>
T alpha_mass(const Workspace<T>& ws) {
  T m = 0.0;
  for (const T& a : ws.alpha) m += a;
  return m;
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

// Each time finite and >= 0; a discrete graph's times whole numbers of steps.
void check_times(const Structure& s, const double* times, int64_t n_times);

// Each of the R rows of V rewards finite and >= 0, V = s.V (covariance.cpp).
void check_reward_matrix(const Structure& s, const double* rewards, int64_t R, int64_t V);

// Replays the elimination for this theta: its pivots detect closed classes (moments.cpp).
void check_closed_classes(const Structure& s, Workspace<double>& ws);

// Factors I - P for the weights in ws (after edge_weights) into ws.lvals, ws.uvals and
// ws.dinv for lu_solve; throws naming a vertex that cannot reach absorption
// (moments.cpp, instantiated for every scalar type).
template <class T>
void factor_transient(const Structure& s, Workspace<T>& ws);

// The same factorization for edge probabilities and exit probabilities already in
// ws.vals and ws.aelim (ws.dinv sized; any chain of that shape, e.g. with extra exits).
template <class T>
void factor_loaded(const Structure& s, Workspace<T>& ws);

}  // namespace kernel
}  // namespace phasic
