// The process-local registry of structure sources: Python registers each structure's
// JSON text once under its SHA-256 digest, and the FFI calls carry only the digest.
// The compiled program therefore never holds the text, and the handlers recompile a
// structure from its registered source when the bounded LRU cache has dropped it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "structure.hpp"

namespace phasic {

// Registers `text` under `digest` (64 lowercase hex digits). The registry does not
// copy the text: `owner` keeps the memory `text` points into alive (the caller's
// Python string, held by reference), for as long as the entry lives (the process).
// Registering the same text again is a no-op; a different text under a registered
// digest throws. `compiled` (optional) is the Structure the caller already compiled
// from `text` while validating it: the first lookup takes it instead of compiling
// the text again.
void register_structure(std::string_view digest, std::shared_ptr<const void> owner,
                        std::string_view text,
                        std::shared_ptr<const Structure> compiled = nullptr);
// The compiled Structure for `digest`: shared with every thread that still holds it,
// else compiled from the registered text. Throws std::runtime_error naming the digest
// when it was never registered in this process, and the reader's errors on bad JSON.
std::shared_ptr<const Structure> registered_structure(std::string_view digest);
// registered (entries), registered_bytes (their texts), compiles (from registered text)
std::map<std::string, int64_t> registry_stats();

}  // namespace phasic
