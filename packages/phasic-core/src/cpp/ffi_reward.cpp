// XLA FFI handlers of the reward-weighted distributions (reward_density.cpp): the
// pdf/pmf of Y = integral of r(X_t) dt (or the sum over visited states) for R reward
// vectors at once, and its log, each with a Jacobian companion. Shapes:
// theta [..., P], times [..., R, T], rewards [..., R, V] -> out [..., R, T]
// (Jacobians [..., R, T, P]); the leading dimensions are the batch.
#include <omp.h>

#include <exception>
#include <memory>
#include <utility>
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

using In = ffi::Buffer<ffi::F64>;
using Out = ffi::ResultBuffer<ffi::F64>;
using Dims = std::vector<int64_t>;

template <class Buf>
Dims dims_of(const Buf& b) {
  auto d = b.dimensions();
  return Dims(d.begin(), d.end());
}

std::string shape_text(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

// The shape checks: "" when times and rewards are theta's batch dimensions followed
// by (R, T) and (R, V) with the same R (B, R, T, V set), else the message.
std::string check_shapes(const Dims& td, const Dims& tm, const Dims& rw, int64_t& B, int64_t& R,
                         int64_t& T, int64_t& V) {
  if (td.empty()) return "theta must have at least one dimension";
  const Dims batch(td.begin(), td.end() - 1);
  auto matrix = [&](const char* name, const Dims& d, const char* cols) -> std::string {
    if (d.size() != batch.size() + 2 || Dims(d.begin(), d.end() - 2) != batch)
      return std::string(name) + " has shape " + shape_text(d) + " but theta has batch shape " +
             shape_text(batch) + "; it needs the batch dimensions followed by (R, " + cols + ")";
    return "";
  };
  std::string err = matrix("times", tm, "T");
  if (err.empty()) err = matrix("rewards", rw, "V");
  if (!err.empty()) return err;
  R = rw[rw.size() - 2];
  V = rw.back();
  T = tm.back();
  if (tm[tm.size() - 2] != R)
    return "times has " + std::to_string(tm[tm.size() - 2]) + " rows but rewards has " +
           std::to_string(R) + "; one row of times per reward vector";
  B = 1;
  for (int64_t x : batch) B *= x;
  return "";
}

// Runs fn(i) for every (batch element, reward row) pair i, in parallel when worth it;
// the lowest failing pair's message is returned.
template <class F>
ffi::Error each_row(int64_t items, int64_t rows, double work, F&& fn) {
  int64_t first_bad = -1;
  std::string message;
  const int nt = static_cast<int>(get_num_threads());
  const bool parallel = items > 1 && nt > 1 && static_cast<double>(items) * work > 2e4;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (parallel)
  for (int64_t i = 0; i < items; ++i) {
    std::string err;
    try {
      fn(i);
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "unknown error";
    }
    if (!err.empty()) {
#pragma omp critical(phasic_reward_error)
      if (first_bad < 0 || i < first_bad) {
        first_bad = i;
        message = err.empty() ? "unknown error" : err;
      }
    }
  }
  if (first_bad < 0) return ffi::Error::Success();
  if (items > rows) message = "batch element " + std::to_string(first_bad / rows) + ": " + message;
  if (rows > 1) message = "reward row " + std::to_string(first_bad % rows) + ": " + message;
  return ffi::Error::InvalidArgument(message);
}

// One handler body: pdf/pmf (log: its log) of every reward row at its row of times,
// with the Jacobian in theta when jac is given.
ffi::Error reward_distribution(In& theta, In& times, In& rewards, Out& out, Out* jac,
                               std::string_view digest, bool discrete, bool log) {
  int64_t B = 0, R = 0, T = 0, V = 0;
  const Dims td = dims_of(theta);
  std::string err = check_shapes(td, dims_of(times), dims_of(rewards), B, R, T, V);
  const int64_t P = td.empty() ? 0 : td.back();
  if (err.empty()) {
    Dims want = dims_of(times);
    if (dims_of(*out) != want)
      err = "output shape " + shape_text(dims_of(*out)) + " should be " + shape_text(want);
    want.push_back(P);
    if (err.empty() && jac && dims_of(**jac) != want)
      err = "jacobian shape " + shape_text(dims_of(**jac)) + " should be " + shape_text(want);
  }
  std::shared_ptr<const Structure> sp;
  if (err.empty()) {
    try {
      sp = cached_structure(digest);
    } catch (const std::exception& e) {
      err = std::string("structure: ") + e.what();
    }
  }
  if (err.empty() && sp->discrete != discrete)
    err = sp->discrete ? "the graph is discrete but discrete=False was passed; pass discrete=True"
                       : "the graph is continuous but discrete=True was passed; pass discrete=False";
  if (!err.empty()) return ffi::Error::InvalidArgument(err);
  const Structure& st = *sp;
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * 50 * (jac ? P + 1 : 1);
  return each_row(B * R, R, work, [&](int64_t i) {
    const double* tb = th + (i / R) * P;
    const double* ti = tm + i * T;
    const double* ri = rw + i * V;
    double* ji = j ? j + i * T * P : nullptr;
    if (log)
      compute_reward_log_pmf(st, digest, tb, P, ri, V, ti, T, o + i * T, ji);
    else
      compute_reward_pmf(st, digest, tb, P, ri, V, ti, T, o + i * T, ji);
  });
}

// The values (log: their logs), and the values with their Jacobian.
template <bool log>
ffi::Error Values(In theta, In times, In rewards, Out out, std::string_view digest,
                  bool discrete) {
  return reward_distribution(theta, times, rewards, out, nullptr, digest, discrete, log);
}
template <bool log>
ffi::Error WithJacobian(In theta, In times, In rewards, Out out, Out jac,
                        std::string_view digest, bool discrete) {
  return reward_distribution(theta, times, rewards, out, &jac, digest, discrete, log);
}

// (theta, times, rewards) -> n_results float64 buffers; attributes digest, discrete.
template <int n_results>
auto bind() {
  auto b = ffi::Ffi::Bind().Arg<In>().Arg<In>().Arg<In>().Ret<In>();
  if constexpr (n_results == 1)
    return std::move(b).Attr<std::string_view>("digest").Attr<bool>("discrete");
  else
    return std::move(b).Ret<In>().Attr<std::string_view>("digest").Attr<bool>("discrete");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardPmf, Values<false>, bind<1>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardPmfJac, WithJacobian<false>, bind<2>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardLogPmf, Values<true>, bind<1>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicRewardLogPmfJac, WithJacobian<true>, bind<2>());

}  // namespace phasic
