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
// ffi_mutation.cpp: the pmf of mutation counts and its Jacobian.
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicMutationPmf);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PhasicMutationPmfJac);

}  // namespace phasic
