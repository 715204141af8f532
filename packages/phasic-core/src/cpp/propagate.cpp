// propagate: the state of a continuous chain at given times from any start, with
// "layers" of reward moments stacked on it, and the adjoint of that linear map.
//
// Row vectors x_0..x_{L-1} over all vertices evolve by the block generator
//   x_0' = x_0 G,   x_j' = x_j G + x_{j-1} R   (R = diag(rewards), transient only),
// so x_j(t)[v] = E[Y_t^j / j!; X_t = v] for a start on layer 0 (Y_t = reward-weighted
// time up to t). Uniformization at the largest exit rate lambda: with P = I + G / lambda,
// z_{n+1,0} = z_{n,0} P and z_{n+1,j} = z_{n,j} P + z_{n,j-1} R / lambda, and
// x(t) = sum_n Pois(n; lambda t) z_n. Every matrix here is non-negative, so the sums have
// no cancellation; lambda is a constant, so dual numbers carry exact theta-derivatives.
//
// Truncation (layers >= 2). tau_{n,j} = |transient part of z_{n,j}|_1 and rho = r_max /
// lambda. P never increases an l1 norm and R / lambda lands on transient vertices, so
// tau_{n+d,j} <= sum_q C(d,q) rho^q tau_{n,j-q}. Stopping after term n and freezing
// the absorbed part of z_n for all later terms errs in layer j by at most
//   sum_{d>=1} Pois(n+d) sum_q C(d,q) rho^q tau_{n,j-q}
//   <= sum_q (r_max t)^q / q! tau_{n,j-q} P(N > n - q)
// (C(d,q) <= C(n+d,q) and Pois(m) C(m,q) = mu^q/q! Pois(m-q)); the Poisson tails are
// bounded by their geometric majorant once the terms shrink. Layer j stops below
// 1e-17 x min(a priori bound of |x_j(t)|_1, |start|_1). One layer is the state sweep
// itself (state_at_time.cpp), so L = 1 is exactly compute_state_at_time.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "poisson.hpp"
#include "state_step.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

constexpr double kTol = 1e-17;

// |value| + |derivatives| summed over the transient vertices.
template <class T>
double transient_magnitude(const Structure& s, const T* x) {
  double m = 0.0;
  for (int32_t j = 0; j < s.n; ++j) m += magnitude(x[s.tvert[j]]);
  return m;
}

// The uniformization rate: the largest exit rate (1 when nothing moves).
template <class T>
double uniform_rate(const Structure& s, const Workspace<T>& ws) {
  double lambda = 0.0;
  for (int32_t j = 0; j < s.n; ++j) lambda = std::max(lambda, value(ws.lam[j]));
  return lambda == 0.0 ? 1.0 : lambda;
}

template <class T>
std::vector<T> uniform_diag(const Structure& s, const Workspace<T>& ws, double lambda) {
  std::vector<T> diag(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) diag[j] = clamp_value(T(1.0) - ws.lam[j] * (1.0 / lambda));
  return diag;
}

// Mass on the starting vertex 0 leaves it at once by the initial distribution (the
// start edges, a defect included), layer by layer.
template <class T>
void hand_on_start(const Structure& s, const Workspace<T>& ws, int64_t layers, T* x) {
  const std::vector<T> pi = start_vector(s, ws);
  for (int64_t l = 0; l < layers; ++l) {
    T* xl = x + l * s.V;
    const T m = xl[0];
    if (is_zero(m)) continue;
    xl[0] = 0.0;
    for (int64_t v = 1; v < s.V; ++v)
      if (!is_zero(pi[v])) xl[v] += m * pi[v];
  }
}

// Bound on P(N > m), N ~ Pois(mu), from w_next = Pois(m + 1; mu): the later terms shrink
// by at least mu / (m + 2) each. Infinite while they do not yet shrink.
double poisson_tail(double mu, int64_t m, double w_next) {
  if (m < 0) return 1.0;
  if (mu == 0.0) return 0.0;
  const double ratio = mu / (static_cast<double>(m) + 2.0);
  return ratio < 1.0 ? w_next / (1.0 - ratio) : INFINITY;
}

