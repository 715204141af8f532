// XLA FFI handlers of the state at a time (state_at_time.cpp): phasic_state_at_time
// and phasic_state_at_time_jac. Listed in ffi_targets() (ffi_handlers.cpp).
#include <string_view>

#include "ffi_common.hpp"
#include "ffi_handlers.hpp"

namespace phasic {
namespace {

using namespace ffi_common;

// For theta [..., P] and times [..., T]: P(X_t = v) and the accumulated time, each
// [..., T, V], with their Jacobians [..., T, V, P] when asked for.
ffi::Error state_at_time(In& theta, In& times, Out& prob, Out& acc, Out* prob_jac,
                         Out* acc_jac, std::string_view digest) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const Structure& st = pre.s();
  const int64_t V = st.V, P = pre.P;
  pre.output("state probabilities", prob, pre.batch_and({T, V}));
  pre.output("accumulated visiting time", acc, pre.batch_and({T, V}));
  if (prob_jac) pre.output("jacobian", *prob_jac, pre.batch_and({T, V, P}));
  if (acc_jac) pre.output("jacobian", *acc_jac, pre.batch_and({T, V, P}));
  if (!pre.ok()) return pre.error();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* po = prob->typed_data();
  double* ao = acc->typed_data();
  double* pj = prob_jac ? (*prob_jac)->typed_data() : nullptr;
  double* aj = acc_jac ? (*acc_jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * static_cast<double>(T + 1) * (pj ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    const int64_t o = b * T * V;
    if (pj)
      compute_state_at_time_jac(st, th + b * P, P, tm + b * T, T, po + o, ao + o, pj + o * P,
                                aj + o * P);
    else
      compute_state_at_time(st, th + b * P, P, tm + b * T, T, po + o, ao + o);
  });
}

ffi::Error StateAtTime(In theta, In times, Out prob, Out acc, std::string_view digest) {
  return state_at_time(theta, times, prob, acc, nullptr, nullptr, digest);
}

ffi::Error StateAtTimeJac(In theta, In times, Out prob, Out acc, Out prob_jac, Out acc_jac,
                          std::string_view digest) {
  return state_at_time(theta, times, prob, acc, &prob_jac, &acc_jac, digest);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicStateAtTime, StateAtTime, (bind_buffers<2, 2>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicStateAtTimeJac, StateAtTimeJac, (bind_buffers<2, 4>()));

}  // namespace phasic
