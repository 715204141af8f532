// The distribution of a reward-weighted time: Y = integral of r(X_t) dt (continuous
// graphs) or the sum of r over the visited states (discrete graphs), for rewards
// r >= 0 with one entry per vertex.
//
// Per theta the graph is transformed numerically and the ordinary sweeps run on the
// result. A transient vertex with reward 0 takes no time: it is eliminated, the
// Schur complement of the zero block (P' = P_kk + P_kz (I - P_zz)^-1 P_zk, alpha'
// likewise), and what reaches absorption through zero-reward vertices only joins the
// defect (the atom at Y = 0). A kept vertex's out-rates are divided by its reward
// (continuous), or it becomes a chain of r_v states (discrete, whole-number rewards).
// A return to the same kept vertex through the zero block is dropped in continuous
// time (memorylessness) and joins the self-loop remainder in discrete time.
//
// The reduced topology depends on the structure and on which rewards are zero (for
// discrete graphs on the reward values): it is compiled once per (digest, pattern)
// into a Structure of its own; its edge weights are computed per theta in the scalar
// type T, so dual numbers carry exact derivatives through the elimination.
#include <algorithm>
#include <cmath>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "density_runs.hpp"
#include "elimination.hpp"
#include "kernels.hpp"
#include "sweeps.hpp"