// c[q] = (r_max t)^q / q!, q < layers.
std::vector<double> growth(double rt, int64_t layers) {
  std::vector<double> c(static_cast<size_t>(layers), 1.0);
  for (int64_t q = 1; q < layers; ++q) c[q] = c[q - 1] * rt / static_cast<double>(q);
  return c;
}

// Layered forward sweep, layers >= 2 (see the top of the file). prob: n_times x layers
// x V, acc: n_times x V (layer 0 on transient vertices, as compute_state_at_time).
template <class T>
void layered_states(const Structure& s, const Workspace<T>& ws, const double* rew,
                    int64_t layers, const T* start, const double* times, int64_t n_times,
                    T* prob, T* acc) {
  const std::vector<char> absorbing = absorbing_flags(s);
  const double lambda = uniform_rate(s, ws);
  const std::vector<T> diag = uniform_diag(s, ws, lambda);
  const int64_t V = s.V, LV = layers * V;
  std::vector<T> x(start, start + LV), y(static_cast<size_t>(LV));
  std::vector<T> p(static_cast<size_t>(n_times * LV), T(0.0)), a(static_cast<size_t>(n_times * V), T(0.0));
  double r_max = 0.0;
  std::vector<double> rl(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) {
    r_max = std::max(r_max, rew[j]);
    rl[j] = rew[j] / lambda;
  }
  std::vector<double> S(static_cast<size_t>(layers), 0.0);
  double S_tot = 0.0;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t v = 0; v < V; ++v) S[l] += std::fabs(value(x[l * V + v]));
    S_tot += S[l];
  }
  std::vector<double> mu(static_cast<size_t>(n_times)), cum(static_cast<size_t>(n_times), 0.0);
  std::vector<double> c(static_cast<size_t>(n_times * layers)), tol(static_cast<size_t>(n_times * layers));
  std::vector<double> hist(static_cast<size_t>(n_times * layers), 0.0);  // last weights, a ring
  std::vector<char> done(static_cast<size_t>(n_times), 0);
  double mu_max = 0.0;
  for (int64_t i = 0; i < n_times; ++i) {
    mu_max = std::max(mu_max, mu[i] = lambda * times[i]);
    const std::vector<double> ci = growth(r_max * times[i], layers);
    for (int64_t j = 0; j < layers; ++j) {
      double bound = 0.0;
      for (int64_t q = 0; q <= j; ++q) bound += ci[q] * S[j - q];
      c[i * layers + j] = ci[j];
      tol[i * layers + j] = kTol * std::min(bound, S_tot);
    }
  }
  std::vector<double> tau(static_cast<size_t>(layers)), tail(static_cast<size_t>(layers));
  int64_t remaining = n_times;
  for (int64_t n = 0; remaining > 0; ++n) {
    if (static_cast<double>(n) > kMaxSteps) too_stiff(lambda, mu_max / lambda);
    if (n % 4096 == 0) poll_interrupt();
    bool empty = true;
    for (int64_t l = 0; l < layers; ++l) {
      // value and derivatives: at the vertex with the largest exit rate the self-loop
      // 1 - lam / lambda is 0 in value but not in its derivative, so a layer whose
      // transient values are all 0 can still carry derivative mass into later layers
      tau[l] = transient_magnitude(s, x.data() + l * V);
      empty &= tau[l] == 0.0;
    }
    const LogPoisson log_pois(static_cast<double>(n));
    for (int64_t i = 0; i < n_times; ++i) {
      if (done[i]) continue;
      const double wgt = mu[i] == 0.0 ? (n == 0 ? 1.0 : 0.0) : std::exp(log_pois(mu[i]));
      cum[i] += wgt;
      const double above = std::max(0.0, 1.0 - cum[i]);  // P(N > n)
      double* h = hist.data() + i * layers;
      h[n % layers] = wgt;
      for (int64_t l = 0; l < layers; ++l) {
        T* pi = p.data() + (i * layers + l) * V;
        const T* xl = x.data() + l * V;
        for (int32_t j = 0; j < s.n; ++j) pi[s.tvert[j]] += xl[s.tvert[j]] * wgt;
        for (int64_t v = 1; v < V; ++v)
          if (absorbing[v]) pi[v] += xl[v] * wgt;
      }
      T* ai = a.data() + i * V;
      for (int32_t j = 0; j < s.n; ++j) ai[s.tvert[j]] += x[s.tvert[j]] * (above / lambda);
      // tail[q] bounds P(N > n - q): from Pois(n - q + 1), the next weight (q = 0) or
      // one already seen (kept in the ring of the last `layers` weights).
      for (int64_t q = 0; q < layers; ++q) {
        const int64_t m = n - q;
        const double w_next = q == 0 ? wgt * (mu[i] / (static_cast<double>(n) + 1.0))
                                     : (m + 1 >= 0 ? h[(m + 1) % layers] : 1.0);
        tail[q] = poisson_tail(mu[i], m, w_next);
      }
      bool ok = empty;
      if (!ok) {
        ok = true;
        const double* ci = c.data() + i * layers;
        for (int64_t j = 0; ok && j < layers; ++j) {
          double err = 0.0;
          for (int64_t q = 0; q <= j; ++q) {
            const double g = q == 0 ? 1.0 : ci[q];
            if (g != 0.0 && tau[j - q] != 0.0) err += g * tau[j - q] * tail[q];
          }
          ok = err <= tol[i * layers + j];
        }
        // The accumulated time of layer 0, as the state sweep bounds it.
        const double ratio = mu[i] / (static_cast<double>(n) + 2.0);
        const double acc_tail = ratio < 1.0 ? tail[0] / (1.0 - ratio) : INFINITY;
        ok = ok && (tau[0] == 0.0 || acc_tail * tau[0] <= kTol * mu[i] * S[0]);
      }
      if (ok) {
        for (int64_t l = 0; l < layers; ++l) {
          T* pi = p.data() + (i * layers + l) * V;
          const T* xl = x.data() + l * V;
          for (int64_t v = 1; v < V; ++v)
            if (absorbing[v]) pi[v] += xl[v] * above;
        }
        done[i] = 1;
        --remaining;
      }
    }
    for (int64_t l = 0; l < layers; ++l)
      step_vector(s, ws, diag, lambda, absorbing, x.data() + l * V, y.data() + l * V);
    for (int64_t l = 1; l < layers; ++l)
      for (int32_t j = 0; j < s.n; ++j) {
        const int32_t v = s.tvert[j];
        if (rl[j] != 0.0) y[l * V + v] += x[(l - 1) * V + v] * rl[j];
      }
    std::swap(x, y);
  }
  std::copy(p.begin(), p.end(), prob);
  std::copy(a.begin(), a.end(), acc);
}

