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
#include <memory>

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

// Diagnostic switch (phasic._core.set_lumping): false makes density_structure return
// the graph itself, so tests compare both.
extern std::atomic<bool> g_lumping;

// What the absorption-time densities run on: s's lumped structure (computed once per
// structure, on first use) when lumping is on and s lumps, else s itself.
const Structure& density_structure(const Structure& s);

}  // namespace phasic
