// What every XLA FFI handler shares: the argument checks (Preamble), the batch loop
// (run_batch) and the binding prefix (bind_buffers). ffi_handlers.cpp and the handler
// files of each kernel family (ffi_<family>.cpp) include it.
#pragma once
#include <omp.h>

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels.hpp"
#include "structure_cache.hpp"
#include "threads.hpp"
#include "xla/ffi/api/ffi.h"

namespace phasic {
namespace ffi_common {

namespace ffi = xla::ffi;

using Dims = std::vector<int64_t>;
using In = ffi::Buffer<ffi::F64>;
using Out = ffi::ResultBuffer<ffi::F64>;

template <class Buf>
Dims dims(const Buf& b) {
  auto d = b.dimensions();
  return Dims(d.begin(), d.end());
}

inline std::string shape_string(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

inline int64_t product(const Dims& d) {
  int64_t p = 1;
  for (int64_t x : d) p *= x;
  return p;
}

// The checks every handler starts with, in this order: theta (its leading dimensions
// are the batch, its last is P), each further input's batch dimensions, nr_moments,
// the output shapes, then the structure from the cache and its kind. The first
// failure is kept and returned by error(); later checks are then skipped.
class Preamble {
 public:
  explicit Preamble(const In& theta) {
    const Dims td = dims(theta);
    if (td.empty()) {
      err_ = "theta must have at least one dimension";
      return;
    }
    batch = Dims(td.begin(), td.end() - 1);
    P = td.back();
    B = product(batch);
  }

  // `name` must have rank >= 1 and theta's batch dimensions; returns its last dim.
  int64_t input(const char* name, const In& buffer) {
    if (!ok()) return 0;
    const Dims d = dims(buffer);
    if (d.empty()) {
      err_ = std::string(name) + " must have at least one dimension, got a scalar";
      return 0;
    }
    if (Dims(d.begin(), d.end() - 1) != batch) {
      err_ = std::string(name) + " has shape " + shape_string(d) + " but theta has batch shape " +
             shape_string(batch) + "; every input needs the same leading (batch) dimensions";
      return 0;
    }
    return d.back();
  }

  // `name` must have theta's batch dimensions followed by two more (named `axes` in
  // the message); returns those two.
  std::pair<int64_t, int64_t> matrix_input(const char* name, const In& buffer,
                                           const char* axes = "rows, columns") {
    if (!ok()) return {0, 0};
    const Dims d = dims(buffer);
    if (d.size() != batch.size() + 2 || Dims(d.begin(), d.end() - 2) != batch) {
      err_ = std::string(name) + " has shape " + shape_string(d) + " but theta has batch shape " +
             shape_string(batch) + "; it needs the batch dimensions followed by (" + axes + ")";
      return {0, 0};
    }
    return {d[d.size() - 2], d.back()};
  }

  // A check of the handler's own: when `bad` (and nothing failed before), `message`
  // becomes the error.
  void require(bool good, const std::string& message) {
    if (ok() && !good) err_ = message;
  }

  // 0 <= nr_moments <= kMaxMoments (checked before any output is allocated).
  void nr_moments(int64_t k) {
    if (!ok()) return;
    try {
      check_nr_moments(k);
    } catch (const std::exception& e) {
      err_ = e.what();
    }
  }

  // The batch dimensions followed by `tail`.
  Dims batch_and(std::initializer_list<int64_t> tail) const {
    Dims d = batch;
    d.insert(d.end(), tail);
    return d;
  }

  // Output `name` must have shape `want`.
  void output(const char* name, Out& buffer, const Dims& want) {
    require(dims(*buffer) == want, std::string(name) + " output shape " +
                                       shape_string(dims(*buffer)) + " should be " +
                                       shape_string(want));
  }

  // The structure from the per-thread cache; `discrete` (when given) must match it.
  void structure(std::string_view digest, const bool* discrete = nullptr) {
    if (!ok()) return;
    try {
      s_ = cached_structure(digest);
    } catch (const std::exception& e) {
      err_ = std::string("structure: ") + e.what();
      return;
    } catch (...) {
      err_ = "structure: unknown error";
      return;
    }
    if (discrete && s_->discrete != *discrete)
      err_ = s_->discrete
                 ? "the graph is discrete but discrete=False was passed; pass discrete=True"
                 : "the graph is continuous but discrete=True was passed; pass discrete=False";
  }

  bool ok() const { return err_.empty(); }
  ffi::Error error() const { return ffi::Error::InvalidArgument(err_); }
  const Structure& s() const { return *s_; }

  Dims batch;
  int64_t P = 0, B = 0;

 private:
  std::string err_;
  std::shared_ptr<const Structure> s_;
};

// Runs fn(i) for every item i < n, in parallel when worth it; an exception in any
// item is caught inside the loop, and the lowest failing item's message is returned
// after label(i) (which says where it is, e.g. "batch element 3 of 8: ").
template <class F, class Label>
ffi::Error run_items(int64_t n, double work_per_item, F&& fn, Label&& label) {
  int64_t first_bad = -1;
  std::string message;
  const int nt = static_cast<int>(get_num_threads());
  const bool parallel = n > 1 && nt > 1 && static_cast<double>(n) * work_per_item > 2e4;
  auto run_one = [&](int64_t b) {
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
  };
  if (parallel) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t b = 0; b < n; ++b) run_one(b);
  } else {  // no team at all (an if(0) region still costs a runtime call per call)
    for (int64_t b = 0; b < n; ++b) run_one(b);
  }
  if (first_bad < 0) return ffi::Error::Success();
  return ffi::Error::InvalidArgument(label(first_bad) + message);
}

// run_items over the B batch elements, labelled "batch element b of B: " when B > 1.
template <class F>
ffi::Error run_batch(int64_t B, double work_per_element, F&& fn) {
  return run_items(B, work_per_element, std::forward<F>(fn), [B](int64_t b) {
    return B > 1 ? "batch element " + std::to_string(b) + " of " + std::to_string(B) + ": "
                 : std::string();
  });
}

// A binding's first part: n >= 1 float64 arguments (theta first), then n >= 1 float64
// results, then the attributes every target has. (Bindings cannot be copied or
// moved, so each step hands a temporary on.) Used in parentheses as a macro argument.
template <int n, class B>
auto with_args(B&& b) {
  if constexpr (n == 1) return std::move(b).template Arg<In>();
  else return with_args<n - 1>(std::move(b).template Arg<In>());
}
template <int n, class B>
auto with_rets(B&& b) {
  if constexpr (n == 1) return std::move(b).template Ret<In>();
  else return with_rets<n - 1>(std::move(b).template Ret<In>());
}
template <int inputs, int results>
auto bind_buffers() {
  return with_rets<results>(with_args<inputs>(ffi::Ffi::Bind()))
      .template Attr<std::string_view>("digest");
}

}  // namespace ffi_common
}  // namespace phasic