// out = x . (block generator): out_j = x_j G + x_{j-1} R, exactly (no lambda).
template <class T>
void apply_generator(const Structure& s, const Workspace<T>& ws, const double* rew,
                     int64_t layers, const T* x, T* out) {
  const int64_t V = s.V;
  std::fill(out, out + layers * V, T(0.0));
  for (int64_t l = 0; l < layers; ++l) {
    const T* xl = x + l * V;
    T* ol = out + l * V;
    for (int32_t j = 0; j < s.n; ++j) {
      const int32_t u = s.tvert[j];
      const T xj = xl[u];
      if (is_zero(xj)) continue;
      ol[u] -= xj * ws.lam[j];
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
        ol[s.tvert[s.tt_dst[k]]] += xj * ws.w[s.off_tt + k];
      for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
        ol[s.eto[s.ta_edge[k]]] += xj * ws.w[s.off_ta + k];
      if (l + 1 < layers && rew[j] != 0.0) out[(l + 1) * V + u] += xj * rew[j];
    }
  }
}

// The forward map for weights already in ws: x, dx = x 𝒢, acc and ddx = dx 𝒢 per time.
template <class T>
void propagate_sweep(const Structure& s, const Workspace<T>& ws, const double* rew,
                     int64_t layers, std::vector<T>& start, const double* times,
                     int64_t n_times, T* x, T* dx, T* acc, T* ddx) {
  hand_on_start(s, ws, layers, start.data());
  if (layers == 1)
    state_sweep(s, ws, start.data(), times, n_times, x, acc);
  else
    layered_states(s, ws, rew, layers, start.data(), times, n_times, x, acc);
  const int64_t LV = layers * s.V;
  for (int64_t i = 0; i < n_times; ++i) {
    apply_generator(s, ws, rew, layers, x + i * LV, dx + i * LV);
    apply_generator(s, ws, rew, layers, dx + i * LV, ddx + i * LV);
  }
}

