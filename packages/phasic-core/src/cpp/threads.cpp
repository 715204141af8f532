#include "threads.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace phasic {
namespace {
std::atomic<int64_t> g_threads{0};  // 0: omp_get_max_threads()

// OpenMP team for one big sweep. A team pays two barriers per step, and a member
// that the OS preempts stalls every barrier: on 2 cores, Kingman n = 30's pdf took
// 32 ms on two threads against 57 ms on one with one other busy process, but
// 450-620 ms against 140 ms with five. So the choice is measured, not guessed: each
// big sweep reports its time per multiply-add, one moving average per mode, and the
// faster mode is used, trying the other one every 16th sweep to follow the load. The
// results are the same bits for any team size, so this only moves time. Sweeps
// below kMinSweepWork multiply-adds per step, or inside a running parallel batch loop
// (which already uses the cores), run on one thread. So do sweeps while the machine's
// one-minute load average exceeds the team size plus one: there a team member is
// preempted at nearly every barrier, and even one trial sweep costs 100x (Kingman
// n = 30's log-pdf gradient: 14 s on a team against 0.13 s on one thread at load
// 10 on 2 cores). PHASIC_SWEEP_TEAM=always or =never fixes the choice (tests).
std::atomic<double> g_sweep_cost[2] = {{0.0}, {0.0}};  // s per multiply-add; 0: unknown
std::atomic<int64_t> g_sweep_calls{0};
}  // namespace

void set_num_threads(int64_t n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1, got " + std::to_string(n));
  g_threads = n;
}

int64_t get_num_threads() {
  const int64_t n = g_threads.load();
  return n > 0 ? n : std::max(1, omp_get_max_threads());
}

int sweep_team(double work) {
  if (work < kMinSweepWork || omp_in_parallel()) return 1;
  const int64_t nt = get_num_threads();
  if (nt < 2) return 1;
  const int full =
      static_cast<int>(std::max<int64_t>(2, std::min<int64_t>(nt, work / (kMinSweepWork / 2))));
  if (const char* fixed = std::getenv("PHASIC_SWEEP_TEAM")) {
    if (std::strcmp(fixed, "always") == 0) return full;
    if (std::strcmp(fixed, "never") == 0) return 1;
  }
  double load = 0.0;
  if (getloadavg(&load, 1) == 1 && load > static_cast<double>(full) + 1.0) return 1;
  const double one = g_sweep_cost[0].load(), team = g_sweep_cost[1].load();
  if (one == 0.0) return 1;
  if (team == 0.0) return full;
  bool use_team = team < one;
  if (g_sweep_calls++ % 16 == 15) use_team = !use_team;
  return use_team ? full : 1;
}

// Records a big sweep's cost (seconds per multiply-add) for its mode.
void sweep_record(int team, double seconds, double madds) {
  if (madds <= 0.0) return;
  std::atomic<double>& avg = g_sweep_cost[team > 1 ? 1 : 0];
  const double x = seconds / madds, old = avg.load();
  avg.store(old == 0.0 ? x : 0.75 * old + 0.25 * x);
}

SweepTimer::SweepTimer(int team, double work)
    : team_(team), big_(work >= kMinSweepWork && !omp_in_parallel()),
      start_(std::chrono::steady_clock::now()) {}

void SweepTimer::done(double madds) const {
  if (!big_) return;
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start_;
  sweep_record(team_, dt.count(), madds);
}

}  // namespace phasic
