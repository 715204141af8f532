// XLA FFI handlers. Each handler's implementation, its binding and its line in the
// target table sit together here (a kernel family with its own handler file,
// ffi_<family>.cpp, declares its handlers in ffi_handlers.hpp and adds only table
// lines here); module.cpp exposes the table as capsules. Adding a target: a kernel,
// a handler and a table line, a wrapper in Python, a row in README.md.
#include "ffi_handlers.hpp"

#include <string>
#include <type_traits>
#include <vector>

#include "ffi_common.hpp"
#include "lumping.hpp"

namespace ffi = xla::ffi;

namespace phasic {
namespace {

using namespace ffi_common;

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
  return run_batch(pre.B, work_estimate(density_structure(st)) * 50, [&](int64_t b) {
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
  return run_batch(pre.B, work_estimate(density_structure(st)) * 50 * (P + 1), [&](int64_t b) {
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

// log pdf / log pmf at each time, or (summed) their sum over the times, one per batch
// element; `jac` (d/d theta: (..., T, P), summed (..., P)) only when given.
ffi::Error log_density(In& theta, In& times, Out& out, Out* jac, std::string_view digest,
                       bool discrete, bool summed) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  pre.output(summed ? "log-likelihood" : "log pmf", out,
             summed ? pre.batch_and({}) : pre.batch_and({T}));
  if (jac)
    pre.output("gradient", *jac, summed ? pre.batch_and({pre.P}) : pre.batch_and({T, pre.P}));
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(density_structure(st)) * 50 * (jac ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    if (summed)
      compute_loglik(st, th + b * P, P, tm + b * T, T, o + b, j ? j + b * P : nullptr);
    else
      compute_log_pmf(st, th + b * P, P, tm + b * T, T, o + b * T, j ? j + b * T * P : nullptr);
  });
}

// phasic_log_pmf: log pdf / log pmf at each time.
ffi::Error LogPmf(In theta, In times, Out out, std::string_view digest,
                  bool discrete) {
  return log_density(theta, times, out, nullptr, digest, discrete, false);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmf, LogPmf,
                              (bind_buffers<2, 1>().Attr<bool>("discrete")));

// phasic_log_pmf_jac: log pdf / log pmf and d log f / d theta, shape (..., T, P).
ffi::Error LogPmfJac(In theta, In times, Out out, Out jac, std::string_view digest,
                     bool discrete) {
  return log_density(theta, times, out, &jac, digest, discrete, false);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmfJac, LogPmfJac,
                              (bind_buffers<2, 2>().Attr<bool>("discrete")));

// phasic_loglik: sum_i log f(times[i]) (phasic.loglik).
ffi::Error Loglik(In theta, In times, Out out, std::string_view digest, bool discrete) {
  return log_density(theta, times, out, nullptr, digest, discrete, true);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLoglik, Loglik,
                              (bind_buffers<2, 1>().Attr<bool>("discrete")));

// phasic_loglik_grad: the sum and its gradient in theta, shape (..., P).
ffi::Error LoglikGrad(In theta, In times, Out out, Out grad, std::string_view digest,
                      bool discrete) {
  return log_density(theta, times, out, &grad, digest, discrete, true);
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLoglikGrad, LoglikGrad,
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
      {"phasic_loglik", encapsulate<PhasicLoglik>()},
      {"phasic_loglik_grad", encapsulate<PhasicLoglikGrad>()},
      {"phasic_covariance", encapsulate<PhasicCovariance>()},
      {"phasic_covariance_jac", encapsulate<PhasicCovarianceJac>()},
      {"phasic_sample", encapsulate<PhasicSample>()},
      {"phasic_reward_pmf", encapsulate<PhasicRewardPmf>()},
      {"phasic_reward_pmf_jac", encapsulate<PhasicRewardPmfJac>()},
      {"phasic_reward_log_pmf", encapsulate<PhasicRewardLogPmf>()},
      {"phasic_reward_log_pmf_jac", encapsulate<PhasicRewardLogPmfJac>()},
      {"phasic_mutation_pmf", encapsulate<PhasicMutationPmf>()},
      {"phasic_mutation_pmf_jac", encapsulate<PhasicMutationPmfJac>()},
      {"phasic_state_at_time", encapsulate<PhasicStateAtTime>()},
      {"phasic_state_at_time_jac", encapsulate<PhasicStateAtTimeJac>()},
      {"phasic_propagate", encapsulate<PhasicPropagate>()},
      {"phasic_propagate_jac", encapsulate<PhasicPropagateJac>()},
      {"phasic_propagate_adjoint", encapsulate<PhasicPropagateAdjoint>()},
      {"phasic_vertex_moments", encapsulate<PhasicVertexMoments>()},
      {"phasic_vertex_moments_jac", encapsulate<PhasicVertexMomentsJac>()},
  };
  return targets;
}

}  // namespace phasic
