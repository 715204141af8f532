#include "layout.hpp"

#include <algorithm>

#include "structure.hpp"

namespace phasic {

namespace {

void build_fused_moments(const Structure& s, Layout& out) {
  const int32_t n = s.n;
  if (!s.acyclic || s.discrete || !s.single_coef) return;
  std::vector<int32_t> pos(static_cast<size_t>(n), -1);
  for (int32_t p = 0; p < n; ++p) pos[s.plan.order[p]] = p;
  const int32_t no_param = static_cast<int32_t>(s.P);
  auto edge = [&](int32_t child, int64_t at) {
    const int32_t par = s.spar[at];
    return MomentEdge{child, par >= 0 ? par : no_param, s.w0[at], par >= 0 ? s.sval[at] : 0.0};
  };
  out.m_tidx = s.plan.order;
  out.m_ptr.assign(1, 0);
  out.m_edge.reserve(static_cast<size_t>(s.E - s.off_tt));
  for (int32_t p = 0; p < n; ++p) {
    const int32_t j = s.plan.order[p];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) {
      const int32_t c = pos[s.tt_dst[k]];
      if (c >= p) return;  // not sinks first: keep the general elimination replay
      out.m_edge.push_back(edge(c, s.off_tt + k));
    }
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k)
      out.m_edge.push_back(edge(n, s.off_ta + k));
    out.m_ptr.push_back(static_cast<int64_t>(out.m_edge.size()));
  }
  out.m_alpha.resize(s.alpha_t.size());
  for (size_t k = 0; k < s.alpha_t.size(); ++k)
    out.m_alpha[k] = s.alpha_t[k] >= 0 ? pos[s.alpha_t[k]] : -1;
  out.fused_moments = true;
}

// Kahn's algorithm, first in first out, over the transient -> transient edges: for a
// layered graph (the Kingman coalescent) the numbering follows the layers, so the
// probability mass of the uniformized chain occupies a sliding window of indices.
// Vertices on cycles are taken lowest index first when nothing else is ready; the
// numbering only affects speed, never results.
std::vector<int32_t> flow_order(const Structure& s) {
  const int32_t n = s.n;
  std::vector<int32_t> indeg(static_cast<size_t>(n), 0);
  for (int32_t d : s.tt_dst) ++indeg[d];
  std::vector<int32_t> order;
  order.reserve(static_cast<size_t>(n));
  std::vector<char> taken(static_cast<size_t>(n), 0);
  auto take = [&](int32_t j) {
    taken[j] = 1;
    order.push_back(j);
  };
  for (int32_t j = 0; j < n; ++j)
    if (indeg[j] == 0) take(j);
  int32_t next_forced = 0;
  for (size_t head = 0; order.size() < static_cast<size_t>(n) || head < order.size();) {
    if (head == order.size()) {  // only cycles left
      while (taken[next_forced]) ++next_forced;
      take(next_forced);
    }
    const int32_t j = order[head++];
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) {
      const int32_t d = s.tt_dst[k];
      if (--indeg[d] == 0 && !taken[d]) take(d);
    }
  }
  return order;
}

void build_gather(const Structure& s, Layout& out) {
  const int32_t n = s.n;
  out.u_tidx = flow_order(s);
  out.u_pos.assign(static_cast<size_t>(n), 0);
  for (int32_t q = 0; q < n; ++q) out.u_pos[out.u_tidx[q]] = q;
  out.in_ptr.assign(static_cast<size_t>(n) + 1, 0);
  for (int32_t d : s.tt_dst) ++out.in_ptr[out.u_pos[d] + 1];
  for (int32_t q = 0; q < n; ++q) out.in_ptr[q + 1] += out.in_ptr[q];
  out.in_src.resize(s.tt_dst.size());
  out.in_edge.resize(s.tt_dst.size());
  std::vector<int64_t> fill(out.in_ptr.begin(), out.in_ptr.end() - 1);
  out.reach_lo.resize(static_cast<size_t>(n));
  out.reach_hi.resize(static_cast<size_t>(n));
  // Sources in increasing q, so every row of the gather is summed in source order.
  for (int32_t q = 0; q < n; ++q) {
    const int32_t j = out.u_tidx[q];
    int32_t lo = q, hi = q;
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) {
      const int32_t d = out.u_pos[s.tt_dst[k]];
      const int64_t at = fill[d]++;
      out.in_src[at] = q;
      out.in_edge[at] = static_cast<int32_t>(s.off_tt + k);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    out.reach_lo[q] = lo;
    out.reach_hi[q] = hi;
  }
  for (int32_t q = 1; q < n; ++q) out.reach_hi[q] = std::max(out.reach_hi[q], out.reach_hi[q - 1]);
  for (int32_t q = n - 2; q >= 0; --q)
    out.reach_lo[q] = std::min(out.reach_lo[q], out.reach_lo[q + 1]);
}

}  // namespace

Layout build_layout(const Structure& s) {
  Layout out;
  build_fused_moments(s, out);
  build_gather(s, out);
  return out;
}

}  // namespace phasic
