#include "ffi_handlers.hpp"
#include "threads.hpp"

#include <omp.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <list>
#include <unordered_map>
#include <vector>

#include "kernels.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace phasic {

// ---------------------------------------------------------------- cache

namespace {

std::atomic<int64_t> g_hits{0}, g_misses{0}, g_evictions{0}, g_entries{0};
std::atomic<int64_t> g_capacity{32};
std::atomic<uint64_t> g_generation{0};

constexpr size_t kProbe = 64;  // bytes compared at each end on a hit, besides the length

struct Entry {
  int64_t key;
  size_t length;
  std::string head, tail;
  std::shared_ptr<const Structure> structure;
};

struct ThreadCache {
  uint64_t generation = 0;
  std::list<Entry> lru;  // most recent first
  std::unordered_map<int64_t, std::list<Entry>::iterator> by_key;

  void drop_all() {
    // Entries of an older generation were already written off by cache_clear().
    if (generation == g_generation.load()) g_entries -= static_cast<int64_t>(lru.size());
    lru.clear();
    by_key.clear();
  }
  void trim() {
    const int64_t cap = g_capacity.load();
    while (static_cast<int64_t>(lru.size()) > cap) {
      by_key.erase(lru.back().key);
      lru.pop_back();
      ++g_evictions;
      --g_entries;
    }
  }
  ~ThreadCache() { drop_all(); }
};

thread_local ThreadCache t_cache;

bool same_text(const Entry& e, std::string_view json) {
  if (e.length != json.size()) return false;
  const size_t k = std::min(kProbe, json.size());
  return std::memcmp(e.head.data(), json.data(), k) == 0 &&
         std::memcmp(e.tail.data(), json.data() + json.size() - k, k) == 0;
}

}  // namespace

std::shared_ptr<const Structure> cached_structure(std::string_view json, int64_t key) {
  ThreadCache& c = t_cache;
  const uint64_t gen = g_generation.load();
  if (c.generation != gen) {
    c.lru.clear();
    c.by_key.clear();
    c.generation = gen;
  }
  auto it = c.by_key.find(key);
  if (it != c.by_key.end()) {
    if (same_text(*it->second, json)) {
      c.lru.splice(c.lru.begin(), c.lru, it->second);
      ++g_hits;
      return it->second->structure;
    }
    c.lru.erase(it->second);  // a key collision: replace the entry
    c.by_key.erase(it);
    --g_entries;
  }
  ++g_misses;
  auto structure = Structure::from_json(json);
  const size_t k = std::min(kProbe, json.size());
  c.lru.push_front(Entry{key, json.size(), std::string(json.substr(0, k)),
                         std::string(json.substr(json.size() - k)), structure});
  c.by_key[key] = c.lru.begin();
  ++g_entries;
  c.trim();
  return structure;
}

std::map<std::string, int64_t> cache_stats() {
  return {{"hits", g_hits.load()},
          {"misses", g_misses.load()},
          {"evictions", g_evictions.load()},
          {"entries", g_entries.load()},
          {"capacity", g_capacity.load()}};
}

void cache_clear() {
  ++g_generation;
  g_entries = 0;
}

void set_cache_capacity(int64_t n) {
  if (n < 1) throw std::invalid_argument("cache capacity must be >= 1, got " + std::to_string(n));
  g_capacity = n;
}


// ---------------------------------------------------------------- handlers

