// The XLA FFI handler of the sampler (phasic_sample): draws of the absorption time or
// of reward totals from a Philox key, for a batch of (theta, key, rewards).
#include <omp.h>

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "ffi_handlers.hpp"
#include "kernels.hpp"
#include "structure_cache.hpp"
#include "threads.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace phasic {
namespace {

using Dims = std::vector<int64_t>;

template <class Buf>
Dims shape_of(const Buf& b) {
  auto d = b.dimensions();
  return Dims(d.begin(), d.end());
}

std::string show(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

// Leading `batch` dimensions followed by `tail`.
Dims with_tail(const Dims& batch, std::initializer_list<int64_t> tail) {
  Dims d = batch;
  d.insert(d.end(), tail);
  return d;
}

// The shape checks, in argument order: an empty string when every shape fits.
// theta is (batch..., P), key (batch..., 2), rewards (batch..., R, V) and the draws
// (batch..., N, R).
std::string check_shapes(const Dims& theta, const Dims& key, const Dims& rewards,
                         const Dims& draws) {
  if (theta.empty()) return "theta must have at least one dimension";
  const Dims batch(theta.begin(), theta.end() - 1);
  if (key != with_tail(batch, {2}))
    return "key has shape " + show(key) + " but should be " + show(with_tail(batch, {2})) +
           " (two uint32 words per theta)";
  if (rewards.size() != batch.size() + 2 || Dims(rewards.begin(), rewards.end() - 2) != batch)
    return "rewards has shape " + show(rewards) + " but theta has batch shape " + show(batch) +
           "; it needs the batch dimensions followed by (rows, vertices)";
  const int64_t R = rewards[rewards.size() - 2];
  if (draws.size() != batch.size() + 2 || Dims(draws.begin(), draws.end() - 2) != batch ||
      draws.back() != R)
    return "draws output shape " + show(draws) + " should be the batch shape " + show(batch) +
           " followed by (draws, " + std::to_string(R) + ")";
  return "";
}

// phasic_sample: out[b, i, :] = the reward totals of draw i of key[b] at theta[b].
ffi::Error Sample(ffi::Buffer<ffi::F64> theta, ffi::Buffer<ffi::U32> key,
                  ffi::Buffer<ffi::F64> rewards, ffi::ResultBuffer<ffi::F64> out,
                  std::string_view digest, bool discrete) {
  const Dims td = shape_of(theta), rd = shape_of(rewards);
  const std::string shape_error = check_shapes(td, shape_of(key), rd, shape_of(*out));
  if (!shape_error.empty()) return ffi::Error::InvalidArgument(shape_error);
  std::shared_ptr<const Structure> s;
  try {
    s = cached_structure(digest);
  } catch (const std::exception& e) {
    return ffi::Error::InvalidArgument(std::string("structure: ") + e.what());
  }
  if (s->discrete != discrete)
    return ffi::Error::InvalidArgument(
        s->discrete ? "the graph is discrete but discrete=False was passed; pass discrete=True"
                    : "the graph is continuous but discrete=True was passed; pass discrete=False");
  const int64_t P = td.back(), R = rd[rd.size() - 2], V = rd.back();
  const int64_t N = shape_of(*out)[rd.size() - 2];
  int64_t B = 1;
  for (size_t i = 0; i + 1 < td.size(); ++i) B *= td[i];

  // One jump chain per batch element; the lowest failing element is reported.
  std::vector<std::unique_ptr<JumpChain>> chains(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    try {
      chains[b] = std::make_unique<JumpChain>(*s, theta.typed_data() + b * P, P,
                                              rewards.typed_data() + b * R * V, R, V);
    } catch (const std::exception& e) {
      return ffi::Error::InvalidArgument(
          (B > 1 ? "batch element " + std::to_string(b) + " of " + std::to_string(B) + ": "
                 : std::string()) + e.what());
    }
  }

  // Every draw depends on (key, draw index) alone, so any split over threads gives
  // the same numbers.
  const uint32_t* keys = key.typed_data();
  double* o = out->typed_data();
  const int64_t total = B * N;
  const int nt = static_cast<int>(get_num_threads());
  std::atomic<int64_t> first_stuck{-1};  // once a draw is stuck the rest are skipped
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && total >= 512)
  for (int64_t t = 0; t < total; ++t) {
    if (first_stuck.load(std::memory_order_relaxed) >= 0) continue;
    const int64_t b = t / N, i = t - b * N;
    if (!chains[b]->draw(keys + 2 * b, static_cast<uint64_t>(i), o + t * R))
      first_stuck.store(t);
  }
  if (first_stuck >= 0) {
    try {
      too_many_visits(static_cast<uint64_t>(first_stuck % N));
    } catch (const std::exception& e) {
      return ffi::Error::InvalidArgument(e.what());
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicSample, Sample,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<std::string_view>("digest")
                                  .Attr<bool>("discrete"));

}  // namespace phasic
