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
// H_a(0..K); each of its times is then a Horner sum of up to K + 1 terms with
// positive coefficients (no cancellation in the values) and the factor e^-eps, which
// a log-density keeps as a log (no exp per time).
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
#include <functional>
#include <memory>
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
static_assert(kAnchorParts == 4, "anchor_times finds an anchor's quarters by shifts of 2");
constexpr int32_t kAnchorVectorStates = 64;  // a sweep keeps its vectors up to this many states

// Anchors delta apart: the degree K_j for eps in the j-th quarter of [0, delta), and
// the largest tails beyond it over all eps < delta (they bound every time's sum).
struct AnchorShape {
  double delta = 1.0;
  int K[kAnchorParts] = {};
  double tail = 0.0;    // max_j P(Pois(eps_j) > K_j), eps_j the quarter's upper end
  double tail_m = 0.0;  // max_j sum_(m>K_j) m Pois(m; eps_j)
  double mean_terms = 0.0;  // the mean Horner length K_j + 1 over eps in [0, delta)
  // floor[j] = e^(-(j + 1) delta / kFloors): the least e^-eps over the j-th of kFloors
  // pieces of [0, delta), a factor at most e^(delta / kFloors) (1.3) below e^-eps
  static constexpr int kFloors = 64;
  double floor[kFloors] = {};
  std::vector<double> inv_fact;  // 1 / m!, m = 0..K_(last)

