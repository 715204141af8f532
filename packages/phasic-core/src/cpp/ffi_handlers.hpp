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

// Handlers defined in the per-family files (XLA_FFI_DEFINE_HANDLER_SYMBOL there),
// listed in ffi_targets().
extern "C" XLA_FFI_Error* PhasicMutationPmf(XLA_FFI_CallFrame* call_frame);     // ffi_mutation.cpp
extern "C" XLA_FFI_Error* PhasicMutationPmfJac(XLA_FFI_CallFrame* call_frame);  // ffi_mutation.cpp

}  // namespace phasic
