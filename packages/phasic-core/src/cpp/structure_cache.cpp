#include "structure_cache.hpp"

#include <atomic>
#include <list>
#include <stdexcept>
#include <unordered_map>

#include "structure_registry.hpp"

namespace phasic {

namespace {

std::atomic<int64_t> g_hits{0}, g_misses{0}, g_evictions{0}, g_entries{0};
std::atomic<int64_t> g_capacity{32};
std::atomic<uint64_t> g_generation{0};

// The digest is SHA-256 of the text, so a hit needs no comparison of the text. The
// Structure itself is immutable and may be shared with other threads' caches.
struct Entry {
  std::string digest;
  std::shared_ptr<const Structure> structure;
};

struct ThreadCache {
  uint64_t generation = 0;
  std::list<Entry> lru;  // most recent first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> by_digest;  // views into lru

  void drop_all() {
    // Entries of an older generation were already written off by cache_clear().
    if (generation == g_generation.load()) g_entries -= static_cast<int64_t>(lru.size());
    by_digest.clear();
    lru.clear();
  }
  void trim() {
    const int64_t cap = g_capacity.load();
    while (static_cast<int64_t>(lru.size()) > cap) {
      by_digest.erase(lru.back().digest);
      lru.pop_back();
      ++g_evictions;
      --g_entries;
    }
  }
  ~ThreadCache() { drop_all(); }
};

thread_local ThreadCache t_cache;

}  // namespace

std::shared_ptr<const Structure> cached_structure(std::string_view digest) {
  ThreadCache& c = t_cache;
  const uint64_t gen = g_generation.load();
  if (c.generation != gen) {
    c.by_digest.clear();
    c.lru.clear();
    c.generation = gen;
  }
  auto it = c.by_digest.find(digest);
  if (it != c.by_digest.end()) {
    c.lru.splice(c.lru.begin(), c.lru, it->second);
    ++g_hits;
    c.trim();  // a capacity lowered since the last miss applies to this thread now
    return it->second->structure;
  }
  auto parsed = registered_structure(digest);
  ++g_misses;
  c.lru.push_front(Entry{std::string(digest), parsed});
  c.by_digest[c.lru.front().digest] = c.lru.begin();
  ++g_entries;
  c.trim();
  return parsed;
}

std::map<std::string, int64_t> cache_stats() {
  std::map<std::string, int64_t> stats = {{"hits", g_hits.load()},
                                          {"misses", g_misses.load()},
                                          {"evictions", g_evictions.load()},
                                          {"entries", g_entries.load()},
                                          {"capacity", g_capacity.load()}};
  stats.merge(registry_stats());
  return stats;
}

void cache_clear() {
  ++g_generation;
  g_entries = 0;
}

void set_cache_capacity(int64_t n) {
  if (n < 1) throw std::invalid_argument("cache capacity must be >= 1, got " + std::to_string(n));
  g_capacity = n;
}

}  // namespace phasic
