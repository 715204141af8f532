// Sparse elimination of the transient chain: a fill-reducing order, the symbolic
// factorization (sparse L and U patterns, memory proportional to the fill) and the
// numeric replay (GTH form) with a dense scatter/gather row.
//
// The transient -> transient edges form a matrix P (row u: out-probabilities of u).
// Eliminating the vertices in `order` factors I - P = L D U with unit L and U. Row u
// of L holds the vertices eliminated before u that u reaches through eliminated
// vertices; row u of U the vertices eliminated after u that it so reaches. The
// diagonal comes from the GTH rule (pivot = absorption + sum of the row of U), so
// pivots are sums of non-negative terms.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dual.hpp"

namespace phasic {

// Sizes known before the factor is allocated: the fill-reducing order's Cholesky
// pattern of the symmetrized matrix inside strongly connected components, which bounds
// the rows of L and U inside each component.
struct FillEstimate {
  int64_t entries = 0;  // nonzeros of L plus U
  double work = 0.0;    // multiply-adds of one numeric factorization
};

struct EliminationPlan {
  std::vector<int32_t> order;    // step -> transient vertex
  std::vector<int32_t> step_of;  // transient vertex -> step
  // Rows of L by step; columns are steps, ascending (the replay order).
  std::vector<int64_t> l_ptr;
  std::vector<int32_t> l_col;
  // Rows of U by step; columns are transient vertices, in ascending step.
  std::vector<int64_t> u_ptr;
  std::vector<int32_t> u_col;
  bool acyclic = true;
  double work = 0.0;  // multiply-adds of one numeric factorization (exact)
  FillEstimate estimate;
};

// Bytes charged against the memory budget per nonzero of L or U: its column index
// here and its value in one double-precision factorization.
constexpr int64_t kBytesPerEntry = 12;
constexpr int64_t kDefaultMemoryBudget = int64_t{2} << 30;  // 2 GiB

// The budget used when none is passed: PHASIC_STRUCTURE_MEMORY_BUDGET (bytes, with an
// optional K, M or G suffix) or 2 GiB. Throws std::invalid_argument on a bad value.
int64_t default_memory_budget();

// Order and symbolic factorization of the n transient vertices whose edges are the CSR
// (ptr, dst). `describe(j)` names vertex j in messages. Throws std::invalid_argument
// naming the estimates and the budget when the factor would need more than
// budget_bytes (a negative budget means default_memory_budget()).
EliminationPlan plan_elimination(int32_t n, const std::vector<int64_t>& ptr,
                                 const std::vector<int32_t>& dst, int64_t budget_bytes);

// Numeric factorization. vals[k] is the probability on edge k of the CSR (ptr, dst);
// absorb[j] the probability that j is absorbed in one step, replaced by the absorption
// probability of j with the vertices after it removed. dense: n entries, all zero (left
// zero). Writes lvals (l_col.size()), uvals (u_col.size()) and dinv (1 / pivot, by
// vertex). Returns -1, or the vertex whose pivot is <= 1e-14 (left in *bad_pivot).
template <class T>
int32_t lu_factor(const EliminationPlan& p, const int64_t* ptr, const int32_t* dst,
                  const T* vals, T* absorb, T* dense, T* lvals, T* uvals, T* dinv,
                  double* bad_pivot) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  for (int32_t k = 0; k < n; ++k) {
    const int32_t u = p.order[k];
    for (int64_t e = ptr[u]; e < ptr[u + 1]; ++e) dense[dst[e]] = vals[e];
    // Row u minus its L part times the rows of U above it, in elimination order (the
    // order a right-looking elimination adds the same terms in).
    T a = absorb[u];
    for (int64_t i = p.l_ptr[k]; i < p.l_ptr[k + 1]; ++i) {
      const int32_t sv = p.l_col[i];
      const int32_t v = p.order[sv];
      const T l = dense[v] * dinv[v];
      dense[v] = T(0.0);
      lvals[i] = l;
      fma_into(a, l, absorb[v]);
      for (int64_t j = p.u_ptr[sv]; j < p.u_ptr[sv + 1]; ++j)
        fma_into(dense[p.u_col[j]], l, uvals[j]);
    }
    dense[u] = T(0.0);  // u -> u is implicit in the GTH pivot: the slot only collects
    absorb[u] = a;
    T pivot = a;
    for (int64_t j = p.u_ptr[k]; j < p.u_ptr[k + 1]; ++j) {
      const int32_t c = p.u_col[j];
      uvals[j] = dense[c];
      dense[c] = T(0.0);
      pivot += uvals[j];
    }
    if (!(value(pivot) > 1e-14)) {
      *bad_pivot = value(pivot);
      return u;
    }
    dinv[u] = reciprocal(pivot);
  }
  return -1;
}

// Solves (I - P) x = b in place with the factors of lu_factor.
template <class T>
void lu_solve(const EliminationPlan& p, const T* lvals, const T* uvals, const T* dinv, T* x) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  for (int32_t k = 0; k < n; ++k) {
    const int32_t u = p.order[k];
    T acc = x[u];
    for (int64_t i = p.l_ptr[k]; i < p.l_ptr[k + 1]; ++i) {
      const T& xv = x[p.order[p.l_col[i]]];
      if (!is_zero(xv)) fma_into(acc, lvals[i], xv);
    }
    x[u] = acc;
  }
  for (int32_t k = n - 1; k >= 0; --k) {
    const int32_t u = p.order[k];
    T acc = x[u];
    for (int64_t j = p.u_ptr[k]; j < p.u_ptr[k + 1]; ++j) fma_into(acc, uvals[j], x[p.u_col[j]]);
    x[u] = acc * dinv[u];
  }
}

}  // namespace phasic
