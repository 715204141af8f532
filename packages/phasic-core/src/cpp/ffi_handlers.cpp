// XLA FFI handlers. Each handler's implementation, its binding and its line in the
// target table sit together here; module.cpp exposes the table as capsules. Adding
// a target: a kernel, a handler and a table line here, a wrapper in phasic/ffi.py,
// a row in README.md.
#include "ffi_handlers.hpp"

#include <omp.h>

#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels.hpp"
#include "structure_cache.hpp"
#include "threads.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace phasic {
namespace {

using Dims = std::vector<int64_t>;
using In = ffi::Buffer<ffi::F64>;
using Out = ffi::ResultBuffer<ffi::F64>;

template <class Buf>
Dims dims(const Buf& b) {
  auto d = b.dimensions();
  return Dims(d.begin(), d.end());
}

std::string shape_string(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

int64_t product(const Dims& d) {
  int64_t p = 1;
  for (int64_t x : d) p *= x;
  return p;
}

// The checks every handler starts with, in this order: theta (its leading dimensions
// are the batch, its last is P), each further input's batch dimensions, nr_moments,
// the output shapes, then the structure from the cache and its kind. The first
// failure is kept and returned by error(); later checks are then skipped.
class Preamble {
 public:
  explicit Preamble(const In& theta) {
    const Dims td = dims(theta);
    if (td.empty()) {
      err_ = "theta must have at least one dimension";
      return;
    }
    batch = Dims(td.begin(), td.end() - 1);
    P = td.back();
    B = product(batch);
  }

  // `name` must have rank >= 1 and theta's batch dimensions; returns its last dim.
  int64_t input(const char* name, const In& buffer) {
    if (!ok()) return 0;
    const Dims d = dims(buffer);
    if (d.empty()) {
      err_ = std::string(name) + " must have at least one dimension, got a scalar";
      return 0;
    }
    if (Dims(d.begin(), d.end() - 1) != batch) {
      err_ = std::string(name) + " has shape " + shape_string(d) + " but theta has batch shape " +
             shape_string(batch) + "; every input needs the same leading (batch) dimensions";
      return 0;
    }
    return d.back();
  }

  // `name` must have theta's batch dimensions followed by two more (rows, columns);
  // returns those two.
  std::pair<int64_t, int64_t> matrix_input(const char* name, const In& buffer) {
    if (!ok()) return {0, 0};
    const Dims d = dims(buffer);
    if (d.size() != batch.size() + 2 || Dims(d.begin(), d.end() - 2) != batch) {
      err_ = std::string(name) + " has shape " + shape_string(d) + " but theta has batch shape " +
             shape_string(batch) + "; it needs the batch dimensions followed by (rows, columns)";
      return {0, 0};
    }
    return {d[d.size() - 2], d.back()};
  }

  // 0 <= nr_moments <= kMaxMoments (checked before any output is allocated).
  void nr_moments(int64_t k) {
    if (!ok()) return;
    try {
      check_nr_moments(k);
    } catch (const std::exception& e) {
      err_ = e.what();
    }
  }

  // The batch dimensions followed by `tail`.
  Dims batch_and(std::initializer_list<int64_t> tail) const {
    Dims d = batch;
    d.insert(d.end(), tail);
    return d;
  }

  // Output `name` must have shape `want`.
  void output(const char* name, Out& buffer, const Dims& want) {
    if (ok() && dims(*buffer) != want)
      err_ = std::string(name) + " output shape " + shape_string(dims(*buffer)) + " should be " +
             shape_string(want);
  }

  // The structure from the per-thread cache; `discrete` (when given) must match it.
  void structure(std::string_view digest, const bool* discrete = nullptr) {
    if (!ok()) return;
    try {
      s_ = cached_structure(digest);
    } catch (const std::exception& e) {
      err_ = std::string("structure: ") + e.what();
      return;
    } catch (...) {
      err_ = "structure: unknown error";
      return;
    }
    if (discrete && s_->discrete != *discrete)
      err_ = s_->discrete
                 ? "the graph is discrete but discrete=False was passed; pass discrete=True"
                 : "the graph is continuous but discrete=True was passed; pass discrete=False";
  }

  bool ok() const { return err_.empty(); }
  ffi::Error error() const { return ffi::Error::InvalidArgument(err_); }
  const Structure& s() const { return *s_; }

  Dims batch;
  int64_t P = 0, B = 0;

 private:
  std::string err_;
  std::shared_ptr<const Structure> s_;
};

// Runs fn(b) for every batch element, in parallel when worth it; an exception in
// any element is caught inside the loop, and the lowest failing index is reported.
template <class F>
ffi::Error run_batch(int64_t B, double work_per_element, F&& fn) {
  int64_t first_bad = -1;
  std::string message;
  const int nt = static_cast<int>(get_num_threads());
  const bool parallel = B > 1 && nt > 1 && static_cast<double>(B) * work_per_element > 2e4;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (parallel)
  for (int64_t b = 0; b < B; ++b) {
    std::string err;
    try {
      fn(b);
    } catch (const std::exception& e) {
      err = e.what();
      if (err.empty()) err = "unknown error";
    } catch (...) {
      err = "unknown error";
    }
    if (!err.empty()) {
#pragma omp critical(phasic_batch_error)
      {
        if (first_bad < 0 || b < first_bad) {
          first_bad = b;
          message = err;
        }
      }
    }
  }
  if (first_bad < 0) return ffi::Error::Success();
  if (B > 1)
    message = "batch element " + std::to_string(first_bad) + " of " + std::to_string(B) + ": " +
              message;
  return ffi::Error::InvalidArgument(message);
}

// A binding's first part: n >= 1 float64 arguments (theta first), then n >= 1 float64
// results, then the attributes every target has. (Bindings cannot be copied or
// moved, so each step hands a temporary on.) Used in parentheses as a macro argument.
template <int n, class B>
auto with_args(B&& b) {
  if constexpr (n == 1) return std::move(b).template Arg<In>();
  else return with_args<n - 1>(std::move(b).template Arg<In>());
}
template <int n, class B>
auto with_rets(B&& b) {
  if constexpr (n == 1) return std::move(b).template Ret<In>();
  else return with_rets<n - 1>(std::move(b).template Ret<In>());
}
template <int inputs, int results>
auto bind_buffers() {
  return with_rets<results>(with_args<inputs>(ffi::Ffi::Bind()))
      .template Attr<std::string_view>("digest");
}

// ------------------------------------------------------------ values

// phasic_pmf: pdf (continuous) or pmf (discrete) at each time.
ffi::Error Pmf(In theta, In times, Out out, std::string_view digest,
               bool discrete) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  pre.output("pmf", out, pre.batch_and({T}));
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  return run_batch(pre.B, work_estimate(st) * 50, [&](int64_t b) {
    compute_distribution(st, th + b * P, P, tm + b * T, T, o + b * T, nullptr);
  });
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmf, Pmf,
                              (bind_buffers<2, 1>().Attr<bool>("discrete")));

// phasic_moments: the first nr_moments raw moments (rewards of length 0: none).
ffi::Error Moments(In theta, In rewards, Out out, std::string_view digest,
                   int64_t nr_moments) {
  Preamble pre(theta);
  const int64_t R = pre.input("rewards", rewards);
  const int64_t K = nr_moments;
  pre.nr_moments(K);
  pre.output("moments", out, pre.batch_and({K}));
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  return run_batch(pre.B, work_estimate(st) * (K + 1), [&](int64_t b) {
    compute_moments(st, th + b * P, P, R ? rw + b * R : nullptr, R, K, o + b * K);
  });
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMoments, Moments,
                              (bind_buffers<2, 1>().Attr<int64_t>("nr_moments")));

// pmf and moments in one call, with their Jacobians when pmf_jac and mom_jac are given.
ffi::Error pmf_and_moments(In& theta, In& times, In& rewards, Out& pmf_out, Out& mom_out,
                           Out* pmf_jac, Out* mom_jac, std::string_view digest,
                           bool discrete, int64_t nr_moments) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  const int64_t R = pre.input("rewards", rewards);
  const int64_t K = nr_moments;
  pre.nr_moments(K);
  pre.output("pmf", pmf_out, pre.batch_and({T}));
  pre.output("moments", mom_out, pre.batch_and({K}));
  const bool jac = pmf_jac != nullptr;
  if (jac) {
    pre.output("pmf jacobian", *pmf_jac, pre.batch_and({T, pre.P}));
    pre.output("moments jacobian", *mom_jac, pre.batch_and({K, pre.P}));
  }
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* po = pmf_out->typed_data();
  double* mo = mom_out->typed_data();
  double* pj = jac ? (*pmf_jac)->typed_data() : nullptr;
  double* mj = jac ? (*mom_jac)->typed_data() : nullptr;
  return run_batch(pre.B, work_estimate(st) * (50 + K) * (jac ? P + 1 : 1), [&](int64_t b) {
    const double* rb = R ? rw + b * R : nullptr;
    if (jac) {
      compute_pmf_jac(st, th + b * P, P, tm + b * T, T, po + b * T, pj + b * T * P);
      compute_moments_jac(st, th + b * P, P, rb, R, K, mo + b * K, mj + b * K * P);
    } else {
      compute_distribution(st, th + b * P, P, tm + b * T, T, po + b * T, nullptr);
      compute_moments(st, th + b * P, P, rb, R, K, mo + b * K);
    }
  });
}