// ---- the adjoint: column vectors, v_{n+1} = P_big v_n, (P_big v)_j = P v_j + R v_{j+1} / lambda

void column_step(const Structure& s, const Workspace<double>& ws, const std::vector<double>& diag,
                 double lambda, const std::vector<char>& absorbing, const std::vector<double>& rl,
                 int64_t layers, const double* v, double* y) {
  const double inv = 1.0 / lambda;
  const int64_t V = s.V;
  for (int64_t l = 0; l < layers; ++l) {
    const double* vl = v + l * V;
    double* yl = y + l * V;
    for (int64_t u = 0; u < V; ++u) yl[u] = absorbing[u] ? vl[u] : 0.0;
    for (int32_t j = 0; j < s.n; ++j) {
      const int32_t u = s.tvert[j];
      double acc = vl[u] * diag[j];
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
        acc += ws.w[s.off_tt + k] * inv * vl[s.tvert[s.tt_dst[k]]];
      for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
        acc += ws.w[s.off_ta + k] * inv * vl[s.eto[s.ta_edge[k]]];
      if (l + 1 < layers) acc += vl[V + u] * rl[j];
      yl[u] = acc;
    }
  }
}

// out = 𝒢 v (column): (𝒢 v)_j = G v_j + R v_{j+1}; rows of absorbing vertices and of
// vertex 0 are 0.
void column_generator(const Structure& s, const Workspace<double>& ws, const double* rew,
                      int64_t layers, const double* v, double* out) {
  const int64_t V = s.V;
  std::fill(out, out + layers * V, 0.0);
  for (int64_t l = 0; l < layers; ++l) {
    const double* vl = v + l * V;
    for (int32_t j = 0; j < s.n; ++j) {
      const int32_t u = s.tvert[j];
      double acc = -ws.lam[j] * vl[u];
      for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
        acc += ws.w[s.off_tt + k] * vl[s.tvert[s.tt_dst[k]]];
      for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
        acc += ws.w[s.off_ta + k] * vl[s.eto[s.ta_edge[k]]];
      if (l + 1 < layers) acc += rew[j] * vl[V + u];
      out[l * V + u] = acc;
    }
  }
}

