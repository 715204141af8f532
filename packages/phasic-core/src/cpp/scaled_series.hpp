// Scaled series (internal to the kernels): the derivative and log-density kernels
// keep the probability vector in a representable range by rescaling it (the scale
// goes into a log) and sum each time's series as exp(ls) * acc, so densities far
// below 1e-308 keep full relative precision and their logarithm is finite.
#pragma once
#include <cmath>
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
