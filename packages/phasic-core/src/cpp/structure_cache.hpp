// The per-thread LRU cache of parsed Structures that the FFI handlers look up by the
// 64-bit key Python computes once per structure string.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "structure.hpp"

namespace phasic {

// The cached Structure for (structure, key); parses and inserts on a miss. Throws on
// bad JSON.
std::shared_ptr<const Structure> cached_structure(std::string_view structure, int64_t key);
// hits, misses, evictions, entries, capacity, full_compares (whole-text checks on hits)
std::map<std::string, int64_t> cache_stats();
void cache_clear();                             // every thread's entries, lazily
void set_cache_capacity(int64_t n);             // entries per thread; n >= 1

}  // namespace phasic
