// Exact lumping for the time to absorption. A partition of the transient vertices is
// (ordinarily) lumpable when, within each block, every vertex has the same total rate
// into every other block and into absorption, for every theta: the coefficient vectors
// of its edges, summed per target block, are equal. The absorption time of the lumped
// chain (one vertex per block, the start weights summed per block) then has exactly
// the distribution of the original's (Kemeny and Snell, Finite Markov Chains, 6.3), so
// the densities run on the smaller graph. The block-counting coalescent lumps to its
// lineage counts, for instance: n = 20 has 626 transient states and 19 blocks.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "structure.hpp"

namespace phasic {

// A lumping of s, compiled, or nullptr when s does not lump to at most three quarters
// of its transient vertices. Acyclic graphs take one pass, sinks first: the coarsest
// partition whose blocks hold no edge inside themselves. Cyclic ones refine the
// one-block partition until no block splits (the coarsest lumping; at most 64 rounds,
// past them the graph is taken as it is). Sums are taken in
// a canonical order, so equal coefficient multisets give bit-equal rates; rates that
// are equal only up to rounding leave their vertices apart (never a wrong lumping).
// The lumped structure's vertex 0 is the start, then one vertex per block (its
// first vertex's state, and `origin` naming it), then one absorbing vertex.
std::shared_ptr<const Structure> lump(const Structure& s);

// theta's checks on a lumped graph's original in O(distinct rate forms) instead of
// O(edges): each distinct (weight, coefficients) form of its edges evaluated once, each
// distinct pattern of forms out of a vertex (its total out-rate > 0; discrete: at most
// 1) and the start weights' sum, with the arithmetic edge_weights uses, so they pass
// exactly when edge_weights would. Built with the lumping.
struct RateForms {
  std::vector<double> w0;             // per form: constant weight
  std::vector<int64_t> ptr;           // per form: its coefficients, in the edge's order
  std::vector<int32_t> param;
  std::vector<double> value;
  std::vector<int32_t> start;         // the forms of vertex 0's edges, in order
  std::vector<int64_t> vptr;          // per pattern: forms [vptr[k], vptr[k + 1])
  std::vector<int32_t> vform;         // continuous: a set; discrete: absorbing edges
  std::vector<int64_t> vsplit;        // first, then the others (vsplit: where they start)
};

// True when theta passes every check edge_weights makes on the graph `forms` came
// from (length, finiteness, weights >= 0 and finite, start sum, vertex totals); false
// means edge_weights on the graph itself must word the error.
bool rates_ok(const RateForms& forms, int64_t P, bool discrete, const double* theta,
              int64_t plen);

// Diagnostic switch (phasic._core.set_lumping): false makes density_structure return
// the graph itself, so tests compare both.
extern std::atomic<bool> g_lumping;

// What the absorption-time densities run on: s's lumped structure (computed once per
// structure, on first use) when lumping is on and s lumps, else s itself.
const Structure& density_structure(const Structure& s);

}  // namespace phasic
