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
  // Rows of U by step; columns are steps, ascending. A row marked in u_run covers every
  // step from its first column to its last (gaps padded with explicit zeros), so the
  // replay updates it as one contiguous run.
  std::vector<int64_t> u_ptr;
  std::vector<int32_t> u_col;
  std::vector<char> u_run;
  bool acyclic = true;
  int64_t nonzeros = 0;  // of L and U (without the padding of runs)
  double work = 0.0;     // multiply-adds of one numeric factorization (exact)
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
// absorb[j] the probability that vertex j is absorbed in one step, replaced by the
// absorption probability of j with the vertices after it removed. dense: n entries, all
// zero (left zero). Writes lvals (l_col.size()), uvals (u_col.size()) and dinv (1 /
// pivot, by step). Returns -1, or the vertex whose pivot is <= 1e-14 (in *bad_pivot).
// Every entry receives the same terms in the same order as a right-looking
// elimination (padding adds exact zeros), so results do not depend on the layout.
template <class T>
int32_t lu_factor(const EliminationPlan& p, const int64_t* ptr, const int32_t* dst,
                  const T* vals, T* absorb, T* dense, T* lvals, T* uvals, T* dinv,
                  double* bad_pivot) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  for (int32_t k = 0; k < n; ++k) {
    const int32_t u = p.order[k];
    for (int64_t e = ptr[u]; e < ptr[u + 1]; ++e) dense[p.step_of[dst[e]]] = vals[e];
    // Row u minus its L part times the rows of U above it, in elimination order.
    T a = absorb[u];
    for (int64_t i = p.l_ptr[k]; i < p.l_ptr[k + 1]; ++i) {
      const int32_t sv = p.l_col[i];
      const T l = dense[sv] * dinv[sv];
      dense[sv] = T(0.0);
      lvals[i] = l;
      fma_into(a, l, absorb[p.order[sv]]);
      const int64_t j0 = p.u_ptr[sv], j1 = p.u_ptr[sv + 1];
      if (p.u_run[sv]) {
        T* run = dense + (j1 > j0 ? p.u_col[j0] : 0);
        const T* uv = uvals + j0;
        for (int64_t j = 0; j < j1 - j0; ++j) fma_into(run[j], l, uv[j]);
      } else {
        for (int64_t j = j0; j < j1; ++j) fma_into(dense[p.u_col[j]], l, uvals[j]);
      }
    }
    dense[k] = T(0.0);  // u -> u is implicit in the GTH pivot: the slot only collects
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
    dinv[k] = reciprocal(pivot);
  }
  return -1;
}

// Solves (I - P) x = b in place with the factors of lu_factor (in step order inside).
template <class T>
void lu_solve(const EliminationPlan& p, const T* lvals, const T* uvals, const T* dinv, T* x) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  thread_local std::vector<T> by_step;
  by_step.resize(static_cast<size_t>(n));
  T* xs = by_step.data();
  for (int32_t k = 0; k < n; ++k) xs[k] = x[p.order[k]];
  for (int32_t k = 0; k < n; ++k) {
    T acc = xs[k];
    for (int64_t i = p.l_ptr[k]; i < p.l_ptr[k + 1]; ++i) {
      const T& xv = xs[p.l_col[i]];
      if (!is_zero(xv)) fma_into(acc, lvals[i], xv);
    }
    xs[k] = acc;
  }
  for (int32_t k = n - 1; k >= 0; --k) {
    T acc = xs[k];
    for (int64_t j = p.u_ptr[k]; j < p.u_ptr[k + 1]; ++j) fma_into(acc, uvals[j], xs[p.u_col[j]]);
    xs[k] = acc * dinv[k];
  }
  for (int32_t k = 0; k < n; ++k) x[p.order[k]] = xs[k];
}

}  // namespace phasic