namespace {

using Dims = std::vector<int64_t>;


template <class Buf>
Dims dims(const Buf& b) {
  auto d = b.dimensions();
  return Dims(d.begin(), d.end());
}

std::string shape_string(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

// Checks that `d` has rank >= 1 and the batch dims `batch`; returns its last dim.
bool split(const char* name, const Dims& d, const Dims& batch, int64_t& last, std::string& err) {
  if (d.empty()) {
    err = std::string(name) + " must have at least one dimension, got a scalar";
    return false;
  }
  if (Dims(d.begin(), d.end() - 1) != batch) {
    err = std::string(name) + " has shape " + shape_string(d) + " but theta has batch shape " +
          shape_string(batch) + "; every input needs the same leading (batch) dimensions";
    return false;
  }
  last = d.back();
  return true;
}

int64_t product(const Dims& d) {
  int64_t p = 1;
  for (int64_t x : d) p *= x;
  return p;
}

// Runs fn(b) for every batch element, in parallel when worth it; an exception in
// any element is caught inside the loop, and the lowest failing index is reported.
template <class F>
ffi::Error run_batch(int64_t B, double work_per_element, F&& fn) {
  int64_t first_bad = -1;
  std::string message;
  const int nt = static_cast<int>(get_num_threads());
  const bool parallel = B > 1 && nt > 1 && static_cast<double>(B) * work_per_element > 2e4;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (parallel)
  for (int64_t b = 0; b < B; ++b) {
    std::string err;
    try {
      fn(b);
    } catch (const std::exception& e) {
      err = e.what();
      if (err.empty()) err = "unknown error";
    } catch (...) {
      err = "unknown error";
    }
    if (!err.empty()) {
#pragma omp critical(phasic_batch_error)
      {
        if (first_bad < 0 || b < first_bad) {
          first_bad = b;
          message = err;
        }
      }
    }
  }
  if (first_bad < 0) return ffi::Error::Success();
  if (B > 1)
    message = "batch element " + std::to_string(first_bad) + " of " + std::to_string(B) + ": " +
              message;
  return ffi::Error::InvalidArgument(message);
}

bool lookup(std::string_view json, int64_t key, std::shared_ptr<const Structure>& s,
            std::string& err) {
  try {
    s = cached_structure(json, key);
    return true;
  } catch (const std::exception& e) {
    err = std::string("structure: ") + e.what();
  } catch (...) {
    err = "structure: unknown error";
  }
  return false;
}

bool check_discrete(const Structure& s, bool discrete, std::string& err) {
  if (s.discrete == discrete) return true;
  err = s.discrete ? "the graph is discrete but discrete=False was passed; pass discrete=True"
                   : "the graph is continuous but discrete=True was passed; pass discrete=False";
  return false;
}

ffi::Error PmfImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                   ffi::ResultBuffer<ffi::F64> out, std::string_view structure, int64_t key,
                   bool discrete) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t T = 0;
  if (!split("times", dims(times), batch, T, err)) return ffi::Error::InvalidArgument(err);
  if (dims(*out) != dims(times))
    return ffi::Error::InvalidArgument("output shape " + shape_string(dims(*out)) +
                                       " differs from times shape " + shape_string(dims(times)));
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err) || !check_discrete(*s, discrete, err))
    return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  const Structure& st = *s;
  return run_batch(product(batch), work_estimate(st) * 50, [&](int64_t b) {
    compute_distribution(st, th + b * P, P, tm + b * T, T, o + b * T, nullptr);
  });
}

ffi::Error MomentsImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> rewards,
                       ffi::ResultBuffer<ffi::F64> out, std::string_view structure, int64_t key,
                       int64_t nr_moments) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t R = 0;
  if (!split("rewards", dims(rewards), batch, R, err)) return ffi::Error::InvalidArgument(err);
  if (nr_moments < 0)
    return ffi::Error::InvalidArgument("nr_moments must be >= 0, got " +
                                       std::to_string(nr_moments));
  Dims want = batch;
  want.push_back(nr_moments);
  if (dims(*out) != want)
    return ffi::Error::InvalidArgument("output shape " + shape_string(dims(*out)) +
                                       " should be " + shape_string(want));
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err)) return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  const Structure& st = *s;
  return run_batch(product(batch), work_estimate(st) * (nr_moments + 1), [&](int64_t b) {
    compute_moments(st, th + b * P, P, R ? rw + b * R : nullptr, R, nr_moments,
                    o + b * nr_moments);
  });
}

ffi::Error PmfAndMomentsImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                             ffi::Buffer<ffi::F64> rewards, ffi::ResultBuffer<ffi::F64> pmf_out,
                             ffi::ResultBuffer<ffi::F64> mom_out, std::string_view structure,
                             int64_t key, bool discrete, int64_t nr_moments) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t T = 0, R = 0;
  if (!split("times", dims(times), batch, T, err) ||
      !split("rewards", dims(rewards), batch, R, err))
    return ffi::Error::InvalidArgument(err);
  if (nr_moments < 0)
    return ffi::Error::InvalidArgument("nr_moments must be >= 0, got " +
                                       std::to_string(nr_moments));
  Dims want = batch;
  want.push_back(nr_moments);
  if (dims(*pmf_out) != dims(times) || dims(*mom_out) != want)
    return ffi::Error::InvalidArgument("output shapes " + shape_string(dims(*pmf_out)) + ", " +
                                       shape_string(dims(*mom_out)) + " should be " +
                                       shape_string(dims(times)) + ", " + shape_string(want));
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err) || !check_discrete(*s, discrete, err))
    return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* po = pmf_out->typed_data();
  double* mo = mom_out->typed_data();
  const Structure& st = *s;
  return run_batch(product(batch), work_estimate(st) * (50 + nr_moments), [&](int64_t b) {
    compute_distribution(st, th + b * P, P, tm + b * T, T, po + b * T, nullptr);
    compute_moments(st, th + b * P, P, R ? rw + b * R : nullptr, R, nr_moments,
                    mo + b * nr_moments);
  });
}

