// XLA FFI handlers of the reward-weighted distributions (reward_density.cpp): the
// pdf/pmf of Y = integral of r(X_t) dt (or the sum over visited states) for R reward
// vectors at once, and its log, each with a Jacobian companion. Shapes:
// theta [..., P], times [..., R, T], rewards [..., R, V] -> out [..., R, T]
// (Jacobians [..., R, T, P]); the leading dimensions are the batch.
#include <string>
#include <string_view>
#include <tuple>

#include "ffi_common.hpp"
#include "ffi_handlers.hpp"

namespace phasic {
namespace {

using namespace ffi_common;

// One handler body: pdf/pmf (log: its log) of every reward row at its row of times,
// with the Jacobian in theta when jac is given.
ffi::Error reward_distribution(In& theta, In& times, In& rewards, Out& out, Out* jac,
                               std::string_view digest, bool discrete, bool log) {
  Preamble pre(theta);
  // Plain variables, not structured bindings: the lambdas below capture them (C++17).
  int64_t TR, T, R, V;
  std::tie(TR, T) = pre.matrix_input("times", times, "R, T");
  std::tie(R, V) = pre.matrix_input("rewards", rewards, "R, V");
  pre.require(TR == R, "times has " + std::to_string(TR) + " rows but rewards has " +
                           std::to_string(R) + "; one row of times per reward vector");
  const Dims want = dims(times);
  pre.require(dims(*out) == want, "output shape " + shape_string(dims(*out)) + " should be " +
                                      shape_string(want));
  if (jac) {
    const Dims want_jac = pre.batch_and({R, T, pre.P});
    pre.require(dims(**jac) == want_jac, "jacobian shape " + shape_string(dims(**jac)) +
                                             " should be " + shape_string(want_jac));
  }
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const Structure& st = pre.s();
  const int64_t P = pre.P;
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * 50 * (jac ? P + 1 : 1);
  // One item per (batch element, reward row) pair, labelled with both when needed.
  const int64_t items = pre.B * R;
  auto label = [&](int64_t i) {
    std::string where;
    if (R > 1) where += "reward row " + std::to_string(i % R) + ": ";
    if (items > R) where += "batch element " + std::to_string(i / R) + ": ";
    return where;
  };
  return run_items(items, work, [&](int64_t i) {
    const double* tb = th + (i / R) * P;
    const double* ti = tm + i * T;
    const double* ri = rw + i * V;
    double* ji = j ? j + i * T * P : nullptr;
    if (log)
      compute_reward_log_pmf(st, digest, tb, P, ri, V, ti, T, o + i * T, ji);
    else
      compute_reward_pmf(st, digest, tb, P, ri, V, ti, T, o + i * T, ji);
  }, label);
}

// The values (log: their logs), and the values with their Jacobian.
template <bool log>
ffi::Error Values(In theta, In times, In rewards, Out out, std::string_view digest,
                  bool discrete) {
  return reward_distribution(theta, times, rewards, out, nullptr, digest, discrete, log);
}
template <bool log>
ffi::Error WithJacobian(In theta, In times, In rewards, Out out, Out jac,
                        std::string_view digest, bool discrete) {
  return reward_distribution(theta, times, rewards, out, &jac, digest, discrete, log);
}

// (theta, times, rewards) -> n_results float64 buffers; attributes digest, discrete.
template <int n_results>
auto bind() {
  return bind_buffers<3, n_results>().template Attr<bool>("discrete");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardPmf, Values<false>, bind<1>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardPmfJac, WithJacobian<false>, bind<2>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardLogPmf, Values<true>, bind<1>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardLogPmfJac, WithJacobian<true>, bind<2>());

}  // namespace phasic