namespace phasic {
namespace kernel {
namespace {

// A discrete graph's expansion (a vertex with reward k becomes k states) stops here.
constexpr int64_t kMaxExpandedStates = int64_t{1} << 22;
// Reductions kept per thread (least recently used dropped).
constexpr size_t kReductionCapacity = 16;

// An arc of the original graph: its target (a zero-block vertex or an exit) and the
// position of its weight (for the starting vertex: the transient target, -1 for the
// defect).
struct Arc {
  int32_t to;
  int64_t pos;
};

// Arcs grouped by source, CSR.
struct Arcs {
  std::vector<int64_t> ptr{0};
  std::vector<Arc> arc;
  void close() { ptr.push_back(static_cast<int64_t>(arc.size())); }
};

// Everything about one reward pattern that does not depend on theta. Exits are the
// kept vertices 0 .. nk-1 and absorption (nk); sources are the starting vertex (0)
// and the kept vertices (1 + i).
struct Reduction {
  int32_t nk = 0, nz = 0;
  std::vector<int32_t> kept, zero;  // -> transient index of the original
  std::vector<int64_t> zz_ptr;      // the zero block's internal edges (CSR), their positions
  std::vector<int32_t> zz_dst;
  std::vector<int64_t> zz_pos;
  Arcs zx;                     // zero block -> exits
  EliminationPlan plan;        // of I - P_zz
  Arcs sz, sx;                 // sources -> zero block, sources -> exits
  Arcs out;                    // reduced edges per source: (exit, reduced position)
  std::vector<int64_t> loop_pos;  // discrete chains: last -> first state (-1: none)
  std::vector<int64_t> unit_pos;  // discrete chains: state -> next state (weight 1)
  std::shared_ptr<const Structure> reduced;  // nullptr when no reward is positive
};

// Checks the rewards: s.V entries, finite and >= 0, whole numbers on discrete graphs.
void check_rewards(const Structure& s, const double* r, int64_t len) {
  if (len != s.V)
    bad("rewards has length " + std::to_string(len) + " but the graph has " +
        std::to_string(s.V) + " vertices (one reward per vertex, index 0 the starting vertex)");
  for (int64_t v = 0; v < s.V; ++v) {
    if (!(r[v] >= 0.0) || !std::isfinite(r[v]))
      bad("rewards[" + std::to_string(v) + "] is " + num(r[v]) +
          "; rewards must be finite and >= 0");
    if (s.discrete && r[v] != std::floor(r[v]))
      bad("rewards[" + std::to_string(v) + "] is " + num(r[v]) +
          "; a discrete graph's rewards must be whole numbers (each visit adds r steps)");
    if (s.discrete && r[v] > static_cast<double>(kMaxExpandedStates))
      bad("rewards[" + std::to_string(v) + "] is " + num(r[v]) + "; a discrete graph's rewards "
          "must be at most " + std::to_string(kMaxExpandedStates) +
          " (a vertex with reward k becomes k states)");
  }
}

// The cache key: the structure's digest and what the topology depends on.
std::string pattern_key(const Structure& s, std::string_view digest, const double* r) {
  std::string key(digest);
  key += s.discrete ? 'd' : 'c';
  for (int32_t j = 0; j < s.n; ++j) {
    const double x = r[s.tvert[j]];
    if (s.discrete)
      key += std::to_string(static_cast<int64_t>(x)) + ",";
    else
      key += x > 0.0 ? '1' : '0';
  }
  return key;
}

// The exits a source reaches: its direct ones and those behind the zero block
// (depth-first through zz), except the source itself; ascending.
std::vector<int32_t> reachable_exits(const Reduction& rd, int64_t src, int32_t self,
                                     std::vector<int32_t>& seen_z, std::vector<int32_t>& seen_x,
                                     int32_t stamp) {
  std::vector<int32_t> exits, stack;
  auto add_exit = [&](int32_t x) {
    if (x != self && seen_x[x] != stamp) {
      seen_x[x] = stamp;
      exits.push_back(x);
    }
  };
  for (int64_t k = rd.sx.ptr[src]; k < rd.sx.ptr[src + 1]; ++k) add_exit(rd.sx.arc[k].to);
  for (int64_t k = rd.sz.ptr[src]; k < rd.sz.ptr[src + 1]; ++k) stack.push_back(rd.sz.arc[k].to);
  while (!stack.empty()) {
    const int32_t z = stack.back();
    stack.pop_back();
    if (seen_z[z] == stamp) continue;
    seen_z[z] = stamp;
    for (int64_t k = rd.zx.ptr[z]; k < rd.zx.ptr[z + 1]; ++k) add_exit(rd.zx.arc[k].to);
    for (int64_t k = rd.zz_ptr[z]; k < rd.zz_ptr[z + 1]; ++k) stack.push_back(rd.zz_dst[k]);
  }
  std::sort(exits.begin(), exits.end());
  return exits;
}

// The zero block, the sources' arcs, the reduced graph and its compiled structure.
std::shared_ptr<const Reduction> build_reduction(const Structure& s, const double* r) {
  auto rp = std::make_shared<Reduction>();
  Reduction& rd = *rp;
  std::vector<int32_t> kidx(static_cast<size_t>(s.n), -1), zidx(static_cast<size_t>(s.n), -1);
  for (int32_t j = 0; j < s.n; ++j) {
    if (r[s.tvert[j]] > 0.0) {
      kidx[j] = rd.nk++;
      rd.kept.push_back(j);
    } else {
      zidx[j] = rd.nz++;
      rd.zero.push_back(j);
    }
  }
  const int32_t absorb = rd.nk;
  // An original transient target as an arc of `into_zero` or `to_exit`.
  auto classify = [&](int32_t t, int64_t pos, std::vector<Arc>& into_zero,
                      std::vector<Arc>& to_exit) {
    if (t < 0)
      to_exit.push_back({absorb, pos});
    else if (zidx[t] >= 0)
      into_zero.push_back({zidx[t], pos});
    else
      to_exit.push_back({kidx[t], pos});
  };
  rd.zz_ptr.assign(1, 0);
  for (int32_t j : rd.zero) {
    std::vector<Arc> into_zero;
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
      classify(s.tt_dst[k], s.off_tt + k, into_zero, rd.zx.arc);
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
      rd.zx.arc.push_back({absorb, s.off_ta + k});
    for (const Arc& a : into_zero) {
      rd.zz_dst.push_back(a.to);
      rd.zz_pos.push_back(a.pos);
    }
    rd.zz_ptr.push_back(static_cast<int64_t>(rd.zz_dst.size()));
    rd.zx.close();
  }
  rd.plan = plan_elimination(rd.nz, rd.zz_ptr, rd.zz_dst, -1);
  // The starting vertex: one arc per distinct target (alpha sums the start edges).
  std::vector<char> started(static_cast<size_t>(s.n) + 1, 0);
  for (int32_t t : s.alpha_t) {
    if (started[static_cast<size_t>(t + 1)]) continue;
    started[static_cast<size_t>(t + 1)] = 1;
    classify(t, t, rd.sz.arc, rd.sx.arc);
  }
  rd.sz.close();
  rd.sx.close();
  for (int32_t j : rd.kept) {
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k)
      classify(s.tt_dst[k], s.off_tt + k, rd.sz.arc, rd.sx.arc);
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
      rd.sx.arc.push_back({absorb, s.off_ta + k});
    rd.sz.close();
    rd.sx.close();
  }
  if (rd.nk == 0) return rp;  // Y = 0 surely: no graph to sweep
  // The reduced graph: vertex 0, each kept vertex's states (1, or its reward when
  // discrete), one absorbing vertex.
  GraphData g;
  g.discrete = s.discrete;
  g.state_length = s.L;
  g.param_length = s.P;
  std::vector<int64_t> first(static_cast<size_t>(rd.nk) + 1);
  int64_t nv = 1;
  for (int32_t i = 0; i < rd.nk; ++i) {
    first[i] = nv;
    nv += s.discrete ? static_cast<int64_t>(r[s.tvert[rd.kept[i]]]) : 1;
    if (nv > kMaxExpandedStates)
      bad("the rewards expand the discrete graph to more than " +
          std::to_string(kMaxExpandedStates) +
          " states (a vertex with reward k becomes k states); use smaller whole-number rewards");
  }
  first[rd.nk] = nv;  // the absorbing vertex
  g.n_vertices = nv + 1;
  auto state_of = [&](int64_t j) {  // an original transient index, or -1: an absorbing state
    int64_t v = j >= 0 ? s.tvert[j] : 0;
    if (j < 0)
      for (int64_t u = 1; u < s.V; ++u)
        if (s.tidx[u] < 0) v = u;
    for (int64_t c = 0; c < s.L; ++c) g.states.push_back(s.states[v * s.L + c]);
  };
  state_of(-1);  // vertex 0 (never named in messages)
  for (int32_t i = 0; i < rd.nk; ++i)
    for (int64_t c = first[i]; c < first[i + 1]; ++c) state_of(rd.kept[i]);
  state_of(-1);
  auto edge = [&](int64_t from, int64_t to) {
    g.from.push_back(static_cast<int32_t>(from));
    g.to.push_back(static_cast<int32_t>(to));
    g.weight.push_back(1.0);
  };
  std::vector<int32_t> seen_z(static_cast<size_t>(rd.nz), -1), seen_x(static_cast<size_t>(rd.nk) + 1, -1);
  for (int64_t src = 0; src <= rd.nk; ++src) {
    const int32_t self = src == 0 ? -1 : static_cast<int32_t>(src - 1);
    const int64_t from = src == 0 ? 0 : first[src] - 1;  // a chain leaves from its last state
    for (int32_t x : reachable_exits(rd, src, self, seen_z, seen_x, static_cast<int32_t>(src))) {
      rd.out.arc.push_back({x, static_cast<int64_t>(g.from.size())});
      edge(from, first[x]);
    }
    rd.out.close();
  }
  for (int32_t i = 0; i < rd.nk && s.discrete; ++i) {
    for (int64_t c = first[i]; c + 1 < first[i + 1]; ++c) {
      rd.unit_pos.push_back(static_cast<int64_t>(g.from.size()));
      edge(c, c + 1);
    }
    rd.loop_pos.push_back(-1);
    if (first[i + 1] - first[i] > 1) {
      rd.loop_pos.back() = static_cast<int64_t>(g.from.size());
      edge(first[i + 1] - 1, first[i]);
    }
  }
  rd.reduced = Structure::compile(g);
  // Edge ids -> positions in the reduced structure's weight vector.
  std::vector<int64_t> pos_of(rd.reduced->eperm.size());
  for (size_t p = 0; p < pos_of.size(); ++p) pos_of[rd.reduced->eperm[p]] = static_cast<int64_t>(p);
  for (Arc& a : rd.out.arc) a.pos = pos_of[a.pos];
  for (int64_t& p : rd.unit_pos) p = pos_of[p];
  for (int64_t& p : rd.loop_pos)
    if (p >= 0) p = pos_of[p];
  return rp;
}

// The reduction for these rewards from this thread's LRU cache (built on a miss).
const Reduction& reduction(const Structure& s, std::string_view digest, const double* r) {
  struct Cache {
    std::list<std::pair<std::string, std::shared_ptr<const Reduction>>> lru;
    std::unordered_map<std::string, decltype(lru)::iterator> by_key;
  };
  thread_local Cache c;
  std::string key = pattern_key(s, digest, r);
  auto it = c.by_key.find(key);
  if (it != c.by_key.end()) {
    c.lru.splice(c.lru.begin(), c.lru, it->second);
    return *it->second->second;
  }
  auto built = build_reduction(s, r);
  c.lru.emplace_front(key, built);
  c.by_key[std::move(key)] = c.lru.begin();
  if (c.lru.size() > kReductionCapacity) {
    c.by_key.erase(c.lru.back().first);
    c.lru.pop_back();
  }
  return *built;
}

// Per-theta scratch of the reduction (one per scalar type and thread).
template <class T>
struct ReductionScratch {
  Workspace<T> ws;  // the reduced structure's weights
  std::vector<T> vals, absorb, exit_p, acc, g, dense, lvals, uvals, dinv;
};

template <class T>
ReductionScratch<T>& scratch() {
  thread_local ReductionScratch<T> sc;
  return sc;
}

// The reduced structure's weights for the original weights in ws (after
// edge_weights), into sc.ws, with its initial distribution and rates.
template <class T>
void reduce(const Structure& s, const Reduction& rd, const Workspace<T>& ws, const double* r,
            const double* theta, int64_t plen, ReductionScratch<T>& sc) {
  // The zero block, normalized by each vertex's out-weight: it leaves with probability
  // one (a self-loop of a discrete vertex only repeats it), so only where it goes
  // matters. Its absorption column sums non-negative terms (GTH).
  sc.vals.resize(rd.zz_dst.size());
  sc.absorb.assign(static_cast<size_t>(rd.nz), T(0.0));
  sc.exit_p.resize(rd.zx.arc.size());
  for (int32_t z = 0; z < rd.nz; ++z) {
    const int32_t j = rd.zero[z];
    if (!(value(ws.lam[j]) > 0.0))
      bad(s.vertex_string(s.tvert[j]) +
          " has reward 0 and total out-weight 0 for this theta, so it never leaves; it "
          "cannot reach absorption");
    const T inv = reciprocal(ws.lam[j]);
    for (int64_t k = rd.zz_ptr[z]; k < rd.zz_ptr[z + 1]; ++k) sc.vals[k] = ws.w[rd.zz_pos[k]] * inv;
    for (int64_t k = rd.zx.ptr[z]; k < rd.zx.ptr[z + 1]; ++k) {
      sc.exit_p[k] = ws.w[rd.zx.arc[k].pos] * inv;
      sc.absorb[z] += sc.exit_p[k];
    }
  }
  if (rd.nz > 0) {
    sc.lvals.resize(rd.plan.l_col.size());
    sc.uvals.resize(rd.plan.u_col.size());
    sc.dinv.resize(static_cast<size_t>(rd.nz));
    double pivot = 0.0;
    const int32_t z = lu_factor(rd.plan, rd.zz_ptr.data(), rd.zz_dst.data(), sc.vals.data(),
                                sc.absorb.data(), sc.dense, sc.lvals.data(), sc.uvals.data(),
                                sc.dinv.data(), &pivot);
    if (z >= 0)
      bad(s.vertex_string(s.tvert[rd.zero[z]]) +
          " has reward 0 and, for this theta, its zero-reward vertices never leave their "
          "closed class (escape probability " + num(pivot) + "); check for zero rates");
  }
  if (!rd.reduced) return;
  const Structure& red = *rd.reduced;
  Workspace<T>& out = sc.ws;
  out.w.assign(static_cast<size_t>(red.E), T(0.0));
  sc.acc.assign(static_cast<size_t>(rd.nk) + 1, T(0.0));
  for (int64_t src = 0; src <= rd.nk; ++src) {
    // An arc's weight: the initial distribution for the starting vertex, else the edge's.
    auto weight = [&](const Arc& a) -> T {
      if (src > 0) return ws.w[a.pos];
      return a.pos < 0 ? ws.defect : ws.alpha[a.pos];
    };
    const int32_t self = static_cast<int32_t>(src - 1);
    if (src > 0) sc.acc[self] = T(0.0);
    for (int64_t k = rd.out.ptr[src]; k < rd.out.ptr[src + 1]; ++k) sc.acc[rd.out.arc[k].to] = T(0.0);
    for (int64_t k = rd.sx.ptr[src]; k < rd.sx.ptr[src + 1]; ++k)
      sc.acc[rd.sx.arc[k].to] += weight(rd.sx.arc[k]);
    if (rd.sz.ptr[src + 1] > rd.sz.ptr[src]) {
      // g = (weights into the zero block) (I - P_zz)^-1, then on to the exits.
      sc.g.assign(static_cast<size_t>(rd.nz), T(0.0));
      for (int64_t k = rd.sz.ptr[src]; k < rd.sz.ptr[src + 1]; ++k)
        sc.g[rd.sz.arc[k].to] += weight(rd.sz.arc[k]);
      lu_solve_transposed(rd.plan, sc.lvals.data(), sc.uvals.data(), sc.dinv.data(), sc.g.data());
      for (int32_t z = 0; z < rd.nz; ++z) {
        if (is_zero(sc.g[z])) continue;
        for (int64_t k = rd.zx.ptr[z]; k < rd.zx.ptr[z + 1]; ++k)
          fma_into(sc.acc[rd.zx.arc[k].to], sc.g[z], sc.exit_p[k]);
      }
    }
    // Continuous: a kept vertex's rates divided by its reward (time runs 1/r as fast).
    const double scale = src > 0 && !s.discrete ? 1.0 / r[s.tvert[rd.kept[self]]] : 1.0;
    for (int64_t k = rd.out.ptr[src]; k < rd.out.ptr[src + 1]; ++k)
      out.w[rd.out.arc[k].pos] = sc.acc[rd.out.arc[k].to] * scale;
    // Discrete chains: the last state returns to the first with the original
    // self-loop remainder plus the return through the zero block.
    if (src > 0 && s.discrete && rd.loop_pos[self] >= 0)
      out.w[rd.loop_pos[self]] = clamp_value(1.0 - ws.lam[rd.kept[self]]) + sc.acc[self];
  }
  for (int64_t p : rd.unit_pos) out.w[p] = 1.0;
  derive_rates(red, out, theta, plen);
}

// The scaled series of Y's pdf/pmf at every time (derivatives for directions dir0..).
template <class T>
void reward_series(const Structure& s, std::string_view digest, const double* theta,
                   int64_t plen, const double* r, const double* times, int64_t n_times,
                   int64_t dir0, std::vector<Scaled<T>>& out) {
  Workspace<T>& ws = workspace<T>();
  edge_weights(s, theta, plen, ws, dir0);
  check_times(s, times, n_times);
  const Reduction& rd = reduction(s, digest, r);
  out.assign(static_cast<size_t>(n_times), Scaled<T>{});
  if (n_times == 0) return;
  check_closed_classes_at(s, theta, plen, ws);
  ReductionScratch<T>& sc = scratch<T>();
  reduce(s, rd, ws, r, theta, plen, sc);
  if (rd.reduced) {
    scaled_sweep(*rd.reduced, sc.ws, times, n_times, out.data());
    return;
  }
  // No positive reward: Y = 0 surely, no density; a discrete pmf(0) = 1.
  for (int64_t i = 0; i < n_times; ++i) {
    out[i].ls = 0.0;
    out[i].acc = s.discrete && times[i] == 0.0 ? 1.0 : 0.0;
  }
}

}  // namespace
}  // namespace kernel

