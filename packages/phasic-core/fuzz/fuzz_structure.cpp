// libFuzzer harness for the graph JSON parser, the validator and the structure
// compiler: the same .cpp files the `phasic._core` extension is built from.
//
// Contract checked on every input:
//   * bad input may only raise std::invalid_argument (nanobind turns it into
//     ValueError); any other exception escapes and libFuzzer reports it as a crash;
//   * anything accepted must survive serialize -> parse -> serialize unchanged,
//     compile to a Structure, and (when small) run the moment, density, derivative
//     and log-density kernels (and the reward-weighted density) for theta = 1
//     without a sanitizer report.
// AddressSanitizer and UBSan (built with -fsanitize=fuzzer,address,undefined)
// report memory errors and undefined behaviour as crashes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "graph.hpp"
#include "kernels.hpp"
#include "structure.hpp"

namespace {

[[noreturn]] void contract_broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "phasic fuzz: contract broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Largest exit rate of any transient vertex for this theta (|weights| summed, so a
// graph with negative weights, which the kernels reject, is not skipped).
double max_exit_rate(const phasic::Structure& s, const std::vector<double>& theta) {
  std::vector<double> exit(static_cast<size_t>(s.V), 0.0);
  for (int64_t e = 0; e < s.E; ++e) {
    double w = s.eweight[e];
    for (int64_t k = s.coef_ptr[e]; k < s.coef_ptr[e + 1]; ++k)
      w += s.coef_value[k] * theta[s.coef_param[k]];
    exit[s.efrom[e]] += std::fabs(w);
  }
  double m = 0.0;
  for (int64_t v = 1; v < s.V; ++v) m = std::max(m, exit[v]);
  return m;
}

// The kernels on an accepted structure: only std::invalid_argument is a legal outcome
// (e.g. a closed class for this theta); anything else escapes.
void run_kernels(const phasic::Structure& s, std::string_view key) {
  // Keep each input fast: the kernels are linear-ish in V + E per time / moment.
  if (s.V > 512 || s.E > 4096) return;
  std::vector<double> theta(static_cast<size_t>(s.P), 1.0);
  double moments[3];
  try {
    phasic::compute_moments(s, theta.data(), s.P, nullptr, 0, 3, moments);
  } catch (const std::invalid_argument&) {
  }
  // Two reward rows (all ones, then the vertex index): the covariance and its Jacobian.
  std::vector<double> rewards(static_cast<size_t>(2 * s.V), 1.0), cov(4);
  std::vector<double> cov_jac(static_cast<size_t>(4 * s.P));
  for (int64_t v = 0; v < s.V; ++v) rewards[s.V + v] = static_cast<double>(v);
  try {
    phasic::compute_covariance(s, theta.data(), s.P, rewards.data(), 2, s.V, cov.data());
    phasic::compute_covariance_jac(s, theta.data(), s.P, rewards.data(), 2, s.V, cov.data(),
                                   cov_jac.data());
  } catch (const std::invalid_argument&) {
  }
  // The sampler on the same rows: two draws, each a pair of totals >= 0 (+inf only
  // when a rate near the smallest double makes a holding time overflow). At most
  // 10^4 visits each: a fast cycle can need ~10^10 (regressions/sampler_fast_cycle.json).
  try {
    const phasic::JumpChain chain(s, theta.data(), s.P, rewards.data(), 2, s.V);
    const uint32_t key[2] = {1u, 2u};
    double y[2];
    for (uint64_t i = 0; i < 2; ++i)
      if (chain.draw(key, i, y, 10000) && !(y[0] >= 0.0 && y[1] >= 0.0))
        contract_broken("a draw is negative or NaN",
                        std::to_string(y[0]) + ", " + std::to_string(y[1]));
  } catch (const std::invalid_argument&) {
  }
  // The same rows as mutation counts (rate 0.5, counts 0..4) and their Jacobian.
  std::vector<double> mut(10), mut_jac(static_cast<size_t>(10 * (s.P + 1)));
  try {
    phasic::compute_mutation_pmf(s, theta.data(), s.P, 0.5, rewards.data(), 2, s.V, 4,
                                 mut.data());
    phasic::compute_mutation_pmf_jac(s, theta.data(), s.P, 0.5, rewards.data(), 2, s.V, 4,
                                     mut.data(), mut_jac.data());
  } catch (const std::invalid_argument&) {
  }
  // Continuous densities by uniformization take about (largest exit rate) x t steps;
  // stiff inputs (rates of 1e19 are easy to write) would only measure that cost.
  // Past 2e6 steps the kernels raise (regressions/stiff_rate_uniformization_hang.json).
  constexpr double kTmax = 2.0;
  if (!s.discrete && !(max_exit_rate(s, theta) * kTmax <= 1e4)) return;
  const double times[3] = {0.0, 0.5, kTmax};
  double pdf[3], cdf[3], logf[3];
  std::vector<double> jac(static_cast<size_t>(3 * s.P));
  try {
    phasic::compute_distribution(s, theta.data(), s.P, times, 3, pdf, cdf);
  } catch (const std::invalid_argument&) {
  }
  // The density alone, its derivatives and its log: on acyclic graphs with enough
  // steps these take the piecewise sweep (with the single sweep as fallback).
  try {
    phasic::compute_distribution(s, theta.data(), s.P, times, 3, pdf, nullptr);
  } catch (const std::invalid_argument&) {
  }
  try {
    phasic::compute_pmf_jac(s, theta.data(), s.P, times, 3, pdf, jac.data());
  } catch (const std::invalid_argument&) {
  }
  try {
    phasic::compute_log_pmf(s, theta.data(), s.P, times, 3, logf, jac.data());
  } catch (const std::invalid_argument&) {
  }
  // The reward-weighted density with rewards v mod 3 (zeros eliminated; whole numbers,
  // so discrete graphs take them too). `key` names the structure in the reduction cache.
  std::vector<double> r(static_cast<size_t>(s.V));
  for (int64_t v = 0; v < s.V; ++v) r[v] = static_cast<double>(v % 3);
  try {
    phasic::compute_reward_pmf(s, key, theta.data(), s.P, r.data(), s.V, times, 3, pdf,
                               jac.data());
    phasic::compute_reward_log_pmf(s, key, theta.data(), s.P, r.data(), s.V, times, 3, logf,
                                   nullptr);
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  phasic::GraphData g;
  try {
    g = phasic::parse_graph_json(text);
  } catch (const std::invalid_argument&) {
    return 0;  // rejected with a message: the expected outcome for most inputs
  }
  // Accepted: the round trip through the writer must be exact.
  const std::string once = phasic::serialize_graph(g);
  phasic::GraphData again;
  try {
    again = phasic::parse_graph_json(once);
  } catch (const std::invalid_argument& e) {
    contract_broken("serialized output of an accepted graph does not parse", e.what());
  }
  if (phasic::serialize_graph(again) != once)
    contract_broken("serialize(parse(serialize(g))) != serialize(g)", once);
  // The builder path (GraphBuilder.from_json) re-validates and re-indexes.
  phasic::GraphBuilder builder = phasic::GraphBuilder::from_data(std::move(again));
  (void)builder.out_edges(0);
  std::shared_ptr<const phasic::Structure> s;
  try {
    s = phasic::Structure::compile(g);
  } catch (const std::invalid_argument&) {
    return 0;  // e.g. a vertex that cannot reach absorption
  }
  run_kernels(*s, once);  // the canonical text names the structure, as a digest would
  return 0;
}