// phasic_pmf_and_moments: both of the above in one call.
ffi::Error PmfAndMoments(In theta, In times, In rewards, Out pmf_out, Out mom_out,
                         std::string_view digest, bool discrete,
                         int64_t nr_moments) {
  return pmf_and_moments(theta, times, rewards, pmf_out, mom_out, nullptr, nullptr, digest,
                         discrete, nr_moments);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfAndMoments, PmfAndMoments,
                              (bind_buffers<3, 2>().Attr<bool>("discrete").Attr<int64_t>(
                                  "nr_moments")));

// ------------------------------------------------ derivatives and log-densities

// phasic_pmf_jac: pmf and its Jacobian in theta, shape (..., T, P).
ffi::Error PmfJac(In theta, In times, Out out, Out jac, std::string_view digest,
                  bool discrete) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  pre.output("pmf", out, pre.batch_and({T}));
  pre.output("jacobian", jac, pre.batch_and({T, pre.P}));
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  double* j = jac->typed_data();
  return run_batch(pre.B, work_estimate(st) * 50 * (P + 1), [&](int64_t b) {
    compute_pmf_jac(st, th + b * P, P, tm + b * T, T, o + b * T, j + b * T * P);
  });
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfJac, PmfJac,
                              (bind_buffers<2, 2>().Attr<bool>("discrete")));

