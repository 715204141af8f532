#include "structure_registry.hpp"

#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace phasic {

namespace {

// Sources are never dropped: a program compiled (or loaded from JAX's persistent
// cache) may run at any later time, and it holds nothing but the digest.
struct Registry {
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const std::string>> by_digest;
  int64_t bytes = 0;
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

void register_structure(std::string_view digest, std::string text) {
  if (!is_digest(digest))
    throw std::invalid_argument("structure digest must be 64 lowercase hex digits (SHA-256), got " +
                                std::to_string(digest.size()) + " characters");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.by_digest.find(std::string(digest));
  if (it != r.by_digest.end()) {
    if (*it->second != text)
      throw std::invalid_argument("structure digest " + std::string(digest) +
                                  " is already registered with a different text; the digest "
                                  "must be the SHA-256 of the structure's JSON text");
    return;
  }
  r.bytes += static_cast<int64_t>(text.size());
  r.by_digest.emplace(std::string(digest), std::make_shared<const std::string>(std::move(text)));
}

std::shared_ptr<const std::string> registered_source(std::string_view digest) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.by_digest.find(std::string(digest));
  if (it == r.by_digest.end())
    throw std::runtime_error(
        "no structure is registered under digest " + std::string(digest.substr(0, 64)) +
        " in this process. The compiled program carries only the digest; the phasic call "
        "that traces it (compute_*_ffi, loglik, ...) registers the structure, and it must "
        "run in every process that executes the program (trace the function there too)");
  return it->second;
}

std::map<std::string, int64_t> registry_stats() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return {{"registered", static_cast<int64_t>(r.by_digest.size())},
          {"registered_bytes", r.bytes}};
}

}  // namespace phasic
