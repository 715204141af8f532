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
#include <algorithm>
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

// Subtracts l[i] times U row sv from the rows rows[i] of the block, i < m.
template <class T>
void apply_u_row(const EliminationPlan& p, int32_t sv, const T* uvals, T* const* rows,
                 const T* l, int m) {
  const int64_t j0 = p.u_ptr[sv], j1 = p.u_ptr[sv + 1];
  if (j1 == j0) return;
  const T* uv = uvals + j0;
  if (p.u_run[sv]) {
    const int32_t c0 = p.u_col[j0];
    for (int i = 0; i < m; ++i) {
      T* run = rows[i] + c0;
      const T li = l[i];
      for (int64_t j = 0; j < j1 - j0; ++j) fma_into(run[j], li, uv[j]);
    }
  } else {
    const int32_t* col = p.u_col.data() + j0;
    for (int i = 0; i < m; ++i) {
      T* row = rows[i];
      const T li = l[i];
      for (int64_t j = 0; j < j1 - j0; ++j) fma_into(row[col[j]], li, uv[j]);
    }
  }
}

// Numeric factorization. vals[k] is the probability on edge k of the CSR (ptr, dst);
// absorb[j] the probability that vertex j is absorbed in one step, replaced by the
// absorption probability of j with the vertices after it removed. Writes lvals
// (l_col.size()), uvals (u_col.size()) and dinv (1 / pivot, by step); work is scratch.
// Returns -1, or the vertex whose pivot is <= 1e-14 (its pivot in *bad_pivot).
//
// Rows are built kLuBlock at a time (one at a time when U is empty: acyclic graphs),
// each scattered into its own dense row: first every U row above the block is applied
// to all block rows that need it (read from memory once for the block: the 8,000-vertex
// chord cycle of bench/elimination.py factors 3x faster), then the block's own rows in
// order. Every entry still
// receives the same terms in the same order as a right-looking elimination (padding
// adds exact zeros), so results do not depend on the blocking or the layout.
constexpr int32_t kLuBlock = 16;

template <class T>
int32_t lu_factor(const EliminationPlan& p, const int64_t* ptr, const int32_t* dst,
                  const T* vals, T* absorb, std::vector<T>& work, T* lvals, T* uvals,
                  T* dinv, double* bad_pivot) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  const int32_t block = p.acyclic ? 1 : std::min(n, kLuBlock);
  work.assign(static_cast<size_t>(n) * static_cast<size_t>(block), T(0.0));
  T* rows[kLuBlock];
  T* act_rows[kLuBlock];
  T acc[kLuBlock], l[kLuBlock];
  int64_t at[kLuBlock];
  for (int32_t k0 = 0; k0 < n; k0 += block) {
    const int m = static_cast<int>(std::min(block, n - k0));
    for (int q = 0; q < m; ++q) {
      rows[q] = work.data() + static_cast<size_t>(q) * static_cast<size_t>(n);
      const int32_t u = p.order[k0 + q];
      for (int64_t e = ptr[u]; e < ptr[u + 1]; ++e) rows[q][p.step_of[dst[e]]] = vals[e];
      at[q] = p.l_ptr[k0 + q];
      acc[q] = absorb[u];
    }
    // U rows above the block, in ascending step, each applied to the rows needing it.
    for (;;) {
      int32_t sv = k0;
      for (int q = 0; q < m; ++q)
        if (at[q] < p.l_ptr[k0 + q + 1]) sv = std::min(sv, p.l_col[at[q]]);
      if (sv == k0) break;
      int na = 0;
      for (int q = 0; q < m; ++q) {
        if (at[q] == p.l_ptr[k0 + q + 1] || p.l_col[at[q]] != sv) continue;
        const T lq = rows[q][sv] * dinv[sv];
        rows[q][sv] = T(0.0);
        lvals[at[q]++] = lq;
        fma_into(acc[q], lq, absorb[p.order[sv]]);
        act_rows[na] = rows[q];
        l[na++] = lq;
      }
      apply_u_row(p, sv, uvals, act_rows, l, na);
    }
    // The block's own rows, in order: row k needs the finished rows k0 .. k - 1.
    for (int q = 0; q < m; ++q) {
      const int32_t k = k0 + q, u = p.order[k];
      T* row = rows[q];
      for (; at[q] < p.l_ptr[k + 1]; ++at[q]) {
        const int32_t sv = p.l_col[at[q]];
        const T lq = row[sv] * dinv[sv];
        row[sv] = T(0.0);
        lvals[at[q]] = lq;
        fma_into(acc[q], lq, absorb[p.order[sv]]);
        apply_u_row(p, sv, uvals, &row, &lq, 1);
      }
      row[k] = T(0.0);  // u -> u is implicit in the GTH pivot: the slot only collects
      absorb[u] = acc[q];
      T pivot = acc[q];
      for (int64_t j = p.u_ptr[k]; j < p.u_ptr[k + 1]; ++j) {
        const int32_t c = p.u_col[j];
        uvals[j] = row[c];
        row[c] = T(0.0);
        pivot += uvals[j];
      }
      if (!(value(pivot) > 1e-14)) {
        *bad_pivot = value(pivot);
        return u;
      }
      dinv[k] = reciprocal(pivot);
    }
  }
  return -1;
}

// x (by transient vertex) copied into a per-thread buffer in elimination-step order.
template <class T>
T* gather_by_step(const EliminationPlan& p, const T* x) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  thread_local std::vector<T> by_step;
  by_step.resize(static_cast<size_t>(n));
  T* xs = by_step.data();
  for (int32_t k = 0; k < n; ++k) xs[k] = x[p.order[k]];
  return xs;
}

// Solves (I - P) x = b in place with the factors of lu_factor (in step order inside).
template <class T>
void lu_solve(const EliminationPlan& p, const T* lvals, const T* uvals, const T* dinv, T* x) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  T* xs = gather_by_step(p, x);
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

// Solves (I - P)^T x = b in place (x^T (I - P) = b^T: a row vector times the inverse)
// with the same factors. lu_solve's back substitution is the upper factor M with
// M_kk = pivot and M_kj = -uvals; its transpose is solved forwards, each step divided
// by its pivot and its row of U then scattered, and L^T backwards the same way.
template <class T>
void lu_solve_transposed(const EliminationPlan& p, const T* lvals, const T* uvals,
                         const T* dinv, T* x) {
  const int32_t n = static_cast<int32_t>(p.order.size());
  T* xs = gather_by_step(p, x);
  for (int32_t k = 0; k < n; ++k) {
    xs[k] = xs[k] * dinv[k];
    const T xk = xs[k];
    if (is_zero(xk)) continue;
    for (int64_t j = p.u_ptr[k]; j < p.u_ptr[k + 1]; ++j) fma_into(xs[p.u_col[j]], uvals[j], xk);
  }
  for (int32_t k = n - 1; k >= 0; --k) {
    const T xk = xs[k];
    if (is_zero(xk)) continue;
    for (int64_t i = p.l_ptr[k]; i < p.l_ptr[k + 1]; ++i) fma_into(xs[p.l_col[i]], lvals[i], xk);
  }
  for (int32_t k = 0; k < n; ++k) x[p.order[k]] = xs[k];
}

}  // namespace phasic
