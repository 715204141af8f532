// The XLA FFI handler of the sampler (phasic_sample): draws of the absorption time or
// of reward totals from a Philox key, for a batch of (theta, key, rewards).
#include <omp.h>

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "ffi_common.hpp"
#include "ffi_handlers.hpp"

namespace phasic {
namespace {

using namespace ffi_common;

// phasic_sample: out[b, i, :] = the reward totals of draw i of key[b] at theta[b].
// theta is (batch..., P), key (batch..., 2), rewards (batch..., R, V) and the draws
// (batch..., N, R); the shapes are checked in argument order.
ffi::Error Sample(In theta, ffi::Buffer<ffi::U32> key, In rewards, Out out,
                  std::string_view digest, bool discrete) {
  Preamble pre(theta);
  const Dims want_key = pre.batch_and({2});
  pre.require(dims(key) == want_key, "key has shape " + shape_string(dims(key)) +
                                         " but should be " + shape_string(want_key) +
                                         " (two uint32 words per theta)");
  int64_t R, V;  // not a structured binding: the lambda below captures them (C++17)
  std::tie(R, V) = pre.matrix_input("rewards", rewards, "rows, vertices");
  const Dims draws = dims(*out);
  const Dims& batch = pre.batch;
  pre.require(draws.size() == batch.size() + 2 &&
                  Dims(draws.begin(), draws.end() - 2) == batch && draws.back() == R,
              "draws output shape " + shape_string(draws) + " should be the batch shape " +
                  shape_string(batch) + " followed by (draws, " + std::to_string(R) + ")");
  pre.structure(digest, &discrete);
  if (!pre.ok()) return pre.error();
  const Structure& s = pre.s();
  const int64_t P = pre.P, B = pre.B;
  const int64_t N = draws[draws.size() - 2];

  // One jump chain per batch element, built one after another (no work estimate, so
  // run_batch stays serial); the lowest failing element is reported.
  std::vector<std::unique_ptr<JumpChain>> chains(static_cast<size_t>(B));
  ffi::Error built = run_batch(B, 0.0, [&](int64_t b) {
    chains[b] = std::make_unique<JumpChain>(s, theta.typed_data() + b * P, P,
                                            rewards.typed_data() + b * R * V, R, V);
  });
  if (built.failure()) return built;

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
                                  .Arg<In>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<In>()
                                  .Ret<In>()
                                  .Attr<std::string_view>("digest")
                                  .Attr<bool>("discrete"));

}  // namespace phasic
