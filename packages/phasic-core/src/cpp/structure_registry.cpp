#include "structure_registry.hpp"

#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace phasic {

namespace {

struct Source {
  std::shared_ptr<const void> owner;  // keeps `text` alive
  std::string_view text;
  std::weak_ptr<const Structure> compiled;  // alive while some thread's cache holds it
};

// Texts are never dropped: a program compiled (or loaded from JAX's persistent
// cache) may run at any later time, and it holds nothing but the digest.
struct Registry {
  std::mutex mutex;
  std::unordered_map<std::string, Source> by_digest;
  int64_t bytes = 0;
  int64_t compiles = 0;
  // The structure registered last with its compiled form, kept alive until a lookup
  // takes it: Python registers while tracing and the program runs right after, so
  // the text is not compiled twice; one slot keeps the memory bounded.
  std::string pending_digest;
  std::shared_ptr<const Structure> pending;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: handlers may run at exit
  return *r;
}

bool is_digest(std::string_view d) {
  if (d.size() != 64) return false;
  for (char c : d)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

void register_structure(std::string_view digest, std::shared_ptr<const void> owner,
                        std::string_view text, std::shared_ptr<const Structure> compiled) {
  if (!is_digest(digest))
    throw std::invalid_argument("structure digest must be 64 lowercase hex digits (SHA-256), got " +
                                std::to_string(digest.size()) + " characters");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.by_digest.find(std::string(digest));
  if (it != r.by_digest.end() && it->second.text != text)
    throw std::invalid_argument("structure digest " + std::string(digest) +
                                " is already registered with a different text; the digest "
                                "must be the SHA-256 of the structure's JSON text");
  if (it == r.by_digest.end()) {
    r.bytes += static_cast<int64_t>(text.size());
    it = r.by_digest.emplace(std::string(digest), Source{std::move(owner), text, {}}).first;
  }
  if (compiled && it->second.compiled.expired()) {
    it->second.compiled = compiled;
    r.pending_digest = std::string(digest);
    r.pending = std::move(compiled);
  }
}

std::shared_ptr<const Structure> registered_structure(std::string_view digest) {
  Registry& r = registry();
  std::shared_ptr<const void> owner;  // keeps `text` alive while it is compiled
  std::string_view text;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.by_digest.find(std::string(digest));
    if (it == r.by_digest.end())
      throw std::runtime_error(
          "no structure is registered under digest " + std::string(digest.substr(0, 64)) +
          " in this process. The compiled program carries only the digest; the phasic call "
          "that traces it (compute_*_ffi, loglik, ...) registers the structure, and it must "
          "run in every process that executes the program (trace the function there too)");
    if (auto s = it->second.compiled.lock()) {
      if (r.pending_digest == digest) r.pending.reset();
      return s;
    }
    owner = it->second.owner;
    text = it->second.text;
  }
  // Compiled outside the lock: a large structure takes a while, other digests need not wait.
  auto compiled = Structure::from_json(text);
  std::lock_guard<std::mutex> lock(r.mutex);
  ++r.compiles;
  r.by_digest.at(std::string(digest)).compiled = compiled;
  return compiled;
}

std::map<std::string, int64_t> registry_stats() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return {{"registered", static_cast<int64_t>(r.by_digest.size())},
          {"registered_bytes", r.bytes},
          {"compiles", r.compiles}};
}

}  // namespace phasic