// phasic_moments_jac: moments and their Jacobian in theta, shape (..., K, P).
ffi::Error MomentsJac(In theta, In rewards, Out out, Out jac, std::string_view digest, int64_t nr_moments) {
  Preamble pre(theta);
  const int64_t R = pre.input("rewards", rewards);
  const int64_t K = nr_moments;
  pre.nr_moments(K);
  pre.output("moments", out, pre.batch_and({K}));
  pre.output("jacobian", jac, pre.batch_and({K, pre.P}));
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac->typed_data();
  return run_batch(pre.B, work_estimate(st) * (K + 1) * (P + 1), [&](int64_t b) {
    compute_moments_jac(st, th + b * P, P, R ? rw + b * R : nullptr, R, K, o + b * K,
                        j + b * K * P);
  });
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMomentsJac, MomentsJac,
                              (bind_buffers<2, 2>().Attr<int64_t>("nr_moments")));

// phasic_pmf_and_moments_jac: pmf, pmf Jacobian, moments, moments Jacobian.
ffi::Error PmfAndMomentsJac(In theta, In times, In rewards, Out pmf_out, Out pmf_jac,
                            Out mom_out, Out mom_jac, std::string_view digest,
                            bool discrete, int64_t nr_moments) {
  return pmf_and_moments(theta, times, rewards, pmf_out, mom_out, &pmf_jac, &mom_jac, digest,
                         discrete, nr_moments);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfAndMomentsJac, PmfAndMomentsJac,
                              (bind_buffers<3, 4>().Attr<bool>("discrete").Attr<int64_t>(
                                  "nr_moments")));

// log pdf / log pmf; `jac` (d log f / d theta) only when given.
ffi::Error log_pmf(In& theta, In& times, Out& out, Out* jac, std::string_view digest,
                   bool discrete) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  pre.output("log pmf", out, pre.batch_and({T}));
  if (jac) pre.output("gradient", *jac, pre.batch_and({T, pre.P}));
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * 50 * (jac ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    compute_log_pmf(st, th + b * P, P, tm + b * T, T, o + b * T, j ? j + b * T * P : nullptr);
  });
}

