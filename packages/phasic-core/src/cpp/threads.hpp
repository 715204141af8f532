// Thread settings: the OpenMP team size that batch loops and big sweeps use
// (phasic._core.set_num_threads), and the measured choice of a team for one sweep.
#pragma once
#include <chrono>
#include <cstdint>

namespace phasic {

void set_num_threads(int64_t n);  // n >= 1; throws std::invalid_argument otherwise
int64_t get_num_threads();        // the value set, else omp_get_max_threads()

// Sweeps below this many multiply-adds per step run on one thread.
constexpr double kMinSweepWork = 2e4;

// Team size for one sweep of `work` multiply-adds per step (1: no team).
int sweep_team(double work);

// Records a big sweep's cost (seconds per multiply-add) for its mode.
void sweep_record(int team, double seconds, double madds);

// Times one sweep and records it when it was big enough to have had the choice.
class SweepTimer {
 public:
  SweepTimer(int team, double work);
  void done(double madds) const;

 private:
  int team_;
  bool big_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace phasic
