// One step of the piecewise sweep over a chunk of rows (internal to piecewise.cpp):
// the gather matvec with the series term, the end vector's sum, the flush below
// kPieceFlush and the masses it kept and dropped.
#pragma once
#include <cmath>
#include <cstdint>

#include "dual.hpp"

namespace phasic {
namespace kernel {

// Entries of magnitude below this are dropped (they would decay into slow subnormal
// arithmetic). The vector is unscaled (probabilities <= 1) and every kept entry times
// a transition probability stays far above the subnormal range (2e-308), while the
// dropped mass, at most (rows x steps) 1e-150 < 1e-135, is charged to every density
// (the sweep's checks): densities near 1e-63 (Kingman n >= 55 at t = 0.01) stay exact to
// 5e-11 on this path instead of falling back to the single sweep, as with 1e-60.
constexpr double kPieceFlush = 1e-150;

// Rows a..b of one piecewise step: nxt = cur P (entries of magnitude below
// kPieceFlush dropped), c += cur . s, and z += w_end cur when w_end != 0. out: kept
// value mass, kept magnitude, dropped value mass, dropped derivative mass.
template <class T>
void piece_rows(int32_t a, int32_t b, const T* __restrict cur, T* __restrict nxt,
                T* __restrict z, double w_end, const T* __restrict diag,
                const T* __restrict absq, const T* __restrict pu,
                const int64_t* __restrict in_ptr, const int32_t* __restrict in_src, T& c,
                double* __restrict out) {
  double mass = 0.0, mag = 0.0, lost_m = 0.0, lost_g = 0.0;
  c = 0.0;
  for (int32_t q = a; q <= b; ++q) {
    const T& vq = cur[q];
    fma_into(c, vq, absq[q]);
    if (w_end != 0.0) fma_into(z[q], vq, w_end);
    // Two running sums over the in-edges (even and odd ones, added at the end): half
    // the rounding error of one long sum on rows with many in-edges, in a fixed order
    // (the same bits on every thread).
    T x = diag[q] * vq, y = 0.0;
    int64_t e = in_ptr[q];
    const int64_t e1 = in_ptr[q + 1];
    for (; e + 1 < e1; e += 2) {
      fma_into(x, pu[e], cur[in_src[e]]);
      fma_into(y, pu[e + 1], cur[in_src[e + 1]]);
    }
    if (e < e1) fma_into(x, pu[e], cur[in_src[e]]);
    x += y;
    const double m = magnitude(x);
    if (m != 0.0 && m < kPieceFlush) {
      lost_m += value(x);
      lost_g += m - std::fabs(value(x));
      x = T(0.0);
    } else {
      mass += value(x);
      mag += m;
    }
    nxt[q] = x;
  }
  out[0] = mass;
  out[1] = mag;
  out[2] = lost_m;
  out[3] = lost_g;
}

}  // namespace kernel
}  // namespace phasic
