// The XLA FFI targets: one table of (name, handler) that module.cpp turns into capsules.
#pragma once
#include <vector>

namespace phasic {

struct FfiTarget {
  const char* name;  // the name jax.ffi.register_ffi_target uses (phasic/ffi.py)
  void* handler;     // an XLA_FFI_Handler*, type-checked where the table is built
};

const std::vector<FfiTarget>& ffi_targets();

}  // namespace phasic
