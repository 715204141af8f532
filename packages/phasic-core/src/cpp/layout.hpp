// Structure-derived arrays laid out for the hot per-theta loops, built once per
// structure (Structure::compile). Two consumers:
//  - acyclic continuous moments: one fused sweep in elimination order (sinks first)
//    that computes the edge weights, the exit rates and every moment together;
//  - uniformization: the transient -> transient edges as CSR by destination (a
//    gather matvec, each row summed in a fixed order) in a topological-like
//    numbering, so the support of the probability vector is a narrow index window.
#pragma once
#include <cstdint>
#include <vector>

namespace phasic {

struct Structure;

// One out-edge in the fused moments sweep. child == n is a sentinel position
// standing for every absorbing vertex (its moments are 0); param == P indexes a
// 0 appended to theta (an edge with no coefficient). Weight = w0 + coef * theta[param].
struct MomentEdge {
  int32_t child;
  int32_t param;
  double w0;
  double coef;
};

struct Layout {
  // Fused acyclic moments: valid when the graph is acyclic, continuous and has at
  // most one coefficient per edge. Position p is elimination step p.
  bool fused_moments = false;
  std::vector<int32_t> m_tidx;   // position -> transient index
  std::vector<int64_t> m_ptr;    // CSR over positions into m_edge
  std::vector<MomentEdge> m_edge;
  std::vector<int32_t> m_alpha;  // alpha edge k -> position, or -1 (absorbing target)

  // Uniformization order: q -> transient index, and its inverse.
  std::vector<int32_t> u_tidx, u_pos;
  std::vector<int64_t> in_ptr;   // CSR by destination q
  std::vector<int32_t> in_src;   // source q of each in-edge
  std::vector<int32_t> in_edge;  // its position in the per-theta weight array
  // Support propagation: if v is zero outside [lo, hi], then v P is zero outside
  // [reach_lo[lo], reach_hi[hi]] (suffix minimum / prefix maximum of row targets).
  std::vector<int32_t> reach_lo, reach_hi;
};

// Builds the layout of a compiled structure (its CSR, classes and elimination plan).
Layout build_layout(const Structure& s);

}  // namespace phasic
