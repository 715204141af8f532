// XLA FFI handlers and the per-thread structure cache.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "structure.hpp"
#include "threads.hpp"

namespace phasic {

// The cached Structure for (json, key); parses and inserts on a miss. Throws on bad JSON.
std::shared_ptr<const Structure> cached_structure(std::string_view json, int64_t key);
std::map<std::string, int64_t> cache_stats();
void cache_clear();
void set_cache_capacity(int64_t n);

// Raw handler entry points (XLA_FFI_Handler*), for ffi_targets().
void* ffi_pmf_handler();
void* ffi_moments_handler();
void* ffi_pmf_and_moments_handler();
// Values with their Jacobians in theta, and log-densities (kernels.hpp).
void* ffi_pmf_jac_handler();
void* ffi_moments_jac_handler();
void* ffi_pmf_and_moments_jac_handler();
void* ffi_log_pmf_handler();
void* ffi_log_pmf_jac_handler();

}  // namespace phasic