using namespace kernel;

void compute_reward_pmf(const Structure& s, std::string_view digest, const double* theta,
                        int64_t theta_len, const double* rewards, int64_t rewards_len,
                        const double* times, int64_t n_times, double* pmf, double* jac) {
  check_rewards(s, rewards, rewards_len);
  if (jac != nullptr) {
    emit_pmf_jac(theta_len, n_times, s.P == theta_len,
                 [&](auto tag, int64_t d0, auto& out) {
                   reward_series<decltype(tag)>(s, digest, theta, theta_len, rewards, times,
                                                n_times, d0, out);
                 },
                 pmf, jac);
    return;
  }
  Workspace<double>& ws = workspace<double>();
  edge_weights(s, theta, theta_len, ws);
  check_times(s, times, n_times);
  const Reduction& rd = reduction(s, digest, rewards);
  if (n_times == 0) return;
  check_closed_classes_at(s, theta, theta_len, ws);
  ReductionScratch<double>& sc = scratch<double>();
  reduce(s, rd, ws, rewards, theta, theta_len, sc);
  if (rd.reduced) {
    plain_sweep(*rd.reduced, sc.ws, times, n_times, pmf, nullptr);
    return;
  }
  for (int64_t i = 0; i < n_times; ++i) pmf[i] = s.discrete && times[i] == 0.0 ? 1.0 : 0.0;
}

void compute_reward_log_pmf(const Structure& s, std::string_view digest, const double* theta,
                            int64_t theta_len, const double* rewards, int64_t rewards_len,
                            const double* times, int64_t n_times, double* logf,
                            double* dlogf) {
  check_rewards(s, rewards, rewards_len);
  emit_log_pmf(theta_len, n_times, dlogf != nullptr && s.P == theta_len,
               [&](auto tag, int64_t d0, auto& out) {
                 reward_series<decltype(tag)>(s, digest, theta, theta_len, rewards, times,
                                              n_times, d0, out);
               },
               logf, dlogf);
}

}  // namespace phasic
