// Per-theta numeric kernels over a compiled Structure, the API the bindings call
// (module.cpp, ffi_handlers.cpp). All throw std::invalid_argument with a message
// naming the offending input. "pmf" in a name means the pdf of a continuous graph or
// the pmf of a discrete one, as in the FFI targets.
#pragma once
#include <cstdint>
#include <vector>
#include <string_view>

#include "structure.hpp"

namespace phasic {

// nr_moments may be 0 .. kMaxMoments: moment i of a continuous graph carries a factor
// i!, which overflows a double past i = 170, and discrete moments cost O(i^2) solves.
constexpr int64_t kMaxMoments = 170;
// Throws std::invalid_argument naming the bound unless 0 <= nr_moments <= kMaxMoments.
void check_nr_moments(int64_t nr_moments);

// out[i-1] = E[T^i] (rewards == nullptr) or E[Y^i], i = 1..nr_moments. rewards has
// s.V entries. (moments.cpp)
void compute_moments(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t rewards_len, int64_t nr_moments,
                     double* out);

// Cov(Y_i, Y_j) for nr_rewards reward vectors (rows of rewards, rewards_len = s.V
// entries each, finite and >= 0): out is nr_rewards x nr_rewards, row-major.
// (covariance.cpp)
void compute_covariance(const Structure& s, const double* theta, int64_t theta_len,
                        const double* rewards, int64_t nr_rewards, int64_t rewards_len,
                        double* out);

// Mutation counts: K | Y ~ Poisson(mutation_rate Y) for the reward-weighted time Y of
// each of nr_rewards reward rows (rewards_len = s.V entries each, finite and >= 0).
// out[i * (kmax + 1) + k] = P(K_i = k), exact per k (the tail beyond kmax is not
// folded in). Discrete graphs: Poisson(mutation_rate r_v) mutations per visit of v.
// 0 <= kmax <= kMaxMutationCount. (mutation.cpp)
constexpr int64_t kMaxMutationCount = 100000;
void check_mutation_kmax(int64_t kmax);
void compute_mutation_pmf(const Structure& s, const double* theta, int64_t theta_len,
                          double mutation_rate, const double* rewards, int64_t nr_rewards,
                          int64_t rewards_len, int64_t kmax, double* out);

// Continuous graphs: density and CDF at each time; discrete graphs: PMF and CDF at
// each (integer) time. Either output may be nullptr. (densities.cpp)
void compute_distribution(const Structure& s, const double* theta, int64_t theta_len,
                          const double* times, int64_t n_times, double* pdf, double* cdf);

// The state at each time: prob[i * s.V + v] = P(X_t = v) (vertex 0: 0; an absorbing
// vertex: the probability of absorption there by t, a defect included) and
// acc[i * s.V + v] = E[time in transient v during [0, t]] (discrete: visits in steps
// 0..t-1; absorbing vertices and vertex 0: 0). Either may be nullptr. (state_at_time.cpp)
void compute_state_at_time(const Structure& s, const double* theta, int64_t theta_len,
                           const double* times, int64_t n_times, double* prob, double* acc);

// propagate (continuous graphs only): start is layers x s.V (vertex 0's mass leaves at
// once by the initial distribution), rewards s.V entries or rewards_len = 0 (1 on every
// transient vertex; only transient entries are used). x and dx = x 𝒢 (the block
// generator [[G, R], [0, G]] stacked `layers` deep) and ddx = dx 𝒢 are n_times x layers
// x s.V, acc (int_0^t of layer 0, transient vertices only, as compute_state_at_time)
// n_times x s.V. With one layer and start = e_0 it is compute_state_at_time exactly.
// (propagate.cpp)
void compute_propagate(const Structure& s, const double* theta, int64_t theta_len,
                       const double* start, int64_t layers, const double* times,
                       int64_t n_times, const double* rewards, int64_t rewards_len, double* x,
                       double* dx, double* acc, double* ddx);

// The same and the theta-Jacobians of x, dx and acc ([..., theta_len], row-major).
void compute_propagate_jac(const Structure& s, const double* theta, int64_t theta_len,
                           const double* start, int64_t layers, const double* times,
                           int64_t n_times, const double* rewards, int64_t rewards_len,
                           double* x, double* dx, double* acc, double* ddx, double* x_jac,
                           double* dx_jac, double* acc_jac);

// The transpose of start -> (x, dx, acc) at this theta: cotangents gx, gdx (n_times x
// layers x s.V) and gacc (n_times x s.V) -> out (layers x s.V). (propagate.cpp)
void compute_propagate_adjoint(const Structure& s, const double* theta, int64_t theta_len,
                               int64_t layers, const double* times, int64_t n_times,
                               const double* rewards, int64_t rewards_len, const double* gx,
                               const double* gdx, const double* gacc, double* out);

// out[(k-1) * s.V + v] = E[Y^k | X_0 = v], k = 1..nr_moments, for every vertex: 0 on
// absorbing vertices, the graph's moment (alpha . m_k) on the starting vertex 0.
// rewards s.V entries or nullptr (the time). jac (the _jac form): (nr_moments, s.V,
// theta_len). (moments.cpp)
void compute_vertex_moments(const Structure& s, const double* theta, int64_t theta_len,
                            const double* rewards, int64_t rewards_len, int64_t nr_moments,
                            double* out);
void compute_vertex_moments_jac(const Structure& s, const double* theta, int64_t theta_len,
                                const double* rewards, int64_t rewards_len,
                                int64_t nr_moments, double* out, double* jac);

// E[Y | start at v] for every vertex v (rewards == nullptr: the time, r = 1): U r on the
// transient vertices, 0 on absorbing ones, and alpha . (U r) at the starting vertex 0.
// out has s.V entries. (covariance.cpp, which shares the solve)
void compute_expected_rewards(const Structure& s, const double* theta, int64_t theta_len,
                              const double* rewards, int64_t rewards_len, double* out);

// Derivatives with respect to theta, exact (forward-mode dual numbers through the
// same kernels). Jacobians are row-major: jac[i * theta_len + p] = d out[i] / d theta[p].

// Moments (as compute_moments) and their Jacobian, shape (nr_moments, theta_len).
void compute_moments_jac(const Structure& s, const double* theta, int64_t theta_len,
                         const double* rewards, int64_t rewards_len, int64_t nr_moments,
                         double* out, double* jac);

// The covariance matrix (as compute_covariance) and its Jacobian, shape
// (nr_rewards, nr_rewards, theta_len).
void compute_covariance_jac(const Structure& s, const double* theta, int64_t theta_len,
                            const double* rewards, int64_t nr_rewards, int64_t rewards_len,
                            double* out, double* jac);

// Mutation pmf (as compute_mutation_pmf) and its Jacobian, shape
// (nr_rewards, kmax + 1, theta_len + 1): the last column is d / d mutation_rate.
void compute_mutation_pmf_jac(const Structure& s, const double* theta, int64_t theta_len,
                              double mutation_rate, const double* rewards, int64_t nr_rewards,
                              int64_t rewards_len, int64_t kmax, double* out, double* jac);

// The state at each time (as compute_state_at_time, both outputs required) and the
// Jacobians of both, shape (n_times, s.V, theta_len).
void compute_state_at_time_jac(const Structure& s, const double* theta, int64_t theta_len,
                               const double* times, int64_t n_times, double* prob, double* acc,
                               double* prob_jac, double* acc_jac);

// Density / PMF at each time and its Jacobian, shape (n_times, theta_len). The
// uniformization truncation bounds both the values and the derivatives.
void compute_pmf_jac(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* pmf, double* jac);

// log density / log PMF at each time, to a relative tolerance at every time however
// small the density (scaled sums; -inf only where it is exactly 0). dlogf (nullable)
// receives d log f / d theta, shape (n_times, theta_len); 0 where f is exactly 0.
void compute_log_pmf(const Structure& s, const double* theta, int64_t theta_len,
                     const double* times, int64_t n_times, double* logf, double* dlogf);

// sum_i log pmf(times[i]) (-inf when any is exactly 0) and, when grad is given, its
// derivative in theta (theta_len entries); the per-time logs and derivatives of
// compute_log_pmf, summed without a log per time.
void compute_loglik(const Structure& s, const double* theta, int64_t theta_len,
                    const double* times, int64_t n_times, double* value, double* grad);

// The distribution of a reward-weighted time Y = integral of r(X_t) dt (continuous) or
// the sum of r over the visited states (discrete): rewards has s.V finite entries >= 0
// (whole numbers on discrete graphs). Continuous: the density of Y's continuous part
// (the atom at Y = 0, mass reaching absorption through zero-reward vertices only, is
// not in it); discrete: the pmf, pmf(0) including that atom. `digest` names the
// structure: the graph with zero-reward vertices eliminated is compiled once per
// digest and zero pattern (discrete: reward values) and cached per thread. jac
// (nullable) receives d pmf / d theta, shape (n_times, theta_len). (reward_density.cpp)
void compute_reward_pmf(const Structure& s, std::string_view digest, const double* theta,
                        int64_t theta_len, const double* rewards, int64_t rewards_len,
                        const double* times, int64_t n_times, double* pmf, double* jac);

// log of compute_reward_pmf, accurate however small (scaled sums); dlogf (nullable)
// receives d log f / d theta, 0 where f is exactly 0.
void compute_reward_log_pmf(const Structure& s, std::string_view digest, const double* theta,
                            int64_t theta_len, const double* rewards, int64_t rewards_len,
                            const double* times, int64_t n_times, double* logf,
                            double* dlogf);

// Continuous uniformization sweeps run in this process so far: piecewise (acyclic
// graphs, the rate lowered as fast states empty) and single (one rate throughout).
struct SweepCounts {
  int64_t piecewise;
  int64_t single;
  int64_t madds;  // multiply-adds of the scaled and piecewise sweeps' steps (the roofline's count)
  int64_t anchored;  // observed times summed through anchors (time_anchors.hpp)
};
SweepCounts sweep_counts();

// Long kernels (discrete stepping) call `poll` on the calling thread every few
// thousand steps; it may throw to abandon the call. The eager bindings install one
// that checks for Ctrl-C; nullptr removes it. Per thread.
void set_interrupt_poll(void (*poll)());

// ---- exact simulation (sampler.cpp)

// A draw that passes this many visits stops with an error instead of running on
// (a chain that almost never reaches absorption would otherwise never finish).
constexpr int64_t kMaxVisits = 100000000;

// Philox-4x32-10 (Salmon et al., SC'11): the counter-based generator behind every
// draw. Block `ctr` of the stream `key` -> four 32-bit words.
void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// The jump chain of a structure at one theta, ready to simulate: exit rate (or exit
// probability, discrete) per transient vertex, cumulative jump tables, and the
// rewards per transient vertex. Draw i of a stream uses Philox blocks
// (i mod 2^32, i div 2^32, k, 0), k = 0, 1, ..., one block per visit, so a draw
// depends on (key, i) only, never on threads or scheduling.
class JumpChain {
 public:
  // rewards: nr_rewards rows of rewards_len (= s.V) finite entries >= 0. Throws
  // std::invalid_argument naming the input (theta, rewards, a vertex that cannot
  // reach absorption).
  JumpChain(const Structure& s, const double* theta, int64_t theta_len, const double* rewards,
            int64_t nr_rewards, int64_t rewards_len);
  int64_t nr_rewards() const { return R_; }
  // out[0..nr_rewards) = the reward totals of draw `index` of stream `key`
  // (continuous: reward x exponential holding time per visit; discrete: reward x
  // geometric number of steps). False when the path passes max_visits visits.
  bool draw(const uint32_t key[2], uint64_t index, double* out,
            int64_t max_visits = kMaxVisits) const;

 private:
  bool discrete_;
  int64_t R_;
  std::vector<double> start_cum_;           // cumulative start weights
  std::vector<int32_t> start_to_;           // their transient targets (-1: absorbing)
  std::vector<double> rate_;                // exit rate (discrete: log1p(-exit prob))
  std::vector<int64_t> ptr_;                // jump table CSR by transient vertex
  std::vector<double> cum_;                 // cumulative out-weights
  std::vector<int32_t> to_;                 // targets (-1: absorbing)
  std::vector<double> reward_;              // reward_[j * R + r]
};

// Throws the error for a draw that passed kMaxVisits visits.
[[noreturn]] void too_many_visits(uint64_t index);

// Rough cost of one evaluation, used to decide whether a batch is worth threads.
double work_estimate(const Structure& s);

}  // namespace phasic
