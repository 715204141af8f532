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

namespace phasic {

// Registers `text` under `digest` (64 lowercase hex digits). Registering the same text
// again is a no-op; a different text under a registered digest throws.
void register_structure(std::string_view digest, std::string text);
// The source registered under `digest`; throws std::runtime_error naming the digest
// when it was never registered in this process.
std::shared_ptr<const std::string> registered_source(std::string_view digest);
// entries and bytes of registered sources
std::map<std::string, int64_t> registry_stats();

}  // namespace phasic
