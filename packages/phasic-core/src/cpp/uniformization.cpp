// Uniformization in one sweep at the largest exit rate: the plain pdf/cdf kernel (a
// gather matvec in fixed row chunks, optionally on one OpenMP team) and the scaled
// kernel that serves derivatives and log-densities when the piecewise sweep cannot.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "poisson.hpp"
#include "sweeps.hpp"
#include "threads.hpp"
#include "time_anchors.hpp"
#include "time_windows.hpp"

namespace phasic {
namespace kernel {
namespace {

// Rows a..b of nxt = cur P (diagonal gd, in-edges gp from in_src), entries below 1e-150
// flushed (unscaled probabilities: kept entries times a transition probability stay
// far above the subnormal range, and densities near 1e-63, Kingman n >= 55 at small
// t, keep their terms); out[0] = sum cur . gs, out[1] = sum of the kept entries,
// out[2] = flushed.
void gather_rows(int32_t a, int32_t b, const double* __restrict cur, double* __restrict nxt,
                 const double* __restrict gd, const double* __restrict gs,
                 const double* __restrict gp, const int64_t* __restrict in_ptr,
                 const int32_t* __restrict in_src, double* __restrict out) {
  constexpr double kFlush = 1e-150;
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

}  // namespace

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
  const double defect = ws.defect;
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
  // Entries below 1e-150 are set to zero (gather_rows; they would otherwise decay
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
        // Truncation bounds; the flushed mass adds at most smax * dropped (< 1e-135).
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

// One time's series term by term in logs (o.ls, o.acc), each weight from its own
// saddle-point log plus the record's scale: for times whose terms span rescales of
// the vector, where one common unit does not fit. It resumes at term `from` (0: a
// fresh sum) and leaves `from` at M, so a time the sweep extends again costs its new
// terms only, not the whole series once more. True when complete.
template <class T>
bool scaled_replay(const TermRecord<T>* rec, int64_t M, bool empty, double mu,
                   const TailRates& b, double rel, double tan_abs, Scaled<T>& o,
                   int64_t& from) {
  constexpr int N = Tangents<T>::n;
  if (from == 0) o = Scaled<T>{};
  const int64_t first = from;
  from = M;
  for (int64_t n = first; n < M; ++n) {
    const TermRecord<T>& x = rec[n];
    const double lw = LogPoisson(static_cast<double>(n))(mu) + x.ls;
    double lx = o.ls == kNegInf ? 0.0 : lw - o.ls;  // log of this term's weight in acc units
    if (!is_zero(x.c)) {
      if (o.ls == kNegInf || lx > 300.0) {  // first term, or keep acc in range
        if (o.ls != kNegInf) o.acc *= std::exp(-lx);
        o.ls = lw;
        lx = 0.0;
      }
      fma_into(o.acc, x.c, std::exp(lx));
    }
    const double m1 = static_cast<double>(n + 1);
    if (!(m1 + 1.0 > mu)) continue;  // before the Poisson mode: no geometric tail bound
    const double r = mu / (m1 + 1.0);
    const double q = mu / m1 / (1.0 - r);
    const double A = b.smax * x.dv1 + x.mass * b.ds_max, B = b.smax * b.dp_max * x.mass;
    const double verr = q * b.smax * x.mass;
    const double terr = q * (A + B * r / (1.0 - r));
    const double f = value(o.acc), g = max_tangent(o.acc);
    bool ok;
    if (o.ls == kNegInf) {
      ok = verr == 0.0 && terr == 0.0;  // nothing so far and nothing can follow
    } else if (lx > -700.0 && lx < 700.0) {
      const double e = std::exp(lx);
      ok = e * verr <= rel * f && (N == 0 || e * terr <= rel * g || e * terr <= tan_abs * f);
    } else {  // the weight is out of double range relative to acc: compare logs
      ok = lx + safe_log(verr) <= std::log(rel) + safe_log(f) &&
           (N == 0 || lx + safe_log(terr) <= std::log(rel) + safe_log(g) ||
            lx + safe_log(terr) <= std::log(tan_abs) + safe_log(f));
    }
    if (ok) return true;
  }
  return empty;
}

// Continuous: uniformization with lambda fixed from the primal rates (any lambda >=
// the largest exit rate gives the same exp(S t), so only P = I + S / lambda carries
// derivatives). The truncation is rigorous for the values and the derivatives, and
// relative at every time (1e-12 of each series; 1e-10 guaranteed), however small the density.
template <class T>
void uniformized(const Structure& s, const Workspace<T>& ws, const double* times,
                 int64_t n_times, Scaled<T>* out) {
  constexpr int N = Tangents<T>::n;
  const int32_t n = s.n;
  bool any = false;  // (out holds Scaled{} on entry: a density 0 unless a sum says more)
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
  std::unique_ptr<double[]> mu(new double[n_times]);  // every entry is set below
  std::vector<char> done(static_cast<size_t>(n_times), 0), waiting(done);
  std::vector<int64_t> pending(static_cast<size_t>(n_times));  // the open times, in order
  for (int64_t i = 0; i < n_times; ++i) pending[i] = i;
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
  double prev_mag = 0.0, mass0 = 0.0;
  for (int32_t q = 0; q < n; ++q) {
    v[q] = ws.alpha[L.u_tidx[q]];
    prev_mag += magnitude(v[q]);
    mass0 += value(v[q]);
    if (!is_zero(v[q])) {
      lo = std::min(lo, q);
      hi = q;
    }
  }
  const double dv0 = std::max(0.0, prev_mag - mass0);  // the first vector's derivative mass
  double log_scale = 0.0;  // v = exp(-log_scale) * alpha P^step
  // Each series stops at 1e-12 of its partial sum (the guarantee is 1e-10; the margin
  // costs ~5% more terms and keeps the plain density as exact as its former per-step
  // sums, which ran on to the cdf's stricter bound).
  constexpr double kRel = 1e-12, kTanAbs = 1e-13;
  // Each step's term is recorded once; the times are summed from the records
  // (time_windows.hpp) when the steps reach `target`, and again later for any time
  // whose tail bound needed more steps.
  std::vector<TermRecord<T>> rec;
  // Records 0 .. S - 1 share the first one's unit (no rescale before them): windows and
  // anchors sum within them; a time that needs later records is summed in logs.
  const bool windows = g_time_windows.load(std::memory_order_relaxed);
  int64_t S = 0;
  double target = std::ceil(mu_max + 6.0 * std::sqrt(mu_max) + 8.0);
  const TailRates rates{smax, ds_max, dp_max};
  double rows_done = 0.0;
  auto ok = [&](double verr, double terr, const T& acc) {
    const double f = value(acc);
    return verr <= kRel * f &&
           (N == 0 || terr <= kRel * max_tangent(acc) || terr <= kTanAbs * f);
  };
  auto vlimit = [&](const T& acc) { return kRel * value(acc); };  // the largest verr ok takes
  std::vector<int64_t> replayed;  // terms each replay has summed (sized on the first replay)
  // A small graph keeps its vectors v_0 .. v_(S-1): anchors are then built from them
  // (time_anchors.hpp: SweepVectors), with K products by P instead of K + 1 sums per
  // window term.
  const size_t kept_cap = (size_t{64} << 20) / sizeof(T);  // 64 MB of vectors at most
  const double steps_guess = mu_max + 8.0 * std::sqrt(mu_max) + 80.0;
  bool keep = windows && g_anchor_vectors.load(std::memory_order_relaxed) &&
              n <= kAnchorVectorStates && n_times >= 32 &&
              n * steps_guess <= static_cast<double>(kept_cap);
  std::vector<T> kept, shifted;
  if (keep) kept.reserve(static_cast<size_t>(n * steps_guess));
  rec.reserve(static_cast<size_t>(std::min(steps_guess, 1e6)));  // no regrowth on the way
  SweepVectors<T> sv;
  sv.k = n;
  sv.nnz = static_cast<double>(nnz);
  sv.shifts = [&](std::vector<T>& x, T* g, int K) {
    shifted.resize(static_cast<size_t>(n));
    for (int m = 0;; ++m) {
      T c = 0.0;
      for (int32_t q = 0; q < n; ++q) fma_into(c, x[q], absq[q]);
      g[m] = c;
      if (m == K) break;
      for (int32_t q = 0; q < n; ++q) {
        T y = diag[q] * x[q];
        for (int64_t e = L.in_ptr[q]; e < L.in_ptr[q + 1]; ++e) fma_into(y, pu[e], x[L.in_src[e]]);
        shifted[q] = y;
      }
      x.swap(shifted);
    }
  };
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
    // Each row is measured (and flushed) as it is computed: one pass, not two.
    const double cut = kFlushRel * prev_mag;
    VecSize size;
    for (int32_t q = std::max(ra, 0); q <= rb; ++q) {
      T x = diag[q] * v[q];
      const int64_t e1 = L.in_ptr[q + 1];
      for (int64_t e = L.in_ptr[q]; e < e1; ++e) fma_into(x, pu[e], v[L.in_src[e]]);
      flush_or_measure(x, cut, size);
      next[q] = x;
    }
    // Bounds on every later term (n = step + 1 onwards), in units of exp(log_scale):
    // c_m <= smax * mass (P is substochastic), and since dv_(n+k) = dv_(n+k-1) P +
    // v_(n+k-1) dP, |dv_(n+k)|_1 <= |dv_n|_1 + k dp_max mass, so |dc_(n+k)| <= A + k B.
    record_term(rec, c, log_scale, size.mass, std::max(0.0, size.mag - size.mass));
    if (S == step && log_scale == rec[0].ls) {
      S = step + 1;
      if (keep && kept.size() + n > kept_cap) {  // a longer sweep than foreseen
        keep = false;
        std::vector<T>().swap(kept);
      }
      if (keep) {  // v_step, its stale rows outside [lo, hi] as 0
        const size_t at = kept.size();
        kept.resize(at + static_cast<size_t>(n));
        for (int32_t q = std::max(lo, 0); q <= hi; ++q) kept[at + q] = v[q];
      }
    }
    const bool empty = size.mag == 0.0;  // every later term is 0
    if (empty || static_cast<double>(step + 1) >= target) {
      const int64_t M = step + 1;
      const bool all = S == M;  // every record in one unit: `empty` holds for the first S
      // many times per unit of mu share anchors (time_anchors.hpp)
      if (windows && g_time_anchors.load(std::memory_order_relaxed)) {
        sv.v = kept.data();
        anchor_times(
            rec.data(), S, empty && all, mass0, dv0, rates, mu.get(), pending, mu_max,
            keep ? &sv : nullptr, ok, [&](int64_t i, const T& h, double eps, int64_t) {
              if (!(value(h) >= 1e-250)) return false;  // far below the scale: in logs
              out[i].ls = rec[0].ls - eps;  // the series is e^-eps h
              out[i].acc = h;
              done[i] = 1;
              return true;
            },
            [&](int64_t i) {  // its anchor needs later records: wait for them
              if (all && !empty) waiting[i] = 1;
            });
      }
      size_t kept_open = 0;  // pending, compacted in place to the times still open
      for (const int64_t i : pending) {
        if (done[i]) continue;
        if (waiting[i]) {  // the next round's anchors serve it
          waiting[i] = 0;
          pending[kept_open++] = i;
          continue;
        }
        Scaled<T>& o = out[i];
        bool complete = true;
        if (mu[i] == 0.0) {  // t = 0: the series is c_0 alone
          if (!is_zero(rec[0].c)) {
            o.ls = rec[0].ls;
            o.acc = rec[0].c;
          }
        } else {
          WindowResult res = WindowResult::kSlow;
          int64_t n_done = 0;
          T acc = 0.0;
          if (windows) {
            res = window_sum(rec.data(), S, empty && all, mu[i], rates, acc, n_done, ok, vlimit);
            if (res == WindowResult::kMore && !all) res = WindowResult::kSlow;
          }
          // Far below the scale's range the weighted terms may lose digits or underflow
          // to 0 (a sum that is 0 only because its terms were): in logs.
          const bool zero_terms = rec[n_done].cmax == 0.0 && rec[n_done].tmax == 0.0;
          if (res == WindowResult::kDone && !(value(acc) >= 1e-250) &&
              !(is_zero(acc) && zero_terms))
            res = WindowResult::kSlow;
          if (res == WindowResult::kDone) {
            o.ls = is_zero(acc) ? kNegInf : rec[0].ls;
            o.acc = acc;
          } else if (res == WindowResult::kSlow) {
            if (replayed.empty()) replayed.assign(static_cast<size_t>(n_times), 0);
            complete = scaled_replay(rec.data(), M, empty, mu[i], rates, kRel, kTanAbs, o,
                                     replayed[i]);
          } else {
            complete = false;
          }
        }
        if (complete)
          done[i] = 1;
        else
          pending[kept_open++] = i;
      }
      pending.resize(kept_open);
      remaining = static_cast<int64_t>(kept_open);
      // A standard deviation of the widest Poisson weight more for times still open.
      target = static_cast<double>(M) + std::max(16.0, std::ceil(std::sqrt(mu_max)));
    }
    rescale(next, size, log_scale);
    prev_mag = size.mag;
    slo = lo;
    shi = hi;
    lo = ra;
    hi = rb;
    trim_window(next.data(), lo, hi);
    v.swap(next);
    rows_done += std::max(0, rb - ra + 1);
  }
  g_sweep_madds.fetch_add(static_cast<int64_t>(rows_done * (nnz + static_cast<double>(n)) / n *
                                               (N + 1)),
                          std::memory_order_relaxed);
}

#define PHASIC_INSTANTIATE(T)                                                             \
  template void uniformized<T>(const Structure&, const Workspace<T>&, const double*, int64_t, \
                               Scaled<T>*);
PHASIC_EACH_SCALAR(PHASIC_INSTANTIATE)
#undef PHASIC_INSTANTIATE

}  // namespace kernel
}  // namespace phasic
