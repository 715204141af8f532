#include "structure.hpp"

#include <algorithm>
#include <queue>
#include <stdexcept>

namespace phasic {

std::string Structure::vertex_string(int64_t v) const {
  std::string s = "vertex " + std::to_string(v) + " (state [";
  for (int64_t i = 0; i < L; ++i) {
    if (i) s += ", ";
    s += std::to_string(states[static_cast<size_t>(v * L + i)]);
  }
  return s + "])";
}

std::shared_ptr<const Structure> Structure::from_json(std::string_view text) {
  return compile(parse_graph_json(text));
}

namespace {

// Strongly connected components of the transient subgraph (iterative Tarjan).
// Components come out sinks first (reverse topological order).
std::vector<std::vector<int32_t>> sccs_sinks_first(int32_t n, const std::vector<int64_t>& ptr,
                                                   const std::vector<int32_t>& dst) {
  std::vector<int32_t> index(n, -1), low(n, 0);
  std::vector<char> on_stack(n, 0);
  std::vector<int32_t> stack;
  std::vector<std::pair<int32_t, int64_t>> call;  // (vertex, next edge position)
  std::vector<std::vector<int32_t>> comps;
  int32_t counter = 0;
  for (int32_t root = 0; root < n; ++root) {
    if (index[root] >= 0) continue;
    call.emplace_back(root, ptr[root]);
    index[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = 1;
    while (!call.empty()) {
      auto& [v, pos] = call.back();
      if (pos < ptr[v + 1]) {
        int32_t w = dst[pos++];
        if (index[w] < 0) {
          index[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack[w] = 1;
          call.emplace_back(w, ptr[w]);
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
      } else {
        int32_t done = v;
        call.pop_back();
        if (!call.empty()) low[call.back().first] = std::min(low[call.back().first], low[done]);
        if (low[done] == index[done]) {
          comps.emplace_back();
          int32_t w;
          do {
            w = stack.back();
            stack.pop_back();
            on_stack[w] = 0;
            comps.back().push_back(w);
          } while (w != done);
        }
      }
    }
  }
  return comps;
}

// Symbolic graph elimination: records the plan into s.
void plan_elimination(Structure& s) {
  const int32_t n = s.n;
  struct Link {
    int32_t v, slot;
  };
  std::vector<std::vector<Link>> ch(n), par(n);
  for (int32_t j = 0; j < n; ++j)
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) {
      ch[j].push_back({s.tt_dst[k], static_cast<int32_t>(k)});
      par[s.tt_dst[k]].push_back({j, static_cast<int32_t>(k)});
    }
  int64_t n_slots = static_cast<int64_t>(s.tt_dst.size());
  std::vector<int32_t> mark(n, -1);
  std::vector<char> eliminated(n, 0);
  s.order.reserve(n);
  s.par_ptr.assign(1, 0);
  s.ch_ptr.assign(1, 0);
  s.op_ptr.assign(1, 0);

  auto remove_link = [](std::vector<Link>& list, int32_t v) {
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i].v == v) {
        list[i] = list.back();
        list.pop_back();
        return;
      }
  };

  auto eliminate = [&](int32_t v) {
    s.order.push_back(v);
    eliminated[v] = 1;
    for (const Link& c : ch[v]) {
      s.ch_v.push_back(c.v);
      s.ch_slot.push_back(c.slot);
    }
    for (const Link& p : par[v]) {
      s.par_v.push_back(p.v);
      s.par_slot.push_back(p.slot);
      const int32_t u = p.v;
      remove_link(ch[u], v);
      for (const Link& l : ch[u]) mark[l.v] = l.slot;
      for (const Link& c : ch[v]) {
        if (c.v == u) {
          s.op_target.push_back(-1);  // self-loop: implicit in the GTH pivot
          continue;
        }
        int32_t t = mark[c.v];
        if (t < 0) {
          if (n_slots >= INT32_MAX)
            throw std::invalid_argument("graph too large: elimination fill exceeds 2^31 entries");
          t = static_cast<int32_t>(n_slots++);
          ch[u].push_back({c.v, t});
          par[c.v].push_back({u, t});
          mark[c.v] = t;
          ++s.n_fill;
        }
        s.op_target.push_back(t);
      }
      for (const Link& l : ch[u]) mark[l.v] = -1;
    }
    for (const Link& c : ch[v]) remove_link(par[c.v], v);
    ch[v].clear();
    ch[v].shrink_to_fit();
    par[v].clear();
    par[v].shrink_to_fit();
    s.par_ptr.push_back(static_cast<int64_t>(s.par_v.size()));
    s.ch_ptr.push_back(static_cast<int64_t>(s.ch_v.size()));
    s.op_ptr.push_back(static_cast<int64_t>(s.op_target.size()));
  };

  std::vector<int32_t> comp_of(n, -1);
  auto comps = sccs_sinks_first(n, s.tt_ptr, s.tt_dst);
  for (size_t ci = 0; ci < comps.size(); ++ci)
    for (int32_t v : comps[ci]) comp_of[v] = static_cast<int32_t>(ci);
  for (size_t ci = 0; ci < comps.size(); ++ci) {
    const auto& comp = comps[ci];
    if (comp.size() == 1) {
      eliminate(comp[0]);
      continue;
    }
    s.acyclic = false;
    // Greedy minimum fill (|parents| x |children|) inside the component, lazy heap.
    using Item = std::pair<int64_t, int32_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    auto cost = [&](int32_t v) {
      return static_cast<int64_t>(par[v].size()) * static_cast<int64_t>(ch[v].size());
    };
    for (int32_t v : comp) heap.emplace(cost(v), v);
    while (!heap.empty()) {
      auto [c, v] = heap.top();
      heap.pop();
      if (eliminated[v]) continue;
      if (c != cost(v)) {
        heap.emplace(cost(v), v);
        continue;
      }
      std::vector<int32_t> nbrs;
      for (const Link& l : par[v]) nbrs.push_back(l.v);
      for (const Link& l : ch[v]) nbrs.push_back(l.v);
      eliminate(v);
      for (int32_t w : nbrs)
        if (!eliminated[w] && comp_of[w] == static_cast<int32_t>(ci)) heap.emplace(cost(w), w);
    }
  }
  s.n_slots = n_slots;
}

}  // namespace

std::shared_ptr<const Structure> Structure::compile(const GraphData& g) {
  auto sp = std::make_shared<Structure>();
  Structure& s = *sp;
  s.discrete = g.discrete;
  s.P = g.param_length;
  s.V = g.n_vertices;
  s.E = static_cast<int64_t>(g.from.size());
  s.L = g.state_length;
  s.states = g.states;
  s.efrom = g.from;
  s.eto = g.to;
  s.eweight = g.weight;
  // Coefficients as CSR by edge (counting sort keeps their order within an edge).
  s.coef_ptr.assign(static_cast<size_t>(s.E) + 1, 0);
  for (int32_t e : g.coef_edge) ++s.coef_ptr[e + 1];
  for (int64_t e = 0; e < s.E; ++e) s.coef_ptr[e + 1] += s.coef_ptr[e];
  s.coef_param.resize(g.coef_edge.size());
  s.coef_value.resize(g.coef_edge.size());
  {
    std::vector<int64_t> fill(s.coef_ptr.begin(), s.coef_ptr.end() - 1);
    for (size_t k = 0; k < g.coef_edge.size(); ++k) {
      int64_t at = fill[g.coef_edge[k]]++;
      s.coef_param[at] = g.coef_param[k];
      s.coef_value[at] = g.coef_value[k];
    }
  }
  // Classify: vertices other than 0 without out-edges are absorbing.
  std::vector<int64_t> outdeg(s.V, 0);
  for (int32_t f : g.from) ++outdeg[f];
  s.tidx.assign(s.V, -1);
  for (int64_t v = 1; v < s.V; ++v)
    if (outdeg[v] > 0) {
      s.tidx[v] = static_cast<int32_t>(s.tvert.size());
      s.tvert.push_back(static_cast<int32_t>(v));
    }
  s.n = static_cast<int32_t>(s.tvert.size());
  // Edges grouped by source vertex.
  std::vector<int64_t> vptr(s.V + 1, 0);
  for (int32_t f : g.from) ++vptr[f + 1];
  for (int64_t v = 0; v < s.V; ++v) vptr[v + 1] += vptr[v];
  std::vector<int32_t> by_src(s.E);
  {
    std::vector<int64_t> fill(vptr.begin(), vptr.end() - 1);
    for (int64_t e = 0; e < s.E; ++e) by_src[fill[g.from[e]]++] = static_cast<int32_t>(e);
  }
  for (int64_t k = vptr[0]; k < vptr[1]; ++k) {
    int32_t e = by_src[k];
    s.alpha_edge.push_back(e);
    s.alpha_t.push_back(s.tidx[g.to[e]]);
  }
  s.tt_ptr.assign(1, 0);
  s.ta_ptr.assign(1, 0);
  for (int32_t j = 0; j < s.n; ++j) {
    int32_t v = s.tvert[j];
    for (int64_t k = vptr[v]; k < vptr[v + 1]; ++k) {
      int32_t e = by_src[k];
      int32_t t = s.tidx[g.to[e]];
      if (t >= 0) {
        s.tt_dst.push_back(t);
        s.tt_edge.push_back(e);
      } else {
        s.ta_edge.push_back(e);
      }
    }
    s.tt_ptr.push_back(static_cast<int64_t>(s.tt_dst.size()));
    s.ta_ptr.push_back(static_cast<int64_t>(s.ta_edge.size()));
  }
  // Positions for per-theta evaluation.
  s.eperm = s.alpha_edge;
  s.off_tt = static_cast<int64_t>(s.eperm.size());
  s.eperm.insert(s.eperm.end(), s.tt_edge.begin(), s.tt_edge.end());
  s.off_ta = static_cast<int64_t>(s.eperm.size());
  s.eperm.insert(s.eperm.end(), s.ta_edge.begin(), s.ta_edge.end());
  if (static_cast<int64_t>(s.eperm.size()) != s.E)
    throw std::logic_error("internal: edge classification lost edges");
  s.w0.resize(s.E);
  s.spar.assign(s.E, -1);
  s.sval.assign(s.E, 0.0);
  s.pcoef_ptr.assign(1, 0);
  for (int64_t p = 0; p < s.E; ++p) {
    const int32_t e = s.eperm[p];
    s.w0[p] = s.eweight[e];
    const int64_t nc = s.coef_ptr[e + 1] - s.coef_ptr[e];
    if (nc > 1) s.single_coef = false;
    if (nc == 1) {
      s.spar[p] = s.coef_param[s.coef_ptr[e]];
      s.sval[p] = s.coef_value[s.coef_ptr[e]];
    }
    for (int64_t k = s.coef_ptr[e]; k < s.coef_ptr[e + 1]; ++k) {
      s.pcoef_param.push_back(s.coef_param[k]);
      s.pcoef_value.push_back(s.coef_value[k]);
    }
    s.pcoef_ptr.push_back(static_cast<int64_t>(s.pcoef_param.size()));
  }
  // Structural check: every transient vertex reaches an absorbing one (reverse BFS).
  {
    std::vector<int64_t> rptr(s.n + 1, 0);
    for (int32_t d : s.tt_dst) ++rptr[d + 1];
    for (int32_t j = 0; j < s.n; ++j) rptr[j + 1] += rptr[j];
    std::vector<int32_t> rsrc(s.tt_dst.size());
    {
      std::vector<int64_t> fill(rptr.begin(), rptr.end() - 1);
      for (int32_t j = 0; j < s.n; ++j)
        for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) rsrc[fill[s.tt_dst[k]]++] = j;
    }
    std::vector<char> ok(s.n, 0);
    std::vector<int32_t> queue;
    for (int32_t j = 0; j < s.n; ++j)
      if (s.ta_ptr[j + 1] > s.ta_ptr[j]) {
        ok[j] = 1;
        queue.push_back(j);
      }
    for (size_t qi = 0; qi < queue.size(); ++qi) {
      int32_t c = queue[qi];
      for (int64_t k = rptr[c]; k < rptr[c + 1]; ++k)
        if (!ok[rsrc[k]]) {
          ok[rsrc[k]] = 1;
          queue.push_back(rsrc[k]);
        }
    }
    for (int32_t j = 0; j < s.n; ++j)
      if (!ok[j])
        throw std::invalid_argument(
            s.vertex_string(s.tvert[j]) +
            " cannot reach an absorbing vertex (every path from it stays among transient "
            "vertices); add an edge towards absorption");
  }
  plan_elimination(s);
  s.layout = build_layout(s);
  return sp;
}

}  // namespace phasic
