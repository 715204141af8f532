// Everything derived from a graph's structure alone, computed once and reused for
// every theta: edge CSR, transient/absorbing classes, and the elimination plan.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "elimination.hpp"
#include "graph.hpp"
#include "layout.hpp"

namespace phasic {

struct RateForms;  // lumping.hpp

struct Structure {
  bool discrete = false;
  int64_t P = 0;  // theta length
  int64_t V = 0;  // vertices (including the starting vertex 0)
  int64_t E = 0;  // edges
  int64_t L = 0;  // state length
  std::vector<int32_t> states;  // for messages
  // A lumped structure's vertex v stands for the original's vertex origin[v] (messages
  // name that one); empty: the vertices are the graph's own.
  std::vector<int32_t> origin;
  std::vector<int32_t> efrom, eto;
  std::vector<double> eweight;
  std::vector<int64_t> coef_ptr;  // CSR by edge
  std::vector<int32_t> coef_param;
  std::vector<double> coef_value;

  // Transient vertices, numbered 0..n-1; tidx maps a vertex to that number or -1.
  int32_t n = 0;
  std::vector<int32_t> tidx, tvert;
  // Initial distribution: edges out of vertex 0 and their transient target (-1: absorbing).
  std::vector<int32_t> alpha_edge, alpha_t;
  // Transient -> transient edges, CSR by source; position k is elimination slot k.
  std::vector<int64_t> tt_ptr;
  std::vector<int32_t> tt_dst, tt_edge;
  // Transient -> absorbing edges, CSR by source.
  std::vector<int64_t> ta_ptr;
  std::vector<int32_t> ta_edge;

  // Edges re-ordered for per-theta evaluation: position p holds edge eperm[p];
  // alpha edges first, then T->T edges (CSR order), then T->absorbing edges.
  std::vector<int32_t> eperm;
  int64_t off_tt = 0, off_ta = 0;
  std::vector<double> w0;          // constant part per position
  bool single_coef = true;         // at most one coefficient per edge: spar/sval
  std::vector<int32_t> spar;       // parameter index or -1
  std::vector<double> sval;
  std::vector<int64_t> pcoef_ptr;  // general case: CSR by position
  std::vector<int32_t> pcoef_param;
  std::vector<double> pcoef_value;

  // Elimination plan (recorded once): the order (sinks first, fill-reducing inside
  // cycles) and the sparse L and U patterns of I - P (elimination.hpp).
  EliminationPlan plan;
  int64_t n_fill = 0;  // nonzeros of L and U beyond the T->T edges
  bool acyclic = true;

  // The same facts laid out for the per-theta hot loops (layout.hpp).
  Layout layout;

  // The lumped structure the densities run on (lumping.hpp), set on first use, and
  // the distinct rate forms that check theta on behalf of this graph.
  mutable std::once_flag lump_once;
  mutable std::shared_ptr<const Structure> lumped;
  mutable std::shared_ptr<const RateForms> rate_forms;

  // memory_budget: bytes the elimination plan may take (std::invalid_argument naming
  // the estimates beyond it); negative: default_memory_budget(). origin: as the field.
  static std::shared_ptr<const Structure> compile(const GraphData& g,
                                                  int64_t memory_budget = -1,
                                                  std::vector<int32_t> origin = {});
  static std::shared_ptr<const Structure> from_json(std::string_view text,
                                                    int64_t memory_budget = -1);

  std::string vertex_string(int64_t v) const;  // "vertex 3 (state [1, 0])"

  // The T->T edges by target: the sources of the edges into j are
  // src[ptr[j] .. ptr[j + 1]), in source order.
  void predecessors(std::vector<int64_t>& ptr, std::vector<int32_t>& src) const;
};

}  // namespace phasic