  explicit AnchorShape(double d) : delta(d) {
    for (int j = 0; j < kFloors; ++j) floor[j] = std::exp(-d * (j + 1) / kFloors);
    for (int j = 0; j < kAnchorParts; ++j) {
      const double e = d * (j + 1) / kAnchorParts;
      int k = 0;
      while (tail_above(e, k) > kAnchorTail && k < 120) ++k;
      K[j] = k;
      mean_terms += (k + 1.0) / kAnchorParts;
      tail = std::max(tail, tail_above(e, k));
      tail_m = std::max(tail_m, e * tail_above(e, k - 1));
    }
    inv_fact.assign(static_cast<size_t>(K[kAnchorParts - 1] + 1), 1.0);
    for (int m = 1; m <= K[kAnchorParts - 1]; ++m) inv_fact[m] = inv_fact[m - 1] / m;
  }
  int degree() const { return K[kAnchorParts - 1]; }
  // A lower bound on e^-eps for 0 <= eps < delta, within a factor 1.3.
  double floor_of(double eps) const {
    return floor[std::min(kFloors - 1, static_cast<int>(eps * (kFloors / delta)))];
  }

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

// The anchor spacings on offer, 1/4 to 16 steps of mu, each twice the one before
// (anchor_times picks one per call; the finer ones pay where anchors are cheap).
constexpr double kFinestDelta = 0.25;
inline const std::vector<AnchorShape>& anchor_shapes() {
  static const std::vector<AnchorShape> shapes = [] {
    std::vector<AnchorShape> v;
    for (double d = kFinestDelta; d <= 16.0; d *= 2.0) v.emplace_back(d);
    return v;
  }();
  return shapes;
}

// The coefficients H_a(0..K) of one anchor and what its sum may miss for any eps in
// [0, delta): verr (values) and terr (derivatives), and the last record it read.
template <class T>
struct Anchor {
  std::vector<T> h;
  std::vector<T> x;  // scratch: the anchor's vector x_a (from the sweep's vectors only)
  double verr = 0.0, terr = 0.0;
  int64_t n_last = 0;
};

// The sweep's own vectors, for graphs small enough to keep them: an anchor is then
// x_a = sum_n Pois(n; mu_a) v_n over the same window, and G_a(m) = x_a P^m s by K
// products with P (w k + (K + 1)(2 k + nnz) multiply-adds against w (K + 1) from the
// terms; the window, its cuts and its bounds are the same).
template <class T>
struct SweepVectors {
  const T* v = nullptr;  // v_n at v + n k, n < M, in the records' unit
  int32_t k = 0;         // entries per vector
  double nnz = 0.0;      // entries of P off its diagonal
  // g[m] = (x P^m) . s for m = 0..K; x may be overwritten
  std::function<void(std::vector<T>& x, T* g, int K)> shifts;
};

// Cycles to build one anchor with a window of w terms (as measured, Kingman graphs):
// from the terms ~1 per multiply-add and ~10 per window term for its weights and
// bounds; from the vectors (sv) ~25 per window term and ~2.5 per multiply-add of the K
// products by P. uses_vectors: sv is given and that is cheaper.
template <class T>
double anchor_cost(const SweepVectors<T>* sv, double w, int K, bool vectors) {
  const double k1 = K + 1.0;
  if (vectors) return 25.0 * w + 2.5 * k1 * (2.0 * sv->k + sv->nnz);
  return k1 * (w + 0.5 * k1) + 10.0 * w;
}
template <class T>
bool uses_vectors(const SweepVectors<T>* sv, double w, int K) {
  return sv != nullptr && anchor_cost(sv, w, K, true) < anchor_cost(sv, w, K, false);
}
template <class T>
double anchor_cost(const SweepVectors<T>* sv, double w, int K) {
  return anchor_cost(sv, w, K, uses_vectors(sv, w, K));
}

// Fills `an` for mu_a >= 0 from records rec[0 .. M) (cs[n] = rec[n].c, padded with K + 1
// zeros), or from the sweep's vectors when sv is given; mass0 / dv0 are the value and
// derivative mass of the sweep's first vector. kMore: records past M are needed;
// kSlow: weights leave double range (no anchor).
template <class T>
WindowResult build_anchor(const TermRecord<T>* rec, const T* cs, int64_t M, bool empty,
                          double mu, double mass0, double dv0, const TailRates& b,
                          const AnchorShape& sh, const SweepVectors<T>* sv, Anchor<T>& an) {
  constexpr int N = Tangents<T>::n;
  const int K = sh.degree();
  an.h.assign(static_cast<size_t>(K + 1), T(0.0));
  T* g = an.h.data();
  std::vector<T>& x = an.x;
  if (sv) x.assign(static_cast<size_t>(sv->k), T(0.0));
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
      if (sv) {  // g[0] alone steers the cuts; the shifts follow from x at the end
        const T* v = sv->v + n * sv->k;
        for (int32_t q = 0; q < sv->k; ++q) fma_into(x[q], v[q], w);
        fma_into(g[0], cs[n], w);
      } else {
        const T* c = cs + n;
        for (int m = 0; m <= K; ++m) fma_into(g[m], c[m], w);
      }
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
  if (sv && mu != 0.0) sv->shifts(x, g, K);
  // The shifts beyond K, for any eps < delta.
  an.verr += sh.tail * b.smax * xmass;
  an.terr += sh.tail * (b.smax * xdv + xmass * b.ds_max) + sh.tail_m * b.smax * b.dp_max * xmass;
  for (int m = 0; m <= K; ++m) g[m] = g[m] * sh.inv_fact[m];
  an.n_last = last;
  return WindowResult::kDone;
}

// Component c of x: its value (c = 0) or its partial c - 1.
template <class T>
inline double& component(T& x, int c) {
  if constexpr (Tangents<T>::n == 0)
    return x;
  else
    return c == 0 ? x.v : x.d[c - 1];
}

// out[t] = sum_(m <= K) h[m] eps[t]^m for count times (Horner). Eight times at once,
// component by component: each sum is a chain of dependent multiplies and adds, and
// eight chains (in pairs of SIMD lanes) keep the floating point units busy where one
// would wait on its own latency. The remaining times take the same operations one at
// a time, so every sum is bit for bit the same either way.
template <class T>
void horner_times(const T* h, int K, const double* eps, int64_t count, T* out) {
  constexpr int C = Tangents<T>::n + 1, W = 8;
  int64_t t = 0;
  for (; t + W <= count; t += W) {
    double e[W], a[C][W];
    for (int k = 0; k < W; ++k) e[k] = eps[t + k];
    for (int c = 0; c < C; ++c) {
      const double top = component(const_cast<T&>(h[K]), c);
      for (int k = 0; k < W; ++k) a[c][k] = top;
    }
    for (int m = K - 1; m >= 0; --m)
      for (int c = 0; c < C; ++c) {
        const double hm = component(const_cast<T&>(h[m]), c);
        for (int k = 0; k < W; ++k) a[c][k] = a[c][k] * e[k] + hm;
      }
    for (int k = 0; k < W; ++k)
      for (int c = 0; c < C; ++c) component(out[t + k], c) = a[c][k];
  }
  for (; t < count; ++t) {
    T a = h[K];
    for (int m = K - 1; m >= 0; --m) {
      a *= eps[t];
      a += h[m];
    }
    out[t] = a;
  }
}

// max_i mu[i] over `open` (its own function: inlined, the maximum was kept in memory,
// a store and a load per time).
[[gnu::noinline]] inline double largest_of(const double* mu, const std::vector<int64_t>& open) {
  double top = 0.0;
  for (int64_t i : open) top = mu[i] > top ? mu[i] : top;
  return top;
}

// Sums the times `open` (mu[i] >= 0) through anchors where at least kAnchorMinTimes
// share one; for each time an anchor's bounds satisfy ok(verr, terr, acc), done(i, h,
// eps, n_last) records its series e^-eps h (and may still refuse it: false). ok sees
// the series with e^-eps replaced by a lower bound (AnchorShape::floor_of), which can
// only make the test stricter. The caller's own windows then skip the recorded times.
// mu_max: at least every mu[i] of `open` (the caller's largest time will do). sv
// (nullable): build the anchors from the sweep's vectors. later(i) hears of each
// time whose anchor needs records past M (the caller may wait for them rather than
// sum it on its own window). Returns how many times the anchors served.
template <class T, class Ok, class Done, class Later>
int64_t anchor_times(const TermRecord<T>* rec, int64_t M, bool empty, double mass0, double dv0,
                     const TailRates& b, const double* mu, const std::vector<int64_t>& open,
                     double mu_max, const SweepVectors<T>* sv, Ok&& ok, Done&& done,
                     Later&& later) {
  const int64_t count = static_cast<int64_t>(open.size());
  if (count < kAnchorMinTimes || M == 0) return 0;
  const std::vector<AnchorShape>& shapes = anchor_shapes();
  // The finest spacing with at most one quarter of a slot per time (sparser, anchors
  // rarely pay, and the histograms below would cost more than the times); each time's
  // quarter there, whose halvings are its quarters at the coarser spacings.
  size_t first = 0;
  while (first < shapes.size() &&
         std::floor(mu_max / shapes[first].delta) + 1.0 > 0.25 * static_cast<double>(count) + 16.0)
    ++first;
  if (first == shapes.size()) return 0;
  // Slots of a quarter of the finest spacing (a power of 2: the slots are exact):
  // shifted right, they give every spacing's anchor (>> 2) and quarter (& 3).
  const double inv0 = kAnchorParts / shapes[first].delta;
  std::unique_ptr<int64_t[]> base(new int64_t[count]);  // (no zeroing: each is set)
  for (int64_t k = 0; k < count; ++k) base[k] = static_cast<int64_t>(mu[open[k]] * inv0);
  // Cycles, as measured: an anchor anchor_cost (with a window of ~15 sqrt(mu) + 10
  // terms), each of its times ~1.4 per Horner term and ~5 more; a time on its own
  // window ~7 per term. An anchor is built where its times save more than it costs;
  // the spacing whose anchors save the most is taken.
  auto width = [](double m) { return 15.0 * std::sqrt(m) + 10.0; };
  auto gain = [&](const AnchorShape& sh, double mu_a, int64_t times) {
    const double w = width(mu_a + 0.5 * sh.delta);
    return static_cast<double>(times) * (7.0 * w - 1.4 * sh.mean_terms - 5.0) -
           anchor_cost(sv, w, sh.degree());
  };
  size_t pick = shapes.size();
  double best = 0.0;
  // Times per quarter of the finest spacing; each coarser spacing's quarters are pairs
  // of the last one's (quarters[j]: spacing first + j), so one pass over the times
  // serves every spacing.
  std::vector<std::vector<int64_t>> quarters(1);
  quarters.reserve(shapes.size() - first + 1);
  quarters[0].assign(static_cast<size_t>(mu_max * inv0) + 1, 0);
  for (int64_t k = 0; k < count; ++k) ++quarters[0][base[k]];
  for (size_t j = first; j < shapes.size(); ++j) {
    const std::vector<int64_t>& q = quarters.back();
    if (j > first) {
      const std::vector<int64_t>& finer = quarters[quarters.size() - 2];
      quarters.back().assign((finer.size() + 1) / 2, 0);
      for (size_t a = 0; a < finer.size(); ++a) quarters.back()[a / 2] += finer[a];
    }
    double total = 0.0;
    for (size_t a = 0; a * kAnchorParts < q.size(); ++a) {
      int64_t times = 0;
      for (size_t i = a * kAnchorParts; i < std::min(q.size(), (a + 1) * kAnchorParts); ++i)
        times += q[i];
      if (times >= kAnchorMinTimes)
        total += std::max(0.0, gain(shapes[j], static_cast<double>(a) * shapes[j].delta, times));
    }
    if (total > best) {
      best = total;
      pick = j;
    }
    quarters.emplace_back();
  }
  if (pick == shapes.size()) return 0;
  const AnchorShape& sh = shapes[pick];
  const int shift = static_cast<int>(pick - first);
  // The times by quarter of an anchor's spacing (a counting sort: no comparison sort
  // per call); quarter 4 a + j holds anchor a's times of degree K[j].
  const std::vector<int64_t>& counts = quarters[pick - first];
  const int64_t slots = (static_cast<int64_t>(counts.size()) + kAnchorParts - 1) / kAnchorParts;
  std::vector<int64_t> start(static_cast<size_t>(slots * kAnchorParts + 1), 0);
  std::unique_ptr<int64_t[]> order(new int64_t[count]);
  for (size_t q = 0; q < counts.size(); ++q) start[q + 1] = start[q] + counts[q];
  for (size_t q = counts.size() + 1; q < start.size(); ++q) start[q] = start[q - 1];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < count; ++k) order[fill[base[k] >> shift]++] = open[k];
  }
  const int K = sh.degree();
  std::vector<T> cs(static_cast<size_t>(M + K + 1), T(0.0));
  for (int64_t n = 0; n < M; ++n) cs[n] = rec[n].c;
  int64_t served = 0;
  Anchor<T> an;
  std::vector<double> eps;
  std::vector<T> sums;
  for (int64_t a = 0; a < slots; ++a) {
    const int64_t first_time = start[a * kAnchorParts], end_time = start[(a + 1) * kAnchorParts];
    const int64_t times = end_time - first_time;
    const double mu_a = static_cast<double>(a) * sh.delta;
    if (times < kAnchorMinTimes || gain(sh, mu_a, times) <= 0.0) continue;
    const SweepVectors<T>* use =
        uses_vectors(sv, width(mu_a + 0.5 * sh.delta), K) ? sv : nullptr;
    const WindowResult built = build_anchor(rec, cs.data(), M, empty, mu_a, mass0, dv0, b, sh,
                                            use, an);
    if (built == WindowResult::kMore)
      for (int64_t k = first_time; k < end_time; ++k) later(order[k]);
    if (built != WindowResult::kDone) continue;
    // Every time of the anchor has a density of at least e^-delta G(0) (positive
    // terms): where ok accepts the anchor's bounds against that, it accepts them for
    // each time, and the per-time test is skipped.
    T least(0.0);
    component(least, 0) = value(an.h[0]) * sh.floor[AnchorShape::kFloors - 1];
    const bool all_ok = ok(an.verr, an.terr, least);
    // eps = mu - mu_a is exact (Sterbenz: mu_a <= mu < 2 mu_a, or mu_a = 0)
    eps.resize(static_cast<size_t>(times));
    sums.resize(static_cast<size_t>(times));
    for (int64_t k = 0; k < times; ++k) eps[k] = mu[order[first_time + k]] - mu_a;
    for (int j = 0; j < kAnchorParts; ++j) {
      const int64_t q0 = start[a * kAnchorParts + j] - first_time;
      const int64_t q1 = start[a * kAnchorParts + j + 1] - first_time;
      horner_times(an.h.data(), sh.K[j], eps.data() + q0, q1 - q0, sums.data() + q0);
    }
    for (int64_t k = 0; k < times; ++k) {
      const T& h = sums[k];
      if ((all_ok || ok(an.verr, an.terr, h * sh.floor_of(eps[k]))) &&
          done(order[first_time + k], h, eps[k], an.n_last))
        ++served;
    }
  }
  g_anchored_times.fetch_add(served, std::memory_order_relaxed);
  return served;
}

}  // namespace kernel
}  // namespace phasic
