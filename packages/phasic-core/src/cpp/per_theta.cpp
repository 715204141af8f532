#include "per_theta.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "kernels.hpp"

namespace phasic {
namespace kernel {

std::atomic<int64_t> g_sweeps_piecewise{0}, g_sweeps_single{0}, g_sweep_madds{0},
    g_anchored_times{0};
std::atomic<bool> g_time_windows{true}, g_time_anchors{true}, g_anchor_vectors{true};

namespace {
thread_local void (*t_interrupt_poll)() = nullptr;
}  // namespace

// The installed poll takes the GIL; kernels call this every few thousand steps. Taking
// the GIL that often (every millisecond or so) starves a Python thread waiting for it on
// a loaded machine, so the poll runs at most every 20 ms of wall time.
void poll_interrupt() {
  if (t_interrupt_poll == nullptr) return;
  thread_local auto last = std::chrono::steady_clock::time_point{};
  const auto now = std::chrono::steady_clock::now();
  if (now - last < std::chrono::milliseconds(20)) return;
  last = now;
  t_interrupt_poll();
}

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

void too_stiff(double lambda, double t_max) {
  bad("uniformization would need about " + num(lambda * t_max) + " steps (largest exit rate " +
      num(lambda) + " x largest time " + num(t_max) +
      "), more than the 2e6 allowed: the rates are too stiff for this time span (a fast "
      "transition keeps the step tiny while slow states hold mass); use shorter times or "
      "remove the fast transitions");
}

void check_start_total(int64_t n_start, double total, const double* theta, int64_t plen) {
  if (n_start == 0)
    bad("the starting vertex (vertex 0) has no out-edges, so the graph has no initial "
        "distribution; add an edge from the starting vertex to the first state");
  if (total > 0.0 && std::isfinite(total)) return;
  std::string at = "[";
  for (int64_t p = 0; p < plen && p < 8; ++p) at += (p ? ", " : "") + num(theta[p]);
  at += plen > 8 ? ", ...]" : "]";
  bad("the starting vertex's out-edge weights sum to " + num(total) + " at theta = " + at +
      "; the initial distribution is each start weight divided by their sum, so the sum "
      "must be finite and > 0: choose theta (or the start edges' weights and coefficients) so that at "
      "least one start edge has a positive weight");
}

void check_times(const Structure& s, const double* times, int64_t n_times) {
  for (int64_t i = 0; i < n_times; ++i) {
    const double t = times[i];
    if (!std::isfinite(t) || t < 0.0)
      bad("times[" + std::to_string(i) + "] is " + num(t) + "; times must be finite and >= 0");
    if (s.discrete && (t != std::floor(t) || t > 1e12))
      bad("times[" + std::to_string(i) + "] is " + num(t) +
          "; a discrete graph's times are whole numbers of steps");
  }
}

}  // namespace kernel

void set_interrupt_poll(void (*poll)()) { kernel::t_interrupt_poll = poll; }

SweepCounts sweep_counts() {
  return {kernel::g_sweeps_piecewise.load(std::memory_order_relaxed),
          kernel::g_sweeps_single.load(std::memory_order_relaxed),
          kernel::g_sweep_madds.load(std::memory_order_relaxed),
          kernel::g_anchored_times.load(std::memory_order_relaxed)};
}

double work_estimate(const Structure& s) {
  return static_cast<double>(s.n) + static_cast<double>(s.tt_dst.size()) +
         s.plan.work;
}

}  // namespace phasic
