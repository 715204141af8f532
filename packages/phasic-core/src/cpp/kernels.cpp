#include "kernels.hpp"

#include <algorithm>
#include <cmath>
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

// Scratch reused across calls on the same thread (XLA and OpenMP threads persist).
struct Workspace {
  std::vector<double> w;     // edge weights for this theta
  std::vector<double> lam;   // total out-weight per transient vertex
  std::vector<double> absv;  // weight of the edges into absorption per vertex
  std::vector<double> aelim; // absorption probability during elimination
  std::vector<double> vals;  // elimination slots
  std::vector<double> dinv;  // 1 / pivot per vertex
  std::vector<double> lvals, uvals;  // factors in plan order (contiguous for the solves)
  std::vector<double> alpha; // initial distribution over transient vertices
  std::vector<double> x, y, r;
  std::vector<std::vector<double>> q;
};
thread_local Workspace tls;

// Edge weights for theta, with every per-theta check on them.
void edge_weights(const Structure& s, const double* theta, int64_t plen, Workspace& ws) {
  if (plen != s.P)
    bad("theta has length " + std::to_string(plen) + " but the graph has " + std::to_string(s.P) +
        " parameter" + (s.P == 1 ? "" : "s") + " (param_length)");
  for (int64_t p = 0; p < plen; ++p)
    if (!std::isfinite(theta[p])) bad("theta[" + std::to_string(p) + "] is " + num(theta[p]));
  ws.w.resize(static_cast<size_t>(s.E));
  double* w = ws.w.data();
  const double* w0 = s.w0.data();
  bool ok = true;
  if (s.single_coef) {
    const int32_t* spar = s.spar.data();
    const double* sval = s.sval.data();
    for (int64_t p = 0; p < s.E; ++p) {
      const double x = w0[p] + (spar[p] >= 0 ? sval[p] * theta[spar[p]] : 0.0);
      ok &= (x >= 0.0) & (x <= std::numeric_limits<double>::max());
      w[p] = x;
    }
  } else {
    for (int64_t p = 0; p < s.E; ++p) {
      double x = w0[p];
      for (int64_t k = s.pcoef_ptr[p]; k < s.pcoef_ptr[p + 1]; ++k)
        x += s.pcoef_value[k] * theta[s.pcoef_param[k]];
      ok &= (x >= 0.0) & (x <= std::numeric_limits<double>::max());
      w[p] = x;
    }
  }
  if (!ok)
    for (int64_t p = 0; p < s.E; ++p)
      if (!(w[p] >= 0.0) || !std::isfinite(w[p])) {
        const int32_t e = s.eperm[p];
        bad("edge " + std::to_string(e) + " (vertex " + std::to_string(s.efrom[e]) +
            " \u2192 vertex " + std::to_string(s.eto[e]) + ") has weight " + num(w[p]) +
            " for this theta; weights must be finite and >= 0");
      }
  ws.alpha.assign(static_cast<size_t>(s.n), 0.0);
  double total = 0.0;
  for (size_t k = 0; k < s.alpha_edge.size(); ++k) {
    double a = w[k];
    total += a;
    if (s.alpha_t[k] >= 0) ws.alpha[s.alpha_t[k]] += a;
  }
  if (total > 1.0 + 1e-12)
    bad("the initial probabilities (edges out of vertex 0) sum to " + num(total) +
        " > 1 for this theta");
  ws.lam.resize(static_cast<size_t>(s.n));
  ws.absv.resize(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) {
    double a = 0.0, t = 0.0;
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k) a += w[s.off_ta + k];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) t += w[s.off_tt + k];
    ws.lam[j] = a + t;
    ws.absv[j] = a;
    if (s.discrete) {
      if (a + t > 1.0 + 1e-12)
        bad(s.vertex_string(s.tvert[j]) + " has out-probabilities summing to " + num(a + t) +
            " > 1 for this theta");
    } else if (!(a + t > 0.0)) {
      bad(s.vertex_string(s.tvert[j]) +
          " has total out-rate 0 for this theta, so it can never reach absorption");
    }
  }
}

