// Poisson weights Pois(k; mu) = e^-mu mu^k / k! for uniformization, in logs.
//
// The textbook log, -mu + k log(mu) - lgamma(k + 1), subtracts numbers of size
// k log k: at k ~ mu ~ 5e4 they are ~5e5 and the result ~ -6, so rounding alone costs
// ~1e-10 of the weight, and summing lgamma step by step (log 1 + log 2 + ...) drifts
// by ~1e-8 (measured: a right-tail density 1.2e-8 off). Loader's saddle-point form
// (C. Loader, "Fast and accurate computation of binomial probabilities", 2000)
// avoids both: log Pois(k; mu) = -log(2 pi k)/2 - stirlerr(k) - bd0(k, mu), where
// stirlerr is the error of Stirling's formula and bd0(k, mu) = k log(k / mu) + mu - k
// >= 0 is summed as a series near k = mu, where it is small. Each piece is small
// near the mode, so the weight is accurate to a few ulps.
#pragma once
#include <cmath>

namespace phasic {

// log(k!) - [(k + 1/2) log k - k + log(2 pi) / 2], k >= 1 a whole number.
inline double stirling_error(double k) {
  constexpr double kHalfLog2Pi = 0.91893853320467274178;
  if (k <= 15.0) return std::lgamma(k + 1.0) - (k + 0.5) * std::log(k) + k - kHalfLog2Pi;
  // Stirling's series: 1/(12k) - 1/(360k^3) + 1/(1260k^5) - 1/(1680k^7) + 1/(1188k^9).
  const double k2 = 1.0 / (k * k);
  return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - k2 / 1188) * k2) * k2) * k2) / k;
}

// k log(k / mu) + mu - k for k, mu > 0, without cancellation when k is near mu: with
// v = (k - mu) / (k + mu) it equals (k - mu) v + 2k (v^3/3 + v^5/5 + ...).
inline double deviance_term(double k, double mu) {
  const double d = k - mu;
  if (std::fabs(d) < 0.1 * (k + mu)) {
    double v = d / (k + mu);
    double sum = d * v;
    double term = 2.0 * k * v;
    v *= v;
    for (int j = 1; j < 200; ++j) {
      term *= v;
      const double next = sum + term / (2 * j + 1);
      if (next == sum) return next;
      sum = next;
    }
    return sum;
  }
  return k * std::log(k / mu) + mu - k;
}

// log Pois(k; mu) for one k and any mu >= 0; what depends on k alone is computed once.
class LogPoisson {
 public:
  explicit LogPoisson(double k)
      : k_(k), base_(k > 0.0 ? -0.5 * std::log(6.283185307179586477 * k) - stirling_error(k) : 0.0) {}
  double operator()(double mu) const {
    if (k_ == 0.0) return -mu;
    if (mu == 0.0) return -INFINITY;
    return base_ - deviance_term(k_, mu);
  }

 private:
  double k_, base_;
};

}  // namespace phasic
