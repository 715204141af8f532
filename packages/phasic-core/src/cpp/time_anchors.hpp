// Many observed times per unit of Poisson mean (internal to the kernels). When a
// sweep serves many times, each window of time_windows.hpp costs ~15 sqrt(mu) terms
// per time. Anchors share that work: the Poisson weights form a semigroup,
// Pois(.; mu_a + eps) = Pois(.; mu_a) * Pois(.; eps), so a time mu = mu_a + eps is
//
//   f(mu) = sum_m Pois(m; eps) G_a(m),   G_a(m) = sum_n Pois(n; mu_a) c_(n+m)
//         = e^-eps sum_m H_a(m) eps^m,   H_a(m) = G_a(m) / m!,
//
// with G_a(m) = x(mu_a) P^m s the density at the anchor shifted m steps. One window
// at each anchor mu_a = a delta (delta from 1 to 16, by how dense the times are) fills
// H_a(0..K); each of its times is then an exp and a Horner sum of up to K + 1 terms
// with positive coefficients (no cancellation in the values).
//
// Everything neglected is bounded, as in the windows: the anchor's own window cuts
// (left and right, the same bounds as window_sum, for every shift m <= K), and the
// Poisson tail beyond K, sum_(m>K) Pois(m; eps) G_a(m) <= P(Pois(delta) > K) smax
// |x_a|_1, with |x_a|_1 <= sum_n Pois(n; mu_a) |v_n|_1 summed in the same window
// (derivatives: |d G_a(m)| <= smax |dx_a|_1 + |x_a|_1 (ds_max + m smax dp_max)). A time
// is done when the sweep's own stopping rule accepts those bounds for its sum; any
// other time (far tails, where the bounds are not small next to its density) goes
// through its own window as before.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "per_theta.hpp"
#include "time_windows.hpp"

namespace phasic {
namespace kernel {

constexpr double kAnchorTail = 1e-15;   // P(Pois(eps) > K) at most this
constexpr double kAnchorRel = 1e-13;    // an anchor's window cuts, relative to its density
constexpr double kAnchorTanAbs = 1e-16;
constexpr int64_t kAnchorMinTimes = 3;  // at least this many times share an anchor
constexpr int kAnchorParts = 4;         // eps in quarter-steps of delta, each its own degree

// Anchors delta apart: the degree K_j for eps in the j-th quarter of [0, delta), and
// the largest tails beyond it over all eps < delta (they bound every time's sum).
struct AnchorShape {
  double delta = 1.0;
  int K[kAnchorParts] = {};
  double tail = 0.0;    // max_j P(Pois(eps_j) > K_j), eps_j the quarter's upper end
  double tail_m = 0.0;  // max_j sum_(m>K_j) m Pois(m; eps_j)
  std::vector<double> inv_fact;  // 1 / m!, m = 0..K_(last)

  explicit AnchorShape(double d) : delta(d) {
    for (int j = 0; j < kAnchorParts; ++j) {
      const double e = d * (j + 1) / kAnchorParts;
      int k = 0;
      while (tail_above(e, k) > kAnchorTail && k < 120) ++k;
      K[j] = k;
      tail = std::max(tail, tail_above(e, k));
      tail_m = std::max(tail_m, e * tail_above(e, k - 1));
    }
    inv_fact.assign(static_cast<size_t>(K[kAnchorParts - 1] + 1), 1.0);
    for (int m = 1; m <= K[kAnchorParts - 1]; ++m) inv_fact[m] = inv_fact[m - 1] / m;
  }
  int degree() const { return K[kAnchorParts - 1]; }