double alpha_mass(const Workspace& ws) {
  double m = 0.0;
  for (double a : ws.alpha) m += a;
  return m;
}

// Numeric replay of the recorded elimination (GTH form: pivots are sums of
// non-negative terms, so there is no cancellation).
void factor(const Structure& s, Workspace& ws) {
  const int32_t n = s.n;
  ws.vals.assign(static_cast<size_t>(s.n_slots), 0.0);
  ws.dinv.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) {
    // Continuous: embedded chain p = rate / lambda. Discrete: the probabilities.
    const double scale = s.discrete ? 1.0 : 1.0 / ws.lam[j];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) ws.vals[k] = ws.w[s.off_tt + k] * scale;
  }
  ws.aelim.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) ws.aelim[j] = s.discrete ? ws.absv[j] : ws.absv[j] / ws.lam[j];
  double* vals = ws.vals.data();
  double* absv = ws.aelim.data();
  ws.lvals.resize(s.par_v.size());
  ws.uvals.resize(s.ch_v.size());
  double* lvals = ws.lvals.data();
  double* uvals = ws.uvals.data();
  for (int32_t step = 0; step < n; ++step) {
    const int32_t v = s.order[step];
    const int64_t c0 = s.ch_ptr[step], c1 = s.ch_ptr[step + 1];
    double pivot = absv[v];
    for (int64_t j = c0; j < c1; ++j) pivot += vals[s.ch_slot[j]];
    if (!(pivot > 1e-14))
      bad(s.vertex_string(s.tvert[v]) +
          " cannot reach absorption for this theta (its probability of ever leaving its "
          "closed class is " + num(pivot) + "); check for zero rates");
    const double d = 1.0 / pivot;
    ws.dinv[v] = d;
    const int64_t nch = c1 - c0;
    for (int64_t j = c0; j < c1; ++j) uvals[j] = vals[s.ch_slot[j]];
    int64_t op = s.op_ptr[step];
    for (int64_t i = s.par_ptr[step]; i < s.par_ptr[step + 1]; ++i) {
      const double l = vals[s.par_slot[i]] * d;
      lvals[i] = l;
      absv[s.par_v[i]] += l * absv[v];
      for (int64_t j = 0; j < nch; ++j, ++op) {
        const int32_t t = s.op_target[op];
        if (t >= 0) vals[t] += l * vals[s.ch_slot[c0 + j]];
      }
    }
  }
}

// Solves (I - P) x = b in place using the factorization in ws.
void solve(const Structure& s, const Workspace& ws, double* x) {
  const double* lvals = ws.lvals.data();
  const double* uvals = ws.uvals.data();
  const int32_t n = s.n;
  for (int32_t step = 0; step < n; ++step) {
    const double bv = x[s.order[step]];
    if (bv == 0.0) continue;
    for (int64_t i = s.par_ptr[step]; i < s.par_ptr[step + 1]; ++i)
      x[s.par_v[i]] += lvals[i] * bv;
  }
  for (int32_t step = n - 1; step >= 0; --step) {
    const int32_t v = s.order[step];
    double acc = x[v];
    for (int64_t j = s.ch_ptr[step]; j < s.ch_ptr[step + 1]; ++j)
      acc += uvals[j] * x[s.ch_v[j]];
    x[v] = acc * ws.dinv[v];
  }
}

double dot_alpha(const Workspace& ws, const double* x, int32_t n) {
  double acc = 0.0;
  for (int32_t j = 0; j < n; ++j) acc += ws.alpha[j] * x[j];
  return acc;
}

}  // namespace

