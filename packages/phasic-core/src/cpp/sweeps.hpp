// The sweeps each kernel family provides to the density entry points (densities.cpp),
// internal to the kernels. T is double (values) or Dual<N> (values with derivatives);
// the templates are instantiated for every scalar type in PHASIC_EACH_SCALAR.
#pragma once
#include <cstdint>
#include <vector>

#include "per_theta.hpp"
#include "scaled_series.hpp"

namespace phasic {
namespace kernel {

#define PHASIC_EACH_SCALAR(X) X(double) X(Dual<1>) X(Dual<2>) X(Dual<3>) X(Dual<4>) X(Dual<8>)

// uniformization.cpp: one sweep at the largest exit rate, pdf and cdf (either may be
// nullptr) in plain doubles.
void continuous_distribution(const Structure& s, Workspace<double>& ws, const double* times,
                             int64_t n_times, double* pdf, double* cdf);

// uniformization.cpp: one sweep at the largest exit rate, scaled, with derivatives.
// out holds n_times default Scaled values on entry (density 0); a time whose density
// is 0 keeps it.
template <class T>
void uniformized(const Structure& s, const Workspace<T>& ws, const double* times,
                 int64_t n_times, Scaled<T>* out);

// piecewise.cpp: acyclic continuous graphs, the rate lowered as fast states empty.
// False: a check failed or it is not worth it; the single sweep must run instead (out
// is written only on success).
template <class T>
bool piecewise_scaled(const Structure& s, const Workspace<T>& ws, const double* times,
                      int64_t n_times, bool strict, Scaled<T>* out);

// piecewise.cpp: the density alone, piecewise; false: use the single sweep.
bool piecewise_pdf(const Structure& s, const Workspace<double>& ws, const double* times,
                   int64_t n_times, double* pdf);

// discrete.cpp: exact forward stepping, pmf and cdf (either may be nullptr).
void discrete_distribution(const Structure& s, Workspace<double>& ws, const double* times,
                           int64_t n_times, double* pmf, double* cdf);

// discrete.cpp: exact forward stepping, scaled, with derivatives.
template <class T>
void discrete_scaled(const Structure& s, const Workspace<T>& ws, const double* times,
                     int64_t n_times, Scaled<T>* out);

// densities.cpp: the scaled series of every time for weights already in ws (discrete
// stepping, else piecewise, else one sweep at the largest rate); out as uniformized's.
template <class T>
void scaled_sweep(const Structure& s, const Workspace<T>& ws, const double* times,
                  int64_t n_times, Scaled<T>* out);

// densities.cpp: pdf/pmf and cdf (either may be nullptr) for weights already in ws.
void plain_sweep(const Structure& s, Workspace<double>& ws, const double* times,
                 int64_t n_times, double* pdf, double* cdf);

// state_at_time.cpp: from `start` (s.V entries: mass per vertex, transient and
// absorbing) the state at each time, prob and acc (n_times x s.V, either may be
// nullptr) as compute_state_at_time. Epochs chain these sweeps.
template <class T>
void state_sweep(const Structure& s, const Workspace<T>& ws, const T* start,
                 const double* times, int64_t n_times, T* prob, T* acc);

// The rewards of a V-vector on the transient vertices, in their order; checked (length V,
// finite, >= 0) with errors that name the fix.
std::vector<double> transient_rewards(const Structure& s, const double* rewards,
                                      int64_t rewards_len);

}  // namespace kernel
}  // namespace phasic
