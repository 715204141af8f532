// Scaled series (internal to the kernels): the derivative and log-density kernels
// keep the probability vector in a representable range by rescaling it (the scale
// goes into a log) and sum each time's series as exp(ls) * acc, so densities far
// below 1e-308 keep full relative precision and their logarithm is finite.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "dual.hpp"

namespace phasic {
namespace kernel {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

inline double safe_log(double x) { return x > 0.0 ? std::log(x) : kNegInf; }

// The sum of one time's series is exp(ls) * acc (ls = -inf: no term yet).
template <class T>
struct Scaled {
  double ls = kNegInf;
  T acc = 0.0;
};

// log of the series' sum (-inf where it is exactly 0).
template <class T>
inline double log_value(const Scaled<T>& a) {
  return a.ls + safe_log(value(a.acc));
}

// The series' scaled value (its sign and whether it is 0 are the density's).
template <class T>
inline double value_of_series(const Scaled<T>& a) {
  return a.ls == kNegInf ? 0.0 : value(a.acc);
}

// sum_i log_value(o[i]): the scales' logs add (Kahan-compensated), the values multiply
// into a mantissa whose binary exponent is moved aside whenever it leaves 2^(+-256),
// so the whole sum takes one log. Four lanes (times i, i + 4, ...) run side by side:
// each lane is a chain of dependent operations, which one lane alone would wait on.
// Factors outside [1e-300, 1e300] (rare: the kernels keep values near 1) take their
// own log. -inf when any series is 0. In the same pass, grad[j] (j < n_grad, at most
// T's partials) receives sum_i partial_j / value of each series with a positive value
// (d log f / d theta; a series that is exactly 0 adds nothing).
template <class T>
double sum_of_logs(const std::vector<Scaled<T>>& o, double* grad = nullptr, int n_grad = 0) {
  constexpr int kLanes = 4, kN = Tangents<T>::n > 0 ? Tangents<T>::n : 1;
  double g[kLanes][kN] = {};
  constexpr double kHigh = 0x1p256, kLow = 0x1p-256;
  double sum[kLanes] = {}, comp[kLanes] = {};  // Kahan: sum - comp is a lane's total
  double mant[kLanes] = {1.0, 1.0, 1.0, 1.0};  // within [2^-256, 2^256] between factors
  int64_t exponent = 0;
  auto add = [&](int j, double x) {
    const double y = x - comp[j], t = sum[j] + y;
    comp[j] = (t - sum[j]) - y;
    sum[j] = t;
  };
  auto renormalize = [&](int j) {  // moves mant[j]'s binary exponent into `exponent`
    uint64_t bits;
    std::memcpy(&bits, &mant[j], sizeof bits);
    exponent += static_cast<int64_t>((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x800fffffffffffffULL) | (uint64_t{1023} << 52);
    std::memcpy(&mant[j], &bits, sizeof bits);
  };
  bool zero = false;
  auto take = [&](int j, const Scaled<T>& x) {
    const double a = value_of_series(x);
    zero |= !(a > 0.0);
    if (a > 0.0)
      for (int d = 0; d < n_grad; ++d) g[j][d] += partial(x.acc, d) / a;
    add(j, x.ls);
    if (!(a >= 1e-300 && a <= 1e300)) {
      if (a > 0.0) add(j, std::log(a));
      return;
    }
    mant[j] *= a;  // normal: at least 2^-256 1e-300
    if (mant[j] > kHigh || mant[j] < kLow) renormalize(j);
  };
  const size_t count = o.size();
  size_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {  // lanes with fixed indices stay in registers
#pragma GCC unroll 4
    for (int j = 0; j < kLanes; ++j) take(j, o[i + j]);
  }
  for (; i < count; ++i) take(0, o[i]);
  for (int d = 0; d < n_grad; ++d) grad[d] = (g[0][d] + g[1][d]) + (g[2][d] + g[3][d]);
  if (zero) return kNegInf;
  double m = 1.0;
  for (int j = 0; j < kLanes; ++j) {
    renormalize(j);  // mant[j] in [1, 2): their product stays in range
    m *= mant[j];
  }
  double total = 0.0, c = 0.0;
  for (int j = 0; j < kLanes; ++j) {
    total += sum[j];
    c += comp[j];
  }
  return (total - c) + (static_cast<double>(exponent) * 0.69314718055994530942 + std::log(m));
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

// Drops x when it is below `cut` (it would otherwise decay into slow subnormal
// arithmetic; the caller sets cut to 1e-150 of the previous size, negligible next to
// the kept mass), else adds it to r.
template <class T>
inline void flush_or_measure(T& x, double cut, VecSize& r) {
  const double m = magnitude(x);
  if (m == 0.0) return;
  if (m < cut) {
    x = T(0.0);
    return;
  }
  r.mag += m;
  r.mass += value(x);
}

// flush_or_measure over a range, in one pass.
template <class T>
VecSize flush_and_measure(T* begin, T* end, double cut) {
  VecSize r;
  for (T* p = begin; p < end; ++p) flush_or_measure(*p, cut, r);
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

}  // namespace kernel
}  // namespace phasic
