// The XLA FFI targets: one table of (name, handler) that module.cpp turns into capsules.
#pragma once
#include <vector>

#include "xla/ffi/api/c_api.h"

namespace phasic {

struct FfiTarget {
  const char* name;  // the name jax.ffi.register_ffi_target uses (phasic/ffi.py)
  void* handler;     // an XLA_FFI_Handler*, type-checked where the table is built
};

const std::vector<FfiTarget>& ffi_targets();

// ffi_reward.cpp: the distribution of a reward-weighted time, its log, their Jacobians.
extern "C" XLA_FFI_Error* PhasicRewardPmf(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PhasicRewardPmfJac(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PhasicRewardLogPmf(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PhasicRewardLogPmfJac(XLA_FFI_CallFrame* call_frame);

}  // namespace phasic
