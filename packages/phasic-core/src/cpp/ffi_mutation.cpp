// XLA FFI handlers of the mutation-count pmf (mutation.cpp): phasic_mutation_pmf and
// phasic_mutation_pmf_jac. Listed in ffi_targets() (ffi_handlers.cpp).
#include <string>
#include <string_view>

#include "ffi_common.hpp"
#include "ffi_handlers.hpp"

namespace phasic {
namespace {

using namespace ffi_common;

// P(K_i = k) for theta [..., P], mutation_rate [..., 1] and the reward rows
// [..., R, V]: shape [..., R, kmax + 1], with its Jacobian [..., R, kmax + 1, P + 1]
// (the last column is d / d mutation_rate) when jac is given.
ffi::Error mutation_pmf(In& theta, In& rate, In& rewards, Out& out, Out* jac,
                        std::string_view digest, int64_t kmax) {
  Preamble pre(theta);
  const int64_t one = pre.input("mutation_rate", rate);
  const auto [R, V] = pre.matrix_input("rewards", rewards);
  const int64_t K = kmax + 1;
  if (pre.ok() && one != 1)
    return ffi::Error::InvalidArgument("mutation_rate must hold one value per batch element "
                                       "(last dimension 1), got " + std::to_string(one));
  if (pre.ok()) {
    try {
      check_mutation_kmax(kmax);
    } catch (const std::exception& e) {
      return ffi::Error::InvalidArgument(e.what());
    }
  }
  pre.output("mutation pmf", out, pre.batch_and({R, K}));
  if (jac) pre.output("jacobian", *jac, pre.batch_and({R, K, pre.P + 1}));
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const int64_t P = pre.P;
  const Structure& st = pre.s();
  const double* th = theta.typed_data();
  const double* mu = rate.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * static_cast<double>(R * (K + 1)) * (j ? P + 2 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    const double* tb = th + b * P;
    const double* rb = rw + b * R * V;
    if (j)
      compute_mutation_pmf_jac(st, tb, P, mu[b], rb, R, V, kmax, o + b * R * K,
                               j + b * R * K * (P + 1));
    else
      compute_mutation_pmf(st, tb, P, mu[b], rb, R, V, kmax, o + b * R * K);
  });
}

ffi::Error MutationPmf(In theta, In rate, In rewards, Out out, std::string_view digest,
                       int64_t kmax) {
  return mutation_pmf(theta, rate, rewards, out, nullptr, digest, kmax);
}

ffi::Error MutationPmfJac(In theta, In rate, In rewards, Out out, Out jac,
                          std::string_view digest, int64_t kmax) {
  return mutation_pmf(theta, rate, rewards, out, &jac, digest, kmax);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMutationPmf, MutationPmf,
                              (bind_buffers<3, 1>().Attr<int64_t>("kmax")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMutationPmfJac, MutationPmfJac,
                              (bind_buffers<3, 2>().Attr<int64_t>("kmax")));

}  // namespace phasic