void compute_moments(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t rewards_len, int64_t k, double* out) {
  if (k < 0) bad("nr_moments must be >= 0, got " + std::to_string(k));
  Workspace& ws = tls;
  edge_weights(s, theta, theta_len, ws);
  const int32_t n = s.n;
  ws.r.assign(static_cast<size_t>(n), 1.0);
  if (rewards != nullptr) {
    if (rewards_len != s.V)
      bad("rewards has length " + std::to_string(rewards_len) + " but the graph has " +
          std::to_string(s.V) + " vertices (one reward per vertex)");
    for (int64_t v = 0; v < s.V; ++v)
      if (!(rewards[v] >= 0.0) || !std::isfinite(rewards[v]))
        bad("rewards[" + std::to_string(v) + "] is " + num(rewards[v]) +
            "; rewards must be finite and >= 0");
    for (int32_t j = 0; j < n; ++j) ws.r[j] = rewards[s.tvert[j]];
  }
  if (k == 0) return;
  if (n == 0) {
    std::fill(out, out + k, 0.0);
    return;
  }
  factor(s, ws);
  ws.x.resize(static_cast<size_t>(n));
  double* x = ws.x.data();
  if (!s.discrete) {
    // y_i = U diag(r) y_{i-1}: one solve with b = (r / lambda) * y_{i-1}.
    ws.y.assign(static_cast<size_t>(n), 1.0);
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
  ws.q[0].assign(static_cast<size_t>(n), 1.0);
  std::vector<double> binom{1.0};
  for (int64_t kk = 1; kk <= k; ++kk) {
    std::vector<double> next(static_cast<size_t>(kk) + 1, 1.0);
    for (int64_t i = 1; i < kk; ++i) next[i] = binom[i - 1] + binom[i];
    binom.swap(next);
    for (int32_t j = 0; j < n; ++j) {
      double acc = 0.0, rp = ws.r[j];  // rp = r^(kk - i), i from kk-1 down to 0
      for (int64_t i = kk - 1; i >= 0; --i) {
        acc += binom[i] * rp * ws.q[i][j];
        rp *= ws.r[j];
      }
      x[j] = acc;
    }
    solve(s, ws, x);
    out[kk - 1] = dot_alpha(ws, x, n);
    if (kk < k) {
      std::vector<double>& q = ws.q[kk];
      q.resize(static_cast<size_t>(n));
      for (int32_t j = 0; j < n; ++j) {
        double acc = std::max(0.0, 1.0 - ws.lam[j]) * x[j];  // self-loop remainder
        for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e)
          acc += ws.w[s.off_tt + e] * x[s.tt_dst[e]];
        q[j] = acc;
      }
    }
  }
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
void discrete_distribution(const Structure& s, Workspace& ws, const double* times,
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

// Continuous: uniformization. c_n = alpha P^n s with P = I + S / lambda; the
// pdf is sum_n Pois(n; lambda t) c_n and the cdf is defect + sum_n Pois(n;
// lambda t) C_n, C_n = sum_{m<n} c_m / lambda. All terms are >= 0, so bounding the
// neglected Poisson tail bounds the relative error.
void continuous_distribution(const Structure& s, Workspace& ws, const double* times,
                             int64_t n_times, double* pdf, double* cdf) {
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
  std::vector<double> mu(static_cast<size_t>(n_times)), logmu(static_cast<size_t>(n_times));
  std::vector<char> done(static_cast<size_t>(n_times), 0);
  int64_t remaining = n_times;
  for (int64_t i = 0; i < n_times; ++i) {
    mu[i] = lambda * times[i];
    logmu[i] = mu[i] > 0 ? std::log(mu[i]) : 0.0;
  }
  // Transition probabilities of the uniformized chain.
  const double inv = 1.0 / lambda;
  std::vector<double> pu(s.tt_dst.size()), diag(static_cast<size_t>(n));
  for (size_t k = 0; k < s.tt_dst.size(); ++k) pu[k] = ws.w[s.off_tt + k] * inv;
  for (int32_t j = 0; j < n; ++j) diag[j] = std::max(0.0, 1.0 - ws.lam[j] * inv);
  std::vector<double> v(ws.alpha), next(static_cast<size_t>(n));
  double big_c = 0.0;   // C_n
  double lgam = 0.0;    // lgamma(n + 1)
  double max_pdf = 0.0;
  // Entries below kFlush are set to zero (they would otherwise decay through slow
  // subnormal arithmetic); the dropped mass changes the pdf by at most smax * dropped.
  constexpr double kFlush = 1e-60;
  double dropped = 0.0;
  double mu_max = 0.0;
  for (double m : mu) mu_max = std::max(mu_max, m);
  const double step_cap = 4.0 * mu_max + 1e6;
  for (int64_t step = 0; remaining > 0; ++step) {
    if (static_cast<double>(step) > step_cap)
      bad("uniformization did not converge within " + num(step_cap) + " steps");
    double c = 0.0, mass = 0.0;
    // Advance v to alpha P^(step+1), skipping rows with no mass, and measure its
    // mass, which bounds every later c.
    std::fill(next.begin(), next.end(), 0.0);
    for (int32_t j = 0; j < n; ++j) {
      const double vj = v[j];
      if (vj == 0.0) continue;
      c += vj * ws.absv[j];
      next[j] += vj * diag[j];
      for (int64_t e = s.tt_ptr[j]; e < s.tt_ptr[j + 1]; ++e) next[s.tt_dst[e]] += vj * pu[e];
    }
    for (int32_t j = 0; j < n; ++j) {
      if (next[j] < kFlush) {
        dropped += next[j];
        next[j] = 0.0;
      }
      mass += next[j];
    }
    v.swap(next);
    const double lgam_next = lgam + std::log(static_cast<double>(step + 1));
    for (int64_t i = 0; i < n_times; ++i) {
      if (done[i]) continue;
      double wgt, tail;
      if (mu[i] == 0.0) {
        wgt = step == 0 ? 1.0 : 0.0;
        tail = 0.0;
      } else {
        wgt = std::exp(-mu[i] + step * logmu[i] - lgam);
        const double m1 = static_cast<double>(step + 1);
        if (m1 + 1.0 > mu[i]) {
          const double next_w = std::exp(-mu[i] + m1 * logmu[i] - lgam_next);
          tail = next_w / (1.0 - mu[i] / (m1 + 1.0));
        } else {
          tail = 1.0;
        }
      }
      spdf[i] += wgt * c;
      scdf[i] += wgt * big_c;
      max_pdf = std::max(max_pdf, spdf[i]);
      // Truncation bounds; the flushed mass adds at most smax * dropped (< 1e-50).
      const double pdf_err = tail * smax * mass;
      const double cdf_err = tail * mass0;
      const bool pdf_ok = pdf_err <= 1e-10 * spdf[i] || pdf_err <= 1e-13 * max_pdf ||
                          pdf_err < 1e-300;
      const bool cdf_ok = cdf_err <= 1e-10 * (scdf[i] + defect) || cdf_err < 1e-300;
      if (pdf_ok && cdf_ok) {
        done[i] = 1;
        --remaining;
      }
    }
    big_c += c * inv;
    lgam = lgam_next;
  }
  for (int64_t i = 0; i < n_times; ++i) {
    if (pdf) pdf[i] = spdf[i];
    if (cdf) cdf[i] = std::min(1.0, defect + scdf[i]);
  }
}

}  // namespace

void compute_distribution(const Structure& s, const double* theta, int64_t theta_len,
                          const double* times, int64_t n_times, double* pdf, double* cdf) {
  Workspace& ws = tls;
  edge_weights(s, theta, theta_len, ws);
  check_times(s, times, n_times);
  if (n_times == 0) return;
  // Cheap structural sanity: the elimination pivots also detect closed classes.
  if (s.n > 0 && !s.acyclic) factor(s, ws);
  if (s.discrete)
    discrete_distribution(s, ws, times, n_times, pdf, cdf);
  else
    continuous_distribution(s, ws, times, n_times, pdf, cdf);
}

double work_estimate(const Structure& s) {
  return static_cast<double>(s.n) + static_cast<double>(s.tt_dst.size()) +
         static_cast<double>(s.op_target.size());
}

}  // namespace phasic