// ------------------------------------------------ derivatives and log-densities

// Checks a Jacobian output: batch dims, then (rows, P).
bool check_jac(const char* name, const Dims& got, const Dims& batch, int64_t rows, int64_t P,
               std::string& err) {
  Dims want = batch;
  want.push_back(rows);
  want.push_back(P);
  if (got == want) return true;
  err = std::string(name) + " output shape " + shape_string(got) + " should be " +
        shape_string(want);
  return false;
}

ffi::Error PmfJacImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                      ffi::ResultBuffer<ffi::F64> out, ffi::ResultBuffer<ffi::F64> jac,
                      std::string_view structure, int64_t key, bool discrete) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t T = 0;
  if (!split("times", dims(times), batch, T, err)) return ffi::Error::InvalidArgument(err);
  if (dims(*out) != dims(times))
    return ffi::Error::InvalidArgument("output shape " + shape_string(dims(*out)) +
                                       " differs from times shape " + shape_string(dims(times)));
  if (!check_jac("jacobian", dims(*jac), batch, T, P, err))
    return ffi::Error::InvalidArgument(err);
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err) || !check_discrete(*s, discrete, err))
    return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  double* j = jac->typed_data();
  const Structure& st = *s;
  return run_batch(product(batch), work_estimate(st) * 50 * (P + 1), [&](int64_t b) {
    compute_pmf_jac(st, th + b * P, P, tm + b * T, T, o + b * T, j + b * T * P);
  });
}

ffi::Error MomentsJacImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> rewards,
                          ffi::ResultBuffer<ffi::F64> out, ffi::ResultBuffer<ffi::F64> jac,
                          std::string_view structure, int64_t key, int64_t nr_moments) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t R = 0;
  if (!split("rewards", dims(rewards), batch, R, err)) return ffi::Error::InvalidArgument(err);
  if (nr_moments < 0)
    return ffi::Error::InvalidArgument("nr_moments must be >= 0, got " +
                                       std::to_string(nr_moments));
  Dims want = batch;
  want.push_back(nr_moments);
  if (dims(*out) != want)
    return ffi::Error::InvalidArgument("output shape " + shape_string(dims(*out)) +
                                       " should be " + shape_string(want));
  if (!check_jac("jacobian", dims(*jac), batch, nr_moments, P, err))
    return ffi::Error::InvalidArgument(err);
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err)) return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac->typed_data();
  const Structure& st = *s;
  const int64_t K = nr_moments;
  return run_batch(product(batch), work_estimate(st) * (K + 1) * (P + 1), [&](int64_t b) {
    compute_moments_jac(st, th + b * P, P, R ? rw + b * R : nullptr, R, K, o + b * K,
                        j + b * K * P);
  });
}

ffi::Error PmfAndMomentsJacImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                                ffi::Buffer<ffi::F64> rewards,
                                ffi::ResultBuffer<ffi::F64> pmf_out,
                                ffi::ResultBuffer<ffi::F64> pmf_jac,
                                ffi::ResultBuffer<ffi::F64> mom_out,
                                ffi::ResultBuffer<ffi::F64> mom_jac, std::string_view structure,
                                int64_t key, bool discrete, int64_t nr_moments) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t T = 0, R = 0;
  if (!split("times", dims(times), batch, T, err) ||
      !split("rewards", dims(rewards), batch, R, err))
    return ffi::Error::InvalidArgument(err);
  if (nr_moments < 0)
    return ffi::Error::InvalidArgument("nr_moments must be >= 0, got " +
                                       std::to_string(nr_moments));
  const int64_t K = nr_moments;
  Dims want = batch;
  want.push_back(K);
  if (dims(*pmf_out) != dims(times) || dims(*mom_out) != want)
    return ffi::Error::InvalidArgument("output shapes " + shape_string(dims(*pmf_out)) + ", " +
                                       shape_string(dims(*mom_out)) + " should be " +
                                       shape_string(dims(times)) + ", " + shape_string(want));
  if (!check_jac("pmf jacobian", dims(*pmf_jac), batch, T, P, err) ||
      !check_jac("moments jacobian", dims(*mom_jac), batch, K, P, err))
    return ffi::Error::InvalidArgument(err);
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err) || !check_discrete(*s, discrete, err))
    return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* po = pmf_out->typed_data();
  double* pj = pmf_jac->typed_data();
  double* mo = mom_out->typed_data();
  double* mj = mom_jac->typed_data();
  const Structure& st = *s;
  return run_batch(product(batch), work_estimate(st) * (50 + K) * (P + 1), [&](int64_t b) {
    compute_pmf_jac(st, th + b * P, P, tm + b * T, T, po + b * T, pj + b * T * P);
    compute_moments_jac(st, th + b * P, P, R ? rw + b * R : nullptr, R, K, mo + b * K,
                        mj + b * K * P);
  });
}

