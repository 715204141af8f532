// Small open-addressing hash tables used by the graph builder and validation.
//
// Their hashes are keyed with a random seed drawn once per process: with a fixed,
// invertible hash, 40,000 crafted states (2 MB of JSON) that all hash alike took 38 s
// to read instead of 0.05 s (every insertion probed past all the others). The seed
// only moves entries between slots; which vertex holds which state never depends on
// it, so results are the same in every process.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace phasic {

inline uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// The process's hash seed: random, fixed at first use.
inline uint64_t hash_seed() {
  static const uint64_t seed = [] {
    uint64_t s = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    try {
      std::random_device rd;
      s ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {  // no entropy source: the clock alone still varies per process
    }
    return mix64(s ^ 0x9E3779B97F4A7C15ULL);
  }();
  return seed;
}

// Two independent lanes over pairs of entries keep the dependency chain short. Each
// word goes through the full mixer with the secret seed in the running value, so
// the differences an attacker chooses reach the slot bits unpredictably.
inline uint64_t hash_state(const int32_t* s, int64_t len) {
  const uint64_t seed = hash_seed();
  uint64_t a = seed ^ static_cast<uint64_t>(len), b = mix64(seed ^ 0xC2B2AE3D27D4EB4FULL);
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    uint64_t x, y;
    std::memcpy(&x, s + i, 8);
    std::memcpy(&y, s + i + 2, 8);
    a = mix64(a ^ x);
    b = mix64(b ^ y);
  }
  for (; i < len; ++i) a = mix64(a ^ static_cast<uint32_t>(s[i]));
  return mix64(a ^ (b * 0x9E3779B97F4A7C15ULL));
}

// Slots examined by StateIndex and KeySet lookups and insertions (rehashing
// included) on this thread: a diagnostic, exposed as `_core.hash_probes()`, so that
// tests can check that hashing costs O(1) per operation by counting rather than
// timing. Each operation adds its probe length once, when it ends: one add per
// operation, nothing per slot.
inline thread_local int64_t t_hash_probes = 0;

// Records a probe run that started at slot `home` and stopped at slot `last`.
inline void count_probes(uint64_t home, uint64_t last, uint64_t mask) {
  t_hash_probes += static_cast<int64_t>(((last - home) & mask) + 1);
}

// Maps states (rows of a flat int32 array owned elsewhere) to vertex indices.
class StateIndex {
 public:
  // Returns the vertex holding `state`, or -1.
  int64_t find(const std::vector<int32_t>& states, int64_t len, const int32_t* state) const {
    if (slots_.empty()) return -1;
    uint32_t tag;
    return slots_[slot_of(states, len, state, tag)];
  }
  // Inserts vertex v (whose state is already in `states`); returns an existing
  // vertex with the same state instead, if there is one.
  int64_t insert(const std::vector<int32_t>& states, int64_t len, int32_t v) {
    if ((count_ + 1) * 2 > slots_.size()) grow(states, len);
    uint32_t tag;
    const uint64_t i = slot_of(states, len, states.data() + static_cast<size_t>(v) * len, tag);
    if (slots_[i] >= 0) return slots_[i];
    slots_[i] = v;
    tags_[i] = tag;
    ++count_;
    return v;
  }
  void reserve(const std::vector<int32_t>& states, int64_t len, size_t n) {
    while (slots_.size() < 2 * n) grow(states, len);
  }

 private:
  // The slot holding `state`, or else the empty slot where it belongs; sets `tag`
  // to the state's tag. The table must have slots.
  uint64_t slot_of(const std::vector<int32_t>& states, int64_t len, const int32_t* state,
                   uint32_t& tag) const {
    const uint64_t mask = slots_.size() - 1;
    const uint64_t hv = hash_state(state, len);
    tag = static_cast<uint32_t>(hv >> 32);
    const uint64_t home = hv & mask;
    uint64_t i = home;
    for (;; i = (i + 1) & mask) {
      const int32_t v = slots_[i];
      if (v < 0) break;
      if (tags_[i] == tag && (len == 0 || std::memcmp(states.data() + static_cast<size_t>(v) * len,
                                                      state, sizeof(int32_t) * len) == 0))
        break;
    }
    count_probes(home, i, mask);
    return i;
  }
  void grow(const std::vector<int32_t>& states, int64_t len) {
    std::vector<int32_t> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, -1);
    tags_.assign(slots_.size(), 0);
    count_ = 0;
    for (int32_t v : old)
      if (v >= 0) insert(states, len, v);
  }
  std::vector<int32_t> slots_;
  std::vector<uint32_t> tags_;  // high hash bits per slot: most mismatches skip memcmp
  size_t count_ = 0;
};

// A set of 64-bit keys (edge (from, to) pairs), never holding the all-ones key.
class KeySet {
 public:
  // Inserts key; returns false if it was already present.
  bool insert(uint64_t key) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const uint64_t i = slot_of(key);
    if (slots_[i] == key) return false;
    slots_[i] = key;
    ++count_;
    return true;
  }
  bool contains(uint64_t key) const { return !slots_.empty() && slots_[slot_of(key)] == key; }
  void reserve(size_t n) {
    while (slots_.size() < 2 * n) grow();
  }

 private:
  static constexpr uint64_t kEmpty = ~0ULL;
  // The slot holding `key`, or else the empty slot where it belongs (the table
  // must have slots).
  uint64_t slot_of(uint64_t key) const {
    const uint64_t mask = slots_.size() - 1;
    const uint64_t home = mix64(key ^ hash_seed()) & mask;
    uint64_t i = home;
    while (slots_[i] != kEmpty && slots_[i] != key) i = (i + 1) & mask;
    count_probes(home, i, mask);
    return i;
  }
  void grow() {
    std::vector<uint64_t> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, kEmpty);
    count_ = 0;
    for (uint64_t k : old)
      if (k != kEmpty) insert(k);
  }
  std::vector<uint64_t> slots_;
  size_t count_ = 0;
};

inline uint64_t edge_key(int64_t from, int64_t to) {
  return (static_cast<uint64_t>(from) << 32) | static_cast<uint32_t>(to);
}

}  // namespace phasic