// out += exp(𝒢 t) v (integral: int_0^t exp(𝒢 s) v ds, one layer) by column
// uniformization. sigma_{n,j} = max |v_{n,j}|: P never increases it, so
// sigma_{n+d,j} <= sum_q C(d,q) rho^q sigma_{n,j+q} and the error after term n is at
// most sum_q (r_max t)^q / q! sigma_{n,j+q} P(N > n - q) (as the forward sweep, the
// layers the other way). There is no absorbed mass to freeze: about mu + 9 sqrt(mu) terms.
void column_series(const Structure& s, const Workspace<double>& ws,
                   const std::vector<double>& diag, double lambda,
                   const std::vector<char>& absorbing, const std::vector<double>& rl,
                   double r_max, int64_t layers, double t, bool integral,
                   std::vector<double> v, double* out) {
  const int64_t V = s.V, LV = layers * V;
  std::vector<double> y(static_cast<size_t>(LV)), sigma(static_cast<size_t>(layers)),
      sigma0(static_cast<size_t>(layers)), tail(static_cast<size_t>(layers)),
      hist(static_cast<size_t>(layers), 0.0);
  const double mu = lambda * t;
  const std::vector<double> c = growth(r_max * t, layers);
  auto sup = [&](int64_t l) {
    double m = 0.0;
    for (int64_t u = 0; u < V; ++u) m = std::max(m, std::fabs(v[l * V + u]));
    return m;
  };
  double total0 = 0.0;
  for (int64_t l = 0; l < layers; ++l) total0 += sigma0[l] = sup(l);
  if (total0 == 0.0) return;
  std::vector<double> tol(static_cast<size_t>(layers));
  for (int64_t j = 0; j < layers; ++j) {
    double bound = 0.0;
    for (int64_t q = 0; j + q < layers; ++q) bound += c[q] * sigma0[j + q];
    tol[j] = kTol * std::min(bound, total0);
  }
  double cum = 0.0;
  for (int64_t n = 0;; ++n) {
    if (static_cast<double>(n) > kMaxSteps) too_stiff(lambda, t);
    if (n % 4096 == 0) poll_interrupt();
    const double wgt = mu == 0.0 ? (n == 0 ? 1.0 : 0.0) : std::exp(LogPoisson(static_cast<double>(n))(mu));
    cum += wgt;
    const double above = std::max(0.0, 1.0 - cum);
    hist[n % layers] = wgt;
    const double coef = integral ? above / lambda : wgt;
    for (int64_t k = 0; k < LV; ++k) out[k] += v[k] * coef;
    bool zero = true;
    for (int64_t l = 0; l < layers; ++l) zero &= (sigma[l] = sup(l)) == 0.0;
    if (zero) return;
    for (int64_t q = 0; q < layers; ++q) {
      const int64_t m = n - q;
      const double w_next = q == 0 ? wgt * (mu / (static_cast<double>(n) + 1.0))
                                   : (m + 1 >= 0 ? hist[(m + 1) % layers] : 1.0);
      tail[q] = poisson_tail(mu, m, w_next);
    }
    bool ok = true;
    if (integral) {  // one layer: sum_{m > n} P(N > m) / lambda x sigma_n
      const double ratio = mu / (static_cast<double>(n) + 2.0);
      const double acc_tail = ratio < 1.0 ? tail[0] / (1.0 - ratio) : INFINITY;
      ok = acc_tail * sigma[0] <= kTol * mu * sigma0[0];
    } else {
      for (int64_t j = 0; ok && j < layers; ++j) {
        double err = 0.0;
        for (int64_t q = 0; j + q < layers; ++q)
          if (c[q] != 0.0 && sigma[j + q] != 0.0) err += c[q] * sigma[j + q] * tail[q];
        ok = err <= tol[j];
      }
    }
    if (ok) return;
    column_step(s, ws, diag, lambda, absorbing, rl, layers, v.data(), y.data());
    std::swap(v, y);
  }
}

// Rewards per transient vertex for the layers (none given: 1 each, the time).
std::vector<double> layer_rewards(const Structure& s, const double* rewards, int64_t rewards_len) {
  if (rewards_len == 0) return std::vector<double>(static_cast<size_t>(s.n), 1.0);
  return transient_rewards(s, rewards, rewards_len);
}

