// Exact simulation of the jump chain: draws of the absorption time T or of reward
// totals Y_r = sum over visits of r(v) x (time or steps spent in v), all R totals
// from the same path.
//
// Per theta the chain is tabulated once (JumpChain); a draw then walks it. Visit k
// of draw i takes Philox block (i_lo, i_hi, k, 0): words 0-1 give the holding time
// (continuous: exponential with the vertex's exit rate; discrete: the geometric
// number of steps before the vertex is left), words 2-3 the next vertex (the
// starting vertex only uses words 2-3 of block 0). Uniforms take 53 bits of a
// 64-bit word.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels.hpp"
#include "per_theta.hpp"

namespace phasic {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // Philox multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
constexpr double kTwoM53 = 1.0 / 9007199254740992.0;      // 2^-53

// (0, 1]: never 0, so its log is finite.
inline double open_zero(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>((x >> 11) + 1) * kTwoM53;
}

// [0, 1).
inline double closed_zero(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(x >> 11) * kTwoM53;
}

// The first entry of cum[lo, hi) above x (the last when rounding leaves x beyond
// the final sum); x is in [0, cum[hi - 1]).
inline int64_t pick(const double* cum, int64_t lo, int64_t hi, double x) {
  if (hi - lo <= 8) {
    for (int64_t k = lo; k < hi - 1; ++k)
      if (cum[k] > x) return k;
    return hi - 1;
  }
  const int64_t k = std::upper_bound(cum + lo, cum + hi, x) - cum;
  return std::min(k, hi - 1);
}

}  // namespace

using namespace kernel;

void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void too_many_visits(uint64_t index) {
  bad("draw " + std::to_string(index) + " passed " + std::to_string(kMaxVisits) +
      " visits without reaching absorption; the chain almost never leaves a cycle at this "
      "theta (check the rates into absorbing vertices)");
}

JumpChain::JumpChain(const Structure& s, const double* theta, int64_t theta_len,
                     const double* rewards, int64_t nr_rewards, int64_t rewards_len)
    : discrete_(s.discrete), R_(nr_rewards) {
  if (nr_rewards < 1) bad("rewards needs at least one row (reward vector), got 0");
  if (rewards_len != s.V)
    bad("rewards has " + std::to_string(rewards_len) + " entries per row but the graph has " +
        std::to_string(s.V) + " vertices (one reward per vertex)");
  for (int64_t i = 0; i < nr_rewards * rewards_len; ++i)
    if (!(rewards[i] >= 0.0) || !std::isfinite(rewards[i]))
      bad("rewards[" + std::to_string(i / rewards_len) + ", " + std::to_string(i % rewards_len) +
          "] is " + num(rewards[i]) + "; rewards must be finite and >= 0");
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);  // checks theta, weights and the start total
  if (s.n > 0) check_closed_classes(s, ws);  // every transient vertex reaches absorption
  const double* w = ws.w.data();

  // Zero-weight edges are left out: rounding must never choose them.
  double acc = 0.0;
  for (size_t k = 0; k < s.alpha_edge.size(); ++k)
    if (w[k] > 0.0) {
      start_cum_.push_back(acc += w[k]);
      start_to_.push_back(s.alpha_t[k]);
    }
  const int32_t n = s.n;
  rate_.resize(static_cast<size_t>(n));
  ptr_.assign(static_cast<size_t>(n) + 1, 0);
  reward_.resize(static_cast<size_t>(n * R_));
  for (int32_t j = 0; j < n; ++j) {
    const double lam = ws.lam[j];
    // Discrete: log(1 - p) turns a uniform into the geometric number of steps; p = 1
    // (the vertex is always left after one step) is marked by 0.
    rate_[j] = discrete_ ? (lam >= 1.0 ? 0.0 : std::log1p(-lam)) : lam;
    acc = 0.0;
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
      if (w[s.off_tt + k] > 0.0) {
        cum_.push_back(acc += w[s.off_tt + k]);
        to_.push_back(s.tt_dst[k]);
      }
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
      if (w[s.off_ta + k] > 0.0) {
        cum_.push_back(acc += w[s.off_ta + k]);
        to_.push_back(-1);
      }
    ptr_[j + 1] = static_cast<int64_t>(cum_.size());
    if (ptr_[j + 1] == ptr_[j])
      bad(s.vertex_string(s.tvert[j]) + " has no out-edge of positive weight for this theta, "
          "so the chain can never leave it");
    for (int64_t r = 0; r < R_; ++r) reward_[j * R_ + r] = rewards[r * s.V + s.tvert[j]];
  }
}

bool JumpChain::draw(const uint32_t key[2], uint64_t index, double* out,
                     int64_t max_visits) const {
  for (int64_t r = 0; r < R_; ++r) out[r] = 0.0;
  uint32_t ctr[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0};
  uint32_t bits[4];
  philox4x32(ctr, key, bits);
  const int64_t n_start = static_cast<int64_t>(start_cum_.size());
  int64_t k = pick(start_cum_.data(), 0, n_start,
                   closed_zero(bits[2], bits[3]) * start_cum_[n_start - 1]);
  int32_t v = start_to_[k];
  for (uint32_t visit = 1; v >= 0; ++visit) {
    if (visit > max_visits) return false;
    ctr[2] = visit;
    philox4x32(ctr, key, bits);
    const double u = open_zero(bits[0], bits[1]);
    double hold;
    if (discrete_)  // steps in v: 1 + Geometric failures, P(stay) = 1 - p per step
      hold = rate_[v] == 0.0 ? 1.0 : 1.0 + std::floor(std::log(u) / rate_[v]);
    else
      hold = -std::log(u) / rate_[v];
    const double* rv = reward_.data() + static_cast<int64_t>(v) * R_;
    for (int64_t r = 0; r < R_; ++r)  // a zero reward adds nothing, even to an infinite hold
      if (rv[r] != 0.0) out[r] += rv[r] * hold;
    const int64_t lo = ptr_[v], hi = ptr_[v + 1];
    k = hi - lo == 1 ? lo : pick(cum_.data(), lo, hi, closed_zero(bits[2], bits[3]) * cum_[hi - 1]);
    v = to_[k];
  }
  return true;
}

}  // namespace phasic
