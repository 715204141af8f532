// The per-thread LRU cache of compiled Structures that the FFI handlers look up by
// the structure's digest (see structure_registry.hpp).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "structure.hpp"

namespace phasic {

// The cached Structure for `digest`; on a miss, takes it from the registry (which
// compiles the registered text if no thread holds it) and inserts it. Throws on an
// unregistered digest or bad JSON.
std::shared_ptr<const Structure> cached_structure(std::string_view digest);
// hits, misses, evictions, entries, capacity (this cache, all threads) and
// registered, registered_bytes, compiles (the registry of sources)
std::map<std::string, int64_t> cache_stats();
void cache_clear();                             // every thread's entries, lazily
void set_cache_capacity(int64_t n);             // entries per thread; n >= 1

}  // namespace phasic
