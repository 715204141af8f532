// Per-time sums over a sweep's stored terms (internal to the kernels). A sweep
// records each step's term c_n once; each requested time then sums
// sum_n Pois(n; mu) c_n over a window around the Poisson mode instead of adding
// every step's term to every open time. One saddle-point weight per time (at the
// mode, poisson.hpp), the others from the recurrences w_(n+1) = w_n mu / (n + 1)
// and w_(n-1) = w_n n / mu (a few ulps per step: ~1e-13 over a window of 1,000
// steps), so there is no exp or log per term. The window's right end is the
// sweep's own rigorous tail bound, checked after each term; its left end neglects
// sum_(n<a) Pois(n) c_n <= Pois(a - 1) / (1 - (a - 1) / mu) max_(n<a) |c_n|
// (successive weights left of the mode shrink by at least (a - 1) / mu), held to
// 1e-14 of the partial sum, far below the sweeps' 1e-10 truncation bound.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dual.hpp"
#include "poisson.hpp"

namespace phasic {
namespace kernel {

// Step n of a sweep: its term c_n, and bounds on what follows it: the value mass
// and derivative mass (L1) of the vector after the step; cmax / tmax the largest
// value / partial of c_0 .. c_n (for the left tail); ls the log scale of c_n.
template <class T>
struct TermRecord {
  T c = 0.0;
  double ls = 0.0, mass = 0.0, dv1 = 0.0, cmax = 0.0, tmax = 0.0;
};

// Appends c with its bounds, carrying the running maxima.
template <class T>
void record_term(std::vector<TermRecord<T>>& rec, const T& c, double ls, double mass,
                 double dv1) {
  TermRecord<T> r;
  r.c = c;
  r.ls = ls;
  r.mass = mass;
  r.dv1 = dv1;
  r.cmax = std::fabs(value(c));
  r.tmax = max_tangent(c);
  if (!rec.empty()) {
    r.cmax = std::max(r.cmax, rec.back().cmax);
    r.tmax = std::max(r.tmax, rec.back().tmax);
  }
  rec.push_back(r);
}

// What bounds the terms after step n (as in the sweeps): c_m <= smax mass and
// |dc_(n+k)| <= A + k B, A = smax dv1 + mass ds_max, B = smax dp_max mass.
struct TailRates {
  double smax, ds_max, dp_max;
};

// Diagnostic (module.cpp: set_time_windows): false sums every time term by term from
// n = 0, as the sweeps did before the windows; tests compare the two.
extern std::atomic<bool> g_time_windows;
// Diagnostic (module.cpp: set_time_anchors): false keeps dense times off the shared
// anchors of time_anchors.hpp (each uses its own window).
extern std::atomic<bool> g_time_anchors;
// Diagnostic (module.cpp: set_anchor_vectors): false builds every anchor from the
// sweep's terms, never from its vectors (time_anchors.hpp: SweepVectors).
extern std::atomic<bool> g_anchor_vectors;

enum class WindowResult {
  kDone,  // acc holds the time's series, n_done the last term it needed
  kMore,  // the series needs steps not recorded yet
  kSlow,  // the weights leave double range: the caller sums term by term in logs
};

constexpr double kLeftRel = 1e-14, kLeftTanAbs = 1e-17;
// A window needing a weight below this (its series far below the terms' scale, where
// weights and bounds would underflow to 0) is summed in logs instead (kSlow).
constexpr double kTinyWeight = 1e-290;

// 1 / k for k = 0 .. count - 1 (k = 0 unused), per thread, grown on demand: the
// right walk's weights then need no division.
inline const double* reciprocals(int64_t count) {
  thread_local std::vector<double> r{0.0};
  for (int64_t k = static_cast<int64_t>(r.size()); k < count; ++k)
    r.push_back(1.0 / static_cast<double>(k));
  return r.data();
}

// The series of one time (mu = lambda t > 0) from terms rec[0 .. M) in units of one
// common scale; `empty`: the vector vanished after the last one (later terms are 0).
// ok(verr, terr, acc) is the sweep's stopping rule for a neglected value tail verr
// and derivative tail terr; vlimit(acc) the largest verr it can accept (a cheap
// necessary test that spares the exact one its division on most terms).
template <class T, class Ok, class VLimit>
WindowResult window_sum(const TermRecord<T>* rec, int64_t M, bool empty, double mu,
                        const TailRates& b, T& acc, int64_t& n_done, Ok&& ok,
                        VLimit&& vlimit) {
  int64_t m = static_cast<int64_t>(std::floor(mu));
  if (m > M - 1) {
    if (!empty) return WindowResult::kMore;
    m = M - 1;
  }
  const double wm = std::exp(LogPoisson(static_cast<double>(m))(mu));
  if (!(wm > 1e-280)) return WindowResult::kSlow;  // a mode past an emptied vector
  T a = 0.0;  // a local: stores through `acc` would alias the records
  fma_into(a, rec[m].c, wm);
  // Left of the mode, until what is left is negligible: the test
  // Pois(n - 1) / (1 - (n - 1) / mu) max|c| <= eps f, multiplied out (no division).
  const double inv_mu = 1.0 / mu;
  double w = wm;
  for (int64_t n = m; n > 0; --n) {
    const double wl = w * static_cast<double>(n) * inv_mu;  // Pois(n - 1)
    const double room = 1.0 - static_cast<double>(n - 1) * inv_mu;
    const TermRecord<T>& x = rec[n - 1];
    const double f = value(a);
    if (wl * x.cmax <= kLeftRel * f * room &&
        (Tangents<T>::n == 0 || wl * x.tmax <= kLeftRel * max_tangent(a) * room ||
         wl * x.tmax <= kLeftTanAbs * f * room))
      break;
    if (wl < kTinyWeight) return WindowResult::kSlow;
    w = wl;
    fma_into(a, x.c, w);
  }
  // Right of the mode, until the sweep's tail bound holds:
  // sum_{k > n} Pois(k) <= Pois(n) q and sum_j j Pois(n + j) <= Pois(n) q r / (1 - r),
  // r = mu / (m1 + 1), m1 = n + 1: q = Pois(n + 1) (m1 + 1) / d, r / (1 - r) = mu / d,
  // d = m1 + 1 - mu. Since q >= Pois(n + 1), the value bound is at least
  // Pois(n + 1) smax mass: the exact test runs only once that is within vlimit.
  const double* inv_k = reciprocals(M + 1);
  w = wm;
  for (int64_t n = m;; ++n) {
    const double m1 = static_cast<double>(n + 1);
    const double d = m1 + 1.0 - mu;
    const double wn = w * mu * inv_k[n + 1];  // Pois(n + 1)
    if (wn < kTinyWeight) return WindowResult::kSlow;
    const TermRecord<T>& x = rec[n];
    if (d > 0.0 && wn * b.smax * x.mass <= vlimit(a)) {
      const double q = wn * (m1 + 1.0) / d, rr = mu / d;
      const double A = b.smax * x.dv1 + x.mass * b.ds_max, B = b.smax * b.dp_max * x.mass;
      if (ok(q * b.smax * x.mass, q * (A + B * rr), a)) {
        acc = a;
        n_done = n;
        return WindowResult::kDone;
      }
    }
    if (n + 1 >= M) {
      acc = a;
      n_done = n;
      return empty ? WindowResult::kDone : WindowResult::kMore;
    }
    w = wn;
    fma_into(a, rec[n + 1].c, w);
  }
}

// The same series term by term from n = 0, each weight from its own saddle-point
// log (the sweeps' former per-step sums, in the same order): for the rare time whose
// mode lies far past an emptied vector, where the window's weights underflow.
template <class T, class Ok>
WindowResult replay_sum(const TermRecord<T>* rec, int64_t M, bool empty, double mu,
                        const TailRates& b, T& acc, int64_t& n_done, Ok&& ok) {
  acc = 0.0;
  for (int64_t n = 0; n < M; ++n) {
    const double w = std::exp(LogPoisson(static_cast<double>(n))(mu));
    fma_into(acc, rec[n].c, w);
    const double m1 = static_cast<double>(n + 1);
    if (!(m1 + 1.0 > mu)) continue;
    const double r = mu / (m1 + 1.0), q = w * mu / m1 / (1.0 - r);
    const TermRecord<T>& x = rec[n];
    const double A = b.smax * x.dv1 + x.mass * b.ds_max, B = b.smax * b.dp_max * x.mass;
    if (ok(q * b.smax * x.mass, q * (A + B * r / (1.0 - r)), acc)) {
      n_done = n;
      return WindowResult::kDone;
    }
  }
  n_done = M - 1;
  return empty ? WindowResult::kDone : WindowResult::kMore;
}

}  // namespace kernel
}  // namespace phasic
