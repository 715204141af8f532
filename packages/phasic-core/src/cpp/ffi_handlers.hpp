// The XLA FFI targets: one table of (name, handler) that module.cpp turns into capsules.
#pragma once
#include <vector>

#include "xla/ffi/api/api.h"

namespace phasic {

struct FfiTarget {
  const char* name;  // the name jax.ffi.register_ffi_target uses (phasic/ffi.py)
  void* handler;     // an XLA_FFI_Handler*, type-checked where the table is built
};

const std::vector<FfiTarget>& ffi_targets();

// Handlers of the kernel families defined in their own files (ffi_<family>.cpp).
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicSample);  // ffi_sampler.cpp
// ffi_reward.cpp: the distribution of a reward-weighted time, its log, their Jacobians.
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicRewardPmf);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicRewardPmfJac);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicRewardLogPmf);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicRewardLogPmfJac);
// ffi_mutation.cpp: the pmf of mutation counts and its Jacobian.
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicMutationPmf);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicMutationPmfJac);
// ffi_state.cpp: the state probabilities and accumulated times, with Jacobians.
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicStateAtTime);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicStateAtTimeJac);
// ffi_propagate.cpp: propagate (values, Jacobians, the adjoint in start), vertex moments.
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicPropagate);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicPropagateJac);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicPropagateAdjoint);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicVertexMoments);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicVertexMomentsJac);

}  // namespace phasic