// phasic_log_pmf: log pdf / log pmf at each time.
ffi::Error LogPmf(In theta, In times, Out out, std::string_view digest,
                  bool discrete) {
  return log_pmf(theta, times, out, nullptr, digest, discrete);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmf, LogPmf,
                              (bind_buffers<2, 1>().Attr<bool>("discrete")));

// phasic_log_pmf_jac: log pdf / log pmf and d log f / d theta, shape (..., T, P).
ffi::Error LogPmfJac(In theta, In times, Out out, Out jac, std::string_view digest,
                     bool discrete) {
  return log_pmf(theta, times, out, &jac, digest, discrete);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmfJac, LogPmfJac,
                              (bind_buffers<2, 2>().Attr<bool>("discrete")));
// Cov(Y_i, Y_j) for the rows of rewards [..., R, V], shape [..., R, R], with its
// Jacobian [..., R, R, P] when jac is given.
ffi::Error covariance(In& theta, In& rewards, Out& out, Out* jac, std::string_view digest) {
  Preamble pre(theta);
  const auto [R, V] = pre.matrix_input("rewards", rewards);
  pre.output("covariance", out, pre.batch_and({R, R}));
  if (jac) pre.output("jacobian", *jac, pre.batch_and({R, R, pre.P}));
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * static_cast<double>(R + 2) * (jac ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    const double* tb = th + b * P;
    const double* rb = rw + b * R * V;
    if (j)
      compute_covariance_jac(st, tb, P, rb, R, V, o + b * R * R, j + b * R * R * P);
    else
      compute_covariance(st, tb, P, rb, R, V, o + b * R * R);
  });
}

// phasic_covariance: the covariance matrix of the reward rows.
ffi::Error Covariance(In theta, In rewards, Out out, std::string_view digest) {
  return covariance(theta, rewards, out, nullptr, digest);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicCovariance, Covariance, (bind_buffers<2, 1>()));

// phasic_covariance_jac: the covariance and its Jacobian in theta.
ffi::Error CovarianceJac(In theta, In rewards, Out out, Out jac, std::string_view digest) {
  return covariance(theta, rewards, out, &jac, digest);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicCovarianceJac, CovarianceJac, (bind_buffers<2, 2>()));

// A handler as the opaque pointer a capsule carries; only an XLA FFI handler compiles.
template <auto handler>
void* encapsulate() {
  static_assert(std::is_same_v<decltype(handler), XLA_FFI_Handler*>,
                "an FFI target must be an XLA_FFI_Handler (XLA_FFI_DEFINE_HANDLER_SYMBOL)");
  return reinterpret_cast<void*>(handler);
}

}  // namespace

const std::vector<FfiTarget>& ffi_targets() {
  static const std::vector<FfiTarget> targets = {
      {"phasic_pmf", encapsulate<PhasicPmf>()},
      {"phasic_moments", encapsulate<PhasicMoments>()},
      {"phasic_pmf_and_moments", encapsulate<PhasicPmfAndMoments>()},
      {"phasic_pmf_jac", encapsulate<PhasicPmfJac>()},
      {"phasic_moments_jac", encapsulate<PhasicMomentsJac>()},
      {"phasic_pmf_and_moments_jac", encapsulate<PhasicPmfAndMomentsJac>()},
      {"phasic_log_pmf", encapsulate<PhasicLogPmf>()},
      {"phasic_log_pmf_jac", encapsulate<PhasicLogPmfJac>()},
      {"phasic_covariance", encapsulate<PhasicCovariance>()},
      {"phasic_covariance_jac", encapsulate<PhasicCovarianceJac>()},
      {"phasic_sample", encapsulate<PhasicSample>()},
      {"phasic_reward_pmf", encapsulate<PhasicRewardPmf>()},
      {"phasic_reward_pmf_jac", encapsulate<PhasicRewardPmfJac>()},
      {"phasic_reward_log_pmf", encapsulate<PhasicRewardLogPmf>()},
      {"phasic_reward_log_pmf_jac", encapsulate<PhasicRewardLogPmfJac>()},
  };
  return targets;
}

}  // namespace phasic