void check_propagate(const Structure& s, int64_t layers, const double* start,
                     const double* times, int64_t n_times) {
  if (s.discrete)
    bad("propagate supports continuous graphs only (it uniformizes a rate matrix); this "
        "graph is discrete");
  if (layers < 1) bad("start must have at least one layer (shape (layers, vertices))");
  check_times(s, times, n_times);
  for (int64_t k = 0; k < layers * s.V; ++k)
    if (!std::isfinite(start[k]))
      bad("start[" + std::to_string(k / s.V) + ", " + std::to_string(k % s.V) + "] is " +
          num(start[k]) + "; start must be finite");
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void compute_propagate(const Structure& s, const double* theta, int64_t theta_len,
                       const double* start, int64_t layers, const double* times,
                       int64_t n_times, const double* rewards, int64_t rewards_len, double* x,
                       double* dx, double* acc, double* ddx) {
  check_propagate(s, layers, start, times, n_times);
  const std::vector<double> rew = layer_rewards(s, rewards, rewards_len);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  std::vector<double> x0(start, start + layers * s.V);
  propagate_sweep(s, ws, rew.data(), layers, x0, times, n_times, x, dx, acc, ddx);
}

void compute_propagate_jac(const Structure& s, const double* theta, int64_t theta_len,
                           const double* start, int64_t layers, const double* times,
                           int64_t n_times, const double* rewards, int64_t rewards_len,
                           double* x, double* dx, double* acc, double* ddx, double* x_jac,
                           double* dx_jac, double* acc_jac) {
  const int64_t P = theta_len;
  if (P == 0) {
    compute_propagate(s, theta, theta_len, start, layers, times, n_times, rewards, rewards_len,
                      x, dx, acc, ddx);
    return;
  }
  check_propagate(s, layers, start, times, n_times);
  const std::vector<double> rew = layer_rewards(s, rewards, rewards_len);
  const int64_t NX = n_times * layers * s.V, NA = n_times * s.V;
  for_each_block(P, [&](auto zero, int64_t d0) {
    using T = decltype(zero);
    Workspace<T>& ws = workspace<T>();
    edge_weights(s, theta, theta_len, ws, d0);
    std::vector<T> x0(start, start + layers * s.V);
    std::vector<T> xs(static_cast<size_t>(NX)), dxs(static_cast<size_t>(NX)),
        ddxs(static_cast<size_t>(NX)), as(static_cast<size_t>(NA));
    propagate_sweep(s, ws, rew.data(), layers, x0, times, n_times, xs.data(), dxs.data(),
                    as.data(), ddxs.data());
    const int64_t m = std::min<int64_t>(Tangents<T>::n, P - d0);
    for (int64_t k = 0; k < NX; ++k) {
      x[k] = xs[k].v;
      dx[k] = dxs[k].v;
      ddx[k] = ddxs[k].v;
      for (int64_t q = 0; q < m; ++q) {
        x_jac[k * P + d0 + q] = xs[k].d[q];
        dx_jac[k * P + d0 + q] = dxs[k].d[q];
      }
    }
    for (int64_t k = 0; k < NA; ++k) {
      acc[k] = as[k].v;
      for (int64_t q = 0; q < m; ++q) acc_jac[k * P + d0 + q] = as[k].d[q];
    }
  });
}

void compute_propagate_adjoint(const Structure& s, const double* theta, int64_t theta_len,
                               int64_t layers, const double* times, int64_t n_times,
                               const double* rewards, int64_t rewards_len, const double* gx,
                               const double* gdx, const double* gacc, double* out) {
  if (s.discrete)
    bad("propagate supports continuous graphs only (it uniformizes a rate matrix); this "
        "graph is discrete");
  check_times(s, times, n_times);
  const std::vector<double> rew = layer_rewards(s, rewards, rewards_len);
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  const int64_t V = s.V, LV = layers * V;
  const std::vector<char> absorbing = absorbing_flags(s);
  const double lambda = uniform_rate(s, ws);
  const std::vector<double> diag = uniform_diag(s, ws, lambda);
  double r_max = 0.0;
  std::vector<double> rl(static_cast<size_t>(s.n));
  for (int32_t j = 0; j < s.n; ++j) {
    r_max = std::max(r_max, rew[j]);
    rl[j] = rew[j] / lambda;
  }
  std::vector<double> eff(static_cast<size_t>(LV), 0.0), g(static_cast<size_t>(LV)),
      h(static_cast<size_t>(V));
  for (int64_t i = 0; i < n_times; ++i) {
    // Cotangents of x and of dx = x 𝒢 meet as g = gx + 𝒢 gdx; x[..., 0] is always 0.
    column_generator(s, ws, rew.data(), layers, gdx + i * LV, g.data());
    for (int64_t k = 0; k < LV; ++k) g[k] += gx[i * LV + k];
    for (int64_t l = 0; l < layers; ++l) g[l * V] = 0.0;
    column_series(s, ws, diag, lambda, absorbing, rl, r_max, layers, times[i], false, g,
                  eff.data());
    // acc is int_0^t x_0 on transient vertices only.
    std::fill(h.begin(), h.end(), 0.0);
    for (int32_t j = 0; j < s.n; ++j) h[s.tvert[j]] = gacc[i * V + s.tvert[j]];
    column_series(s, ws, diag, lambda, absorbing, rl, r_max, 1, times[i], true, h, eff.data());
  }
  // Mass on vertex 0 was handed on by the initial distribution pi: its cotangent is pi . eff.
  const std::vector<double> pi = start_vector(s, ws);
  for (int64_t l = 0; l < layers; ++l) {
    double dot = 0.0;
    for (int64_t v = 1; v < V; ++v) dot += pi[v] * eff[l * V + v];
    for (int64_t v = 0; v < V; ++v) out[l * V + v] = v == 0 ? dot : eff[l * V + v];
  }
}

}  // namespace phasic