  // P(Pois(e) > k), summed directly (1 - cdf would lose the digits near 1e-15).
  static double tail_above(double e, int k) {
    double w = std::exp(-e), s = 0.0;
    for (int m = 1; m <= k; ++m) w *= e / m;
    for (int m = k + 1; m < k + 200 && w > 0.0; ++m) {
      w *= e / m;
      s += w;
    }
    return s;
  }
};

// The anchor spacings on offer, 1 to 16 steps of mu (anchor_times picks one per call).
inline const std::vector<AnchorShape>& anchor_shapes() {
  static const std::vector<AnchorShape> shapes{AnchorShape(1.0), AnchorShape(2.0),
                                               AnchorShape(4.0), AnchorShape(8.0),
                                               AnchorShape(16.0)};
  return shapes;
}

// The coefficients H_a(0..K) of one anchor and what its sum may miss for any eps in
// [0, delta): verr (values) and terr (derivatives), and the last record it read.
template <class T>
struct Anchor {
  std::vector<T> h;
  double verr = 0.0, terr = 0.0;
  int64_t n_last = 0;
};

// Fills `an` for mu_a >= 0 from records rec[0 .. M) (cs[n] = rec[n].c, padded with K + 1
// zeros); mass0 / dv0 are the value and derivative mass of the sweep's first vector.
// kMore: records past M are needed; kSlow: weights leave double range (no anchor).
template <class T>
WindowResult build_anchor(const TermRecord<T>* rec, const T* cs, int64_t M, bool empty,
                          double mu, double mass0, double dv0, const TailRates& b,
                          const AnchorShape& sh, Anchor<T>& an) {
  constexpr int N = Tangents<T>::n;
  const int K = sh.degree();
  an.h.assign(static_cast<size_t>(K + 1), T(0.0));
  T* g = an.h.data();
  // mass and derivative mass of v_n (rec[n - 1] measures the vector after step n - 1)
  auto mass_of = [&](int64_t n) { return n == 0 ? mass0 : rec[n - 1].mass; };
  auto dv_of = [&](int64_t n) { return n == 0 ? dv0 : rec[n - 1].dv1; };
  double xmass = 0.0, xdv = 0.0;  // sum_n Pois(n; mu) |v_n|_1 and |dv_n|_1 so far
  double el = 0.0, tl = 0.0;      // the left cut's bounds (values, derivatives)
  int64_t last = 0;               // the last record summed
  if (mu == 0.0) {  // Pois(.; 0) is the unit mass at 0: G(m) = c_m
    if (K > M - 1 && !empty) return WindowResult::kMore;
    for (int m = 0; m <= K; ++m) g[m] = cs[m];
    xmass = mass0;
    xdv = dv0;
    last = std::min<int64_t>(K, M - 1);
    an.verr = an.terr = 0.0;
  } else {
    const int64_t m0 = static_cast<int64_t>(std::floor(mu));
    if (m0 + K > M - 1 && !empty) return WindowResult::kMore;
    if (m0 > M - 1) return WindowResult::kSlow;  // a mode past the emptied vector
    const double wm = std::exp(LogPoisson(static_cast<double>(m0))(mu));
    if (!(wm > 1e-280)) return WindowResult::kSlow;
    auto add = [&](int64_t n, double w) {
      const T* c = cs + n;
      for (int m = 0; m <= K; ++m) fma_into(g[m], c[m], w);
      xmass += w * mass_of(n);
      xdv += w * dv_of(n);
    };
    add(m0, wm);
    // The anchor's densities: its times have f >= e^-delta G(0).
    const double shrink = std::exp(-sh.delta);
    const double inv_mu = 1.0 / mu;
    double w = wm, left_w = 0.0;  // left_w: the weights left of the cut, bounded
    for (int64_t n = m0; n > 0; --n) {
      const double wl = w * static_cast<double>(n) * inv_mu;  // Pois(n - 1)
      const double room = 1.0 - static_cast<double>(n - 1) * inv_mu;
      const TermRecord<T>& x = rec[std::min<int64_t>(n - 1 + K, M - 1)];
      const double f = value(g[0]) * shrink;
      const double vb = wl * x.cmax, tb = wl * x.tmax;
      if (vb <= kAnchorRel * f * room &&
          (N == 0 || tb <= kAnchorRel * max_tangent(g[0]) * room ||
           tb <= kAnchorTanAbs * f * room)) {
        el = vb / room;
        tl = tb / room;
        left_w = wl / room;
        break;
      }
      if (wl < kTinyWeight) return WindowResult::kSlow;
      w = wl;
      add(n - 1, w);
    }
    const double* inv_k = reciprocals(M + K + 2);
    w = wm;
    for (int64_t n = m0;; ++n) {
      // Every shift m <= K of the terms after n: c_(k + m) <= smax |v_(n+1)|_1 for k > n.
      const double m1 = static_cast<double>(n + 1);
      const double d = m1 + 1.0 - mu;
      const double wn = w * mu * inv_k[n + 1];  // Pois(n + 1)
      const TermRecord<T>& x = rec[std::min<int64_t>(n, M - 1)];
      const double mass = n < M ? x.mass : 0.0, dv1 = n < M ? x.dv1 : 0.0;
      if (d > 0.0) {
        const double q = wn * (m1 + 1.0) / d, rr = mu / d;
        const double A = b.smax * dv1 + mass * b.ds_max, B = b.smax * b.dp_max * mass;
        const double ve = el + q * b.smax * mass, te = tl + q * (A + B * (K + rr));
        const double f = value(g[0]) * shrink;
        if (ve <= kAnchorRel * f &&
            (N == 0 || te <= kAnchorRel * max_tangent(g[0]) || te <= kAnchorTanAbs * f)) {
          an.verr = ve;
          an.terr = te;
          xmass += (left_w + q) * mass0;
          xdv += (left_w + q) * dv0;
          last = std::min<int64_t>(n + K, M - 1);
          break;
        }
      }
      if (wn < kTinyWeight) return WindowResult::kSlow;
      if (n + 1 + K > M - 1 && !empty) return WindowResult::kMore;
      if (n + 1 > M - 1) {  // the vector emptied: every later term is 0
        an.verr = el;
        an.terr = tl;
        xmass += left_w * mass0;
        xdv += left_w * dv0;
        last = M - 1;
        break;
      }
      w = wn;
      add(n + 1, w);
    }
  }
  // The shifts beyond K, for any eps < delta.
  an.verr += sh.tail * b.smax * xmass;
  an.terr += sh.tail * (b.smax * xdv + xmass * b.ds_max) + sh.tail_m * b.smax * b.dp_max * xmass;
  for (int m = 0; m <= K; ++m) g[m] = g[m] * sh.inv_fact[m];
  an.n_last = last;
  return WindowResult::kDone;
}

// e^-eps sum_m h[m] eps^m (Horner, from the degree eps's quarter of delta needs).
template <class T>
T anchor_sum(const Anchor<T>& an, const AnchorShape& sh, double eps) {
  const T* h = an.h.data();
  const int part = std::min(kAnchorParts - 1, static_cast<int>(eps * kAnchorParts / sh.delta));
  int m = sh.K[part];
  T a = h[m];
  for (--m; m >= 0; --m) {
    a *= eps;
    a += h[m];
  }
  a *= std::exp(-eps);
  return a;
}

// Sums the times `open` (mu[i] >= 0) through anchors where at least kAnchorMinTimes
// share one; for each time an anchor's bounds satisfy ok(verr, terr, acc), done(i, acc,
// n_last) records it (and may still refuse it, e.g. a sum below the scale's range:
// false). The caller's own windows then skip the recorded times. Returns how many
// times the anchors served.
template <class T, class Ok, class Done>
int64_t anchor_times(const TermRecord<T>* rec, int64_t M, bool empty, double mass0, double dv0,
                     const TailRates& b, const double* mu, const std::vector<int64_t>& open,
                     Ok&& ok, Done&& done) {
  const int64_t count = static_cast<int64_t>(open.size());
  if (count < kAnchorMinTimes || M == 0) return 0;
  double mu_max = 0.0;
  for (int64_t i : open) mu_max = std::max(mu_max, mu[i]);
  // Instructions, as measured: an anchor costs ~5 (K + 1) per term of its window
  // (~15 sqrt(mu) + 10 + K terms), each of its times ~4 (K + 1) + 60 more; a time on
  // its own window ~14 per term. An anchor is built where its times save more than it
  // costs; the spacing whose anchors save the most is taken.
  auto width = [](double m) { return 15.0 * std::sqrt(m) + 10.0; };
  auto gain = [&](const AnchorShape& sh, double mu_a, int64_t times) {
    const double k1 = sh.degree() + 1.0, w = width(mu_a + 0.5 * sh.delta);
    return static_cast<double>(times) * (14.0 * w - 4.0 * k1 - 60.0) - 5.0 * k1 * (w + k1);
  };
  const AnchorShape* pick = nullptr;
  double best = 0.0;
  std::vector<int64_t> hist;
  for (const AnchorShape& sh : anchor_shapes()) {
    const double slots_d = std::floor(mu_max / sh.delta) + 1.0;
    if (slots_d > 8.0 * static_cast<double>(count) + 64.0) continue;  // sparse: no anchor pays
    const int64_t slots = static_cast<int64_t>(slots_d);
    hist.assign(static_cast<size_t>(slots), 0);
    for (int64_t i : open) ++hist[std::min<int64_t>(slots - 1, static_cast<int64_t>(mu[i] / sh.delta))];
    double total = 0.0;
    for (int64_t a = 0; a < slots; ++a)
      if (hist[a] >= kAnchorMinTimes) total += std::max(0.0, gain(sh, a * sh.delta, hist[a]));
    if (total > best) {
      best = total;
      pick = &sh;
    }
  }
  if (pick == nullptr) return 0;
  const AnchorShape& sh = *pick;
  const int64_t slots = static_cast<int64_t>(std::floor(mu_max / sh.delta)) + 1;
  // The times by anchor (a counting sort: no comparison sort per call).
  std::vector<int64_t> start(static_cast<size_t>(slots + 1), 0), order(static_cast<size_t>(count));
  auto slot_of = [&](int64_t i) {
    return std::min<int64_t>(slots - 1, static_cast<int64_t>(mu[i] / sh.delta));
  };
  for (int64_t i : open) ++start[slot_of(i) + 1];
  for (int64_t a = 0; a < slots; ++a) start[a + 1] += start[a];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i : open) order[fill[slot_of(i)]++] = i;
  }
  const int K = sh.degree();
  std::vector<T> cs(static_cast<size_t>(M + K + 1), T(0.0));
  for (int64_t n = 0; n < M; ++n) cs[n] = rec[n].c;
  int64_t served = 0;
  Anchor<T> an;
  for (int64_t a = 0; a < slots; ++a) {
    const int64_t times = start[a + 1] - start[a];
    const double mu_a = static_cast<double>(a) * sh.delta;
    if (times < kAnchorMinTimes || gain(sh, mu_a, times) <= 0.0) continue;
    if (build_anchor(rec, cs.data(), M, empty, mu_a, mass0, dv0, b, sh, an) != WindowResult::kDone)
      continue;
    for (int64_t k = start[a]; k < start[a + 1]; ++k) {
      const int64_t i = order[k];
      const T acc = anchor_sum(an, sh, mu[i] - mu_a);
      if (ok(an.verr, an.terr, acc) && done(i, acc, an.n_last)) ++served;
    }
  }
  g_anchored_times.fetch_add(served, std::memory_order_relaxed);
  return served;
}

}  // namespace kernel
}  // namespace phasic
