#include "structure.hpp"

#include <algorithm>
#include <stdexcept>

namespace phasic {

std::string Structure::vertex_string(int64_t v) const {
  const int64_t named = origin.empty() ? v : origin[static_cast<size_t>(v)];
  std::string s = "vertex " + std::to_string(named) + " (state [";
  for (int64_t i = 0; i < L; ++i) {
    if (i) s += ", ";
    s += std::to_string(states[static_cast<size_t>(v * L + i)]);
  }
  return s + "])";
}

void Structure::predecessors(std::vector<int64_t>& ptr, std::vector<int32_t>& src) const {
  ptr.assign(static_cast<size_t>(n) + 1, 0);
  for (int32_t d : tt_dst) ++ptr[d + 1];
  for (int32_t j = 0; j < n; ++j) ptr[j + 1] += ptr[j];
  src.resize(tt_dst.size());
  std::vector<int64_t> fill(ptr.begin(), ptr.end() - 1);
  for (int32_t j = 0; j < n; ++j)
    for (int64_t k = tt_ptr[j]; k < tt_ptr[j + 1]; ++k) src[fill[tt_dst[k]]++] = j;
}

std::shared_ptr<const Structure> Structure::from_json(std::string_view text,
                                                     int64_t memory_budget) {
  return compile(parse_graph_json(text), memory_budget);
}

std::shared_ptr<const Structure> Structure::compile(const GraphData& g, int64_t memory_budget,
                                                   std::vector<int32_t> origin) {
  auto sp = std::make_shared<Structure>();
  Structure& s = *sp;
  s.origin = std::move(origin);
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
    std::vector<int64_t> rptr;
    std::vector<int32_t> rsrc;
    s.predecessors(rptr, rsrc);
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
  s.plan = plan_elimination(s.n, s.tt_ptr, s.tt_dst, memory_budget);
  s.acyclic = s.plan.acyclic;
  s.n_fill = s.plan.nonzeros - static_cast<int64_t>(s.tt_dst.size());
  s.layout = build_layout(s);
  return sp;
}

}  // namespace phasic