// log pdf / log pmf; `jac` (d log f / d theta) only when with_jac.
ffi::Error LogPmfCommon(ffi::Buffer<ffi::F64>& theta, ffi::Buffer<ffi::F64>& times,
                        ffi::ResultBuffer<ffi::F64>& out, ffi::ResultBuffer<ffi::F64>* jac,
                        std::string_view structure, int64_t key, bool discrete) {
  std::string err;
  const Dims td = dims(theta);
  if (td.empty()) return ffi::Error::InvalidArgument("theta must have at least one dimension");
  const Dims batch(td.begin(), td.end() - 1);
  const int64_t P = td.back();
  int64_t T = 0;
  if (!split("times", dims(times), batch, T, err)) return ffi::Error::InvalidArgument(err);
  if (dims(*out) != dims(times))
    return ffi::Error::InvalidArgument("output shape " + shape_string(dims(*out)) +
                                       " differs from times shape " + shape_string(dims(times)));
  if (jac && !check_jac("gradient", dims(**jac), batch, T, P, err))
    return ffi::Error::InvalidArgument(err);
  std::shared_ptr<const Structure> s;
  if (!lookup(structure, key, s, err) || !check_discrete(*s, discrete, err))
    return ffi::Error::InvalidArgument(err);
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const Structure& st = *s;
  const double work = work_estimate(st) * 50 * (jac ? P + 1 : 1);
  return run_batch(product(batch), work, [&](int64_t b) {
    compute_log_pmf(st, th + b * P, P, tm + b * T, T, o + b * T, j ? j + b * T * P : nullptr);
  });
}

ffi::Error LogPmfImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                      ffi::ResultBuffer<ffi::F64> out, std::string_view structure, int64_t key,
                      bool discrete) {
  return LogPmfCommon(theta, times, out, nullptr, structure, key, discrete);
}

ffi::Error LogPmfJacImpl(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::F64> times,
                         ffi::ResultBuffer<ffi::F64> out, ffi::ResultBuffer<ffi::F64> jac,
                         std::string_view structure, int64_t key, bool discrete) {
  return LogPmfCommon(theta, times, out, &jac, structure, key, discrete);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfJac, PmfJacImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMomentsJac, MomentsJacImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<int64_t>("nr_moments"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfAndMomentsJac, PmfAndMomentsJacImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete")
                                  .Attr<int64_t>("nr_moments"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmf, LogPmfImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicLogPmfJac, LogPmfJacImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmf, PmfImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicMoments, MomentsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<int64_t>("nr_moments"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPmfAndMoments, PmfAndMomentsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("structure")
                                  .Attr<int64_t>("key")
                                  .Attr<bool>("discrete")
                                  .Attr<int64_t>("nr_moments"));

void* ffi_pmf_handler() { return reinterpret_cast<void*>(PhasicPmf); }
void* ffi_moments_handler() { return reinterpret_cast<void*>(PhasicMoments); }
void* ffi_pmf_and_moments_handler() { return reinterpret_cast<void*>(PhasicPmfAndMoments); }
void* ffi_pmf_jac_handler() { return reinterpret_cast<void*>(PhasicPmfJac); }
void* ffi_moments_jac_handler() { return reinterpret_cast<void*>(PhasicMomentsJac); }
void* ffi_pmf_and_moments_jac_handler() { return reinterpret_cast<void*>(PhasicPmfAndMomentsJac); }
void* ffi_log_pmf_handler() { return reinterpret_cast<void*>(PhasicLogPmf); }
void* ffi_log_pmf_jac_handler() { return reinterpret_cast<void*>(PhasicLogPmfJac); }

}  // namespace phasic
