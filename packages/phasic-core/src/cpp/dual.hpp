// Forward-mode dual numbers with N tangent directions: x = v + sum_k d[k] eps_k.
// The kernels are templates over their scalar type; instantiated with double they
// are the plain value kernels, with Dual<N> they carry exact derivatives with
// respect to N parameters through every operation (elimination replay, solves,
// moments, uniformization and discrete stepping).
#pragma once
#include <algorithm>
#include <cmath>

namespace phasic {

template <int N>
struct Dual {
  double v = 0.0;
  double d[N] = {};

  Dual() = default;
  Dual(double x) : v(x) {}  // NOLINT: constants convert implicitly, as doubles would

  Dual& operator+=(const Dual& o) {
    v += o.v;
    for (int k = 0; k < N; ++k) d[k] += o.d[k];
    return *this;
  }
  Dual& operator-=(const Dual& o) {
    v -= o.v;
    for (int k = 0; k < N; ++k) d[k] -= o.d[k];
    return *this;
  }
  Dual& operator*=(double s) {
    v *= s;
    for (int k = 0; k < N; ++k) d[k] *= s;
    return *this;
  }
  Dual& operator*=(const Dual& o) {
    for (int k = 0; k < N; ++k) d[k] = d[k] * o.v + v * o.d[k];
    v *= o.v;
    return *this;
  }
};

template <int N>
inline Dual<N> operator+(Dual<N> a, const Dual<N>& b) { return a += b; }
template <int N>
inline Dual<N> operator-(Dual<N> a, const Dual<N>& b) { return a -= b; }
template <int N>
inline Dual<N> operator-(const Dual<N>& a) {
  Dual<N> r;
  r.v = -a.v;
  for (int k = 0; k < N; ++k) r.d[k] = -a.d[k];
  return r;
}
template <int N>
inline Dual<N> operator*(Dual<N> a, double s) { return a *= s; }
template <int N>
inline Dual<N> operator*(double s, Dual<N> a) { return a *= s; }
template <int N>
inline Dual<N> operator*(Dual<N> a, const Dual<N>& b) { return a *= b; }
template <int N>
inline Dual<N> operator+(Dual<N> a, double s) { a.v += s; return a; }
template <int N>
inline Dual<N> operator+(double s, Dual<N> a) { a.v += s; return a; }
template <int N>
inline Dual<N> operator-(double s, const Dual<N>& a) { return -a + s; }
template <int N>
inline Dual<N> operator-(Dual<N> a, double s) { a.v -= s; return a; }

// 1 / x with its derivative -dx / x^2.
template <int N>
inline Dual<N> reciprocal(const Dual<N>& x) {
  Dual<N> r;
  r.v = 1.0 / x.v;
  const double m = -r.v * r.v;
  for (int k = 0; k < N; ++k) r.d[k] = x.d[k] * m;
  return r;
}
inline double reciprocal(double x) { return 1.0 / x; }
template <int N>
inline Dual<N> operator/(const Dual<N>& a, const Dual<N>& b) { return a * reciprocal(b); }
template <int N>
inline Dual<N> operator/(Dual<N> a, double s) { return a *= 1.0 / s; }

// a += b * c without temporaries (the inner loop of the elimination replay).
template <int N>
inline void fma_into(Dual<N>& a, const Dual<N>& b, const Dual<N>& c) {
  for (int k = 0; k < N; ++k) a.d[k] += b.d[k] * c.v + b.v * c.d[k];
  a.v += b.v * c.v;
}
template <int N>
inline void fma_into(Dual<N>& a, const Dual<N>& b, double c) {
  for (int k = 0; k < N; ++k) a.d[k] += b.d[k] * c;
  a.v += b.v * c;
}
inline void fma_into(double& a, double b, double c) { a += b * c; }

template <int N>
inline double value(const Dual<N>& x) { return x.v; }
inline double value(double x) { return x; }

// Exactly zero in value and every derivative (then a term can be skipped).
template <int N>
inline bool is_zero(const Dual<N>& x) {
  bool z = x.v == 0.0;
  for (int k = 0; k < N; ++k) z &= x.d[k] == 0.0;
  return z;
}
inline bool is_zero(double x) { return x == 0.0; }

// |value| + sum |derivative|: a size used for scaling and flushing decisions.
template <int N>
inline double magnitude(const Dual<N>& x) {
  double m = std::fabs(x.v);
  for (int k = 0; k < N; ++k) m += std::fabs(x.d[k]);
  return m;
}
inline double magnitude(double x) { return std::fabs(x); }

// Partial derivative k (0 for a double, which carries none).
template <int N>
inline double partial(const Dual<N>& x, int k) { return x.d[k]; }
inline double partial(double, int) { return 0.0; }

// Largest |derivative| (0 for a double).
template <int N>
inline double max_tangent(const Dual<N>& x) {
  double m = 0.0;
  // std::max, not fmax (a library call): m starts at 0 and a NaN partial is skipped alike.
  for (int k = 0; k < N; ++k) m = std::max(m, std::fabs(x.d[k]));
  return m;
}
inline double max_tangent(double) { return 0.0; }

template <class T>
struct Tangents {
  static constexpr int n = 0;
};
template <int N>
struct Tangents<Dual<N>> {
  static constexpr int n = N;
};

}  // namespace phasic
