#include "elimination.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <queue>
#include <stdexcept>
#include <utility>

namespace phasic {

namespace {

constexpr const char* kBudgetVar = "PHASIC_STRUCTURE_MEMORY_BUDGET";

std::string mib(double bytes) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

std::string count(double x) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

[[noreturn]] void over_budget(const FillEstimate& est, int64_t budget, const std::string& seen) {
  throw std::invalid_argument(
      "compiling this graph needs more memory than the structure memory budget: the "
      "elimination is estimated at " + count(static_cast<double>(est.entries)) +
      " nonzeros in its factors (" + mib(static_cast<double>(est.entries) * kBytesPerEntry) +
      ") and " + count(est.work) + " multiply-adds per evaluation" + seen + ", budget " +
      mib(static_cast<double>(budget)) + " (" + std::to_string(budget) +
      " bytes). Raise the budget (the memory_budget argument where the structure is "
      "compiled, or the " + kBudgetVar + " environment variable, in bytes) or use a "
      "graph with fewer cycles among its transient vertices");
}

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

// Approximate minimum degree (Amestoy, Davis and Duff, 1996) on a symmetric pattern:
// adjacency lists without self-loops or duplicates, local indices 0..m-1. Works on the
// quotient graph (eliminated vertices become elements standing for the clique of their
// neighbours), with approximate external degrees and aggressive element absorption.
// Returns the order; adds the Cholesky pattern of that order to est (L and U of the
// unsymmetric elimination each lie inside it).
std::vector<int32_t> amd_order(std::vector<std::vector<int32_t>> adj, FillEstimate& est) {
  const int32_t m = static_cast<int32_t>(adj.size());
  enum : char { kVariable, kElement, kAbsorbed };
  std::vector<char> status(m, kVariable);
  std::vector<std::vector<int32_t>> elems(m);    // elements adjacent to a variable
  std::vector<std::vector<int32_t>> members(m);  // variables of a live element
  std::vector<int64_t> degree(m), outside(m, 0);  // outside: |Le \ Lp| for this pivot
  std::vector<int32_t> in_lp(m, -1), seen(m, -1);
  using Item = std::pair<int64_t, int32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (int32_t i = 0; i < m; ++i) {
    degree[i] = static_cast<int64_t>(adj[i].size());
    heap.emplace(degree[i], i);
  }
  std::vector<int32_t> order;
  order.reserve(m);
  std::vector<int32_t> lp;
  for (int32_t k = 0; k < m; ++k) {
    int32_t p;
    for (;;) {
      auto [d, i] = heap.top();
      heap.pop();
      if (status[i] == kVariable && d == degree[i]) {
        p = i;
        break;
      }
    }
    order.push_back(p);
    // Lp: the variables adjacent to p directly or through its elements, which p absorbs.
    lp.clear();
    in_lp[p] = k;
    auto add = [&](int32_t i) {
      if (status[i] == kVariable && in_lp[i] != k) {
        in_lp[i] = k;
        lp.push_back(i);
      }
    };
    for (int32_t i : adj[p]) add(i);
    for (int32_t e : elems[p]) {
      if (status[e] != kElement) continue;
      for (int32_t i : members[e]) add(i);
      status[e] = kAbsorbed;
      std::vector<int32_t>().swap(members[e]);
    }
    status[p] = kElement;
    std::vector<int32_t>().swap(adj[p]);
    std::vector<int32_t>().swap(elems[p]);
    const auto d = static_cast<int64_t>(lp.size());
    est.entries += 2 * d;
    est.work += static_cast<double>(d) * static_cast<double>(d + 1);
    // |Le \ Lp| for every element next to Lp (members of live elements are variables).
    for (int32_t i : lp)
      for (int32_t e : elems[i]) {
        if (status[e] != kElement) continue;
        if (seen[e] != k) {
          seen[e] = k;
          outside[e] = static_cast<int64_t>(members[e].size());
        }
        --outside[e];
      }
    for (int32_t i : lp) {
      int64_t ext = d - 1;
      size_t kept = 0;
      for (int32_t e : elems[i]) {
        if (status[e] != kElement) continue;
        if (outside[e] == 0) {  // e lies inside Lp: p's element covers it
          status[e] = kAbsorbed;
          std::vector<int32_t>().swap(members[e]);
          continue;
        }
        ext += outside[e];
        elems[i][kept++] = e;
      }
      elems[i].resize(kept);
      elems[i].push_back(p);
      kept = 0;
      for (int32_t j : adj[i]) {
        if (status[j] != kVariable || in_lp[j] == k) continue;  // now through element p
        ext += 1;
        adj[i][kept++] = j;
      }
      adj[i].resize(kept);
      degree[i] = std::min({degree[i] + d - 1, ext, static_cast<int64_t>(m - k - 2)});
      heap.emplace(degree[i], i);
    }
    members[p] = lp;
    // Stale heap entries (a variable's older degrees) would add up to the whole fill:
    // rebuild from the live variables whenever they outnumber them.
    if (heap.size() > 2 * static_cast<size_t>(m) + 64) {
      std::vector<Item> live;
      live.reserve(static_cast<size_t>(m));
      for (int32_t i = 0; i < m; ++i)
        if (status[i] == kVariable) live.emplace_back(degree[i], i);
      heap = decltype(heap)(std::greater<Item>(), std::move(live));
    }
  }
  return order;
}

// Rows of L and U, row by row in elimination order (columns as steps): row k's pattern
// is its edges plus the U rows of its L entries, taken in ascending step (a min-heap,
// since new L entries arrive while the row is built). Memory is the fill. Symmetric
// pruning (Eisenstat and Liu, 1993) keeps this faster than the numeric work: once
// L(k, v) and U(v, k) are both nonzero, the entries of U row v after k are reached
// through row k, so later rows scan row v only up to k.
void symbolic(int32_t n, const std::vector<int64_t>& ptr, const std::vector<int32_t>& dst,
              int64_t budget, EliminationPlan& plan) {
  plan.step_of.assign(n, 0);
  for (int32_t k = 0; k < n; ++k) plan.step_of[plan.order[k]] = k;
  const auto edges = static_cast<int64_t>(dst.size());
  const int64_t guess =
      std::min(plan.estimate.entries + edges, budget / kBytesPerEntry + 1);
  plan.l_col.reserve(static_cast<size_t>(guess / 2 + 1));
  plan.u_col.reserve(static_cast<size_t>(guess / 2 + 1));
  plan.l_ptr.assign(1, 0);
  plan.u_ptr.assign(1, 0);
  std::vector<int64_t> scan_end;  // per step: where the scan of its U row stops
  scan_end.reserve(n);
  std::vector<int32_t> mark(n, -1), heap;
  const std::greater<int32_t> later;
  for (int32_t k = 0; k < n; ++k) {
    const int32_t u = plan.order[k];
    const size_t u0 = plan.u_col.size(), l0 = plan.l_col.size();
    mark[k] = k;  // u -> u is implicit in the GTH pivot
    auto reach = [&](int32_t c) {
      if (mark[c] == k) return;
      mark[c] = k;
      if (c < k) {
        heap.push_back(c);
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        plan.u_col.push_back(c);
      }
    };
    for (int64_t e = ptr[u]; e < ptr[u + 1]; ++e) reach(plan.step_of[dst[e]]);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const int32_t sv = heap.back();
      heap.pop_back();
      plan.l_col.push_back(sv);
      plan.work += 1.0 + static_cast<double>(plan.u_ptr[sv + 1] - plan.u_ptr[sv]);
      for (int64_t j = plan.u_ptr[sv]; j < scan_end[sv]; ++j) reach(plan.u_col[j]);
    }
    std::sort(plan.u_col.begin() + static_cast<std::ptrdiff_t>(u0), plan.u_col.end());
    plan.work += static_cast<double>(plan.u_col.size() - u0);
    plan.l_ptr.push_back(static_cast<int64_t>(plan.l_col.size()));
    plan.u_ptr.push_back(static_cast<int64_t>(plan.u_col.size()));
    scan_end.push_back(plan.u_ptr.back());
    for (size_t i = l0; i < plan.l_col.size(); ++i) {
      const int32_t sv = plan.l_col[i];
      const auto first = plan.u_col.begin() + plan.u_ptr[sv];
      const auto last = plan.u_col.begin() + scan_end[sv];
      const auto at = std::lower_bound(first, last, k);
      if (at != last && *at == k) scan_end[sv] = (at - plan.u_col.begin()) + 1;
    }
    const auto entries = static_cast<int64_t>(plan.l_col.size() + plan.u_col.size());
    if (entries > budget / kBytesPerEntry)
      over_budget(plan.estimate, budget,
                  " (counted exactly: " + count(static_cast<double>(entries)) +
                      " nonzeros after " + std::to_string(k + 1) + " of " + std::to_string(n) +
                      " vertices)");
  }
  plan.l_col.shrink_to_fit();
  plan.nonzeros = static_cast<int64_t>(plan.l_col.size() + plan.u_col.size());
}

// Rows of U at least 3/4 full between their first and last column become contiguous
// runs (the gaps stored as zeros), when the padding fits the budget: the replay then
// updates them without indirection. Rows shorter than kMinRun stay as they are.
void pad_runs(int64_t budget, EliminationPlan& plan) {
  constexpr int64_t kMinRun = 16;
  const auto n = static_cast<int32_t>(plan.order.size());
  auto length = [&](int32_t k) { return plan.u_ptr[k + 1] - plan.u_ptr[k]; };
  auto span = [&](int32_t k) -> int64_t {  // first to last column (0: empty row)
    const int64_t j0 = plan.u_ptr[k], j1 = plan.u_ptr[k + 1];
    return j1 > j0 ? plan.u_col[j1 - 1] - plan.u_col[j0] + 1 : 0;
  };
  plan.u_run.assign(n, 0);
  int64_t total = 0;
  for (int32_t k = 0; k < n; ++k) {
    const int64_t len = length(k);
    plan.u_run[k] = len == span(k) || (len >= kMinRun && 4 * len >= 3 * span(k));
    total += plan.u_run[k] ? span(k) : len;
  }
  if (total + static_cast<int64_t>(plan.l_col.size()) > budget / kBytesPerEntry) {
    for (int32_t k = 0; k < n; ++k) plan.u_run[k] = length(k) == span(k);  // no padding
    plan.u_col.shrink_to_fit();
    return;
  }
  std::vector<int64_t> ptr(1, 0);
  std::vector<int32_t> col;
  col.reserve(static_cast<size_t>(total));
  for (int32_t k = 0; k < n; ++k) {
    const int64_t j0 = plan.u_ptr[k], j1 = plan.u_ptr[k + 1];
    if (plan.u_run[k] && j1 > j0)
      for (int32_t c = plan.u_col[j0]; c <= plan.u_col[j1 - 1]; ++c) col.push_back(c);
    else
      col.insert(col.end(), plan.u_col.begin() + j0, plan.u_col.begin() + j1);
    ptr.push_back(static_cast<int64_t>(col.size()));
  }
  plan.u_ptr.swap(ptr);
  plan.u_col.swap(col);
}

// Greedy minimum Markowitz cost (parents x children in the remaining graph), the order
// this compiler used before approximate minimum degree: on structured models (the
// two-island coalescent) it leaves about half the fill, but it simulates every
// elimination operation. Runs on a component's local CSR: vertices 0..m-1 are the
// component's, the rows after them its parents in later components (never eliminated
// here; their fill counts). Gives up, returning an empty order, once its nonzeros reach
// max_entries or its operations max_work. Memory: the remaining graph, at most
// max_entries edges.
std::vector<int32_t> markowitz_order(const std::vector<int64_t>& ptr,
                                     const std::vector<int32_t>& dst, int32_t m,
                                     int64_t max_entries, double max_work) {
  const auto rows = static_cast<int32_t>(ptr.size() - 1);
  std::vector<std::vector<int32_t>> ch(rows), par(m);
  for (int32_t i = 0; i < rows; ++i)
    for (int64_t e = ptr[i]; e < ptr[i + 1]; ++e) {
      ch[i].push_back(dst[e]);
      par[dst[e]].push_back(i);
    }
  auto cost = [&](int32_t v) {
    return static_cast<int64_t>(par[v].size()) * static_cast<int64_t>(ch[v].size());
  };
  auto remove = [](std::vector<int32_t>& list, int32_t v) {
    auto at = std::find(list.begin(), list.end(), v);
    *at = list.back();
    list.pop_back();
  };
  using Item = std::pair<int64_t, int32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (int32_t v = 0; v < m; ++v) heap.emplace(cost(v), v);
  std::vector<char> done(m, 0);
  std::vector<int64_t> mark(m, -1);
  std::vector<int32_t> order, touched;
  int64_t entries = 0, stamp = 0;
  double work = 0.0;
  while (static_cast<int32_t>(order.size()) < m) {
    auto [c, v] = heap.top();
    heap.pop();
    if (done[v] || c != cost(v)) continue;
    order.push_back(v);
    done[v] = 1;
    entries += static_cast<int64_t>(par[v].size() + ch[v].size());
    for (int32_t w : ch[v]) remove(par[w], v);
    for (int32_t u : par[v]) {
      remove(ch[u], v);
      ++stamp;
      for (int32_t w : ch[u]) mark[w] = stamp;
      work += static_cast<double>(ch[u].size() + ch[v].size());
      for (int32_t w : ch[v])
        if (w != u && mark[w] != stamp) {  // u -> u is implicit in the GTH pivot
          ch[u].push_back(w);
          par[w].push_back(u);
        }
    }
    if (entries >= max_entries || work > max_work) return {};
    touched = par[v];
    touched.insert(touched.end(), ch[v].begin(), ch[v].end());
    std::vector<int32_t>().swap(par[v]);
    std::vector<int32_t>().swap(ch[v]);
    for (int32_t w : touched)
      if (w < m) heap.emplace(cost(w), w);  // rows after m are never eliminated here
    if (heap.size() > 2 * static_cast<size_t>(m) + 64) {  // drop stale entries
      std::vector<Item> live;
      for (int32_t w = 0; w < m; ++w)
        if (!done[w]) live.emplace_back(cost(w), w);
      heap = decltype(heap)(std::greater<Item>(), std::move(live));
    }
  }
  return order;
}

// Work allowed to the Markowitz simulation per component: beyond it the component's
// fill is large, and approximate minimum degree's order is kept without comparison.
constexpr double kMarkowitzWork = 5e7;

// The order: components sinks first (acyclic graphs get no fill); inside each cyclic
// component approximate minimum degree on the symmetrized pattern, or the greedy
// Markowitz order when that has fewer nonzeros in L and U, counted exactly for both in
// the component's rows and in its parents' rows (the fill its order puts there).
void choose_order(int32_t n, const std::vector<int64_t>& ptr, const std::vector<int32_t>& dst,
                  int64_t budget, EliminationPlan& plan) {
  std::vector<int32_t> local(n, -1);
  plan.order.reserve(n);
  std::vector<int64_t> rptr(n + 1, 0);  // parents, CSR by child
  for (int32_t d : dst) ++rptr[d + 1];
  for (int32_t j = 0; j < n; ++j) rptr[j + 1] += rptr[j];
  std::vector<int32_t> rsrc(dst.size());
  {
    std::vector<int64_t> fill(rptr.begin(), rptr.end() - 1);
    for (int32_t j = 0; j < n; ++j)
      for (int64_t e = ptr[j]; e < ptr[j + 1]; ++e) rsrc[fill[dst[e]]++] = j;
  }
  for (const auto& comp : sccs_sinks_first(n, ptr, dst)) {
    if (comp.size() == 1) {
      plan.order.push_back(comp[0]);
      continue;
    }
    plan.acyclic = false;
    const auto m = static_cast<int32_t>(comp.size());
    for (int32_t i = 0; i < m; ++i) local[comp[i]] = i;
    // The component's own edges, local numbering: CSR and the symmetrized adjacency.
    std::vector<int64_t> lptr(1, 0);
    std::vector<int32_t> ldst;
    std::vector<std::vector<int32_t>> adj(m);
    for (int32_t i = 0; i < m; ++i) {
      for (int64_t e = ptr[comp[i]]; e < ptr[comp[i] + 1]; ++e) {
        const int32_t c = local[dst[e]];
        if (c < 0 || c == i) continue;  // another component, or a self-loop
        ldst.push_back(c);
        adj[i].push_back(c);
        adj[c].push_back(i);
      }
      lptr.push_back(static_cast<int64_t>(ldst.size()));
    }
    for (auto& a : adj) {
      std::sort(a.begin(), a.end());
      a.erase(std::unique(a.begin(), a.end()), a.end());
    }
    // Parents in later components: rows m, m + 1, ... with their edges into comp.
    std::vector<int32_t> outside;
    for (int32_t v : comp)
      for (int64_t e = rptr[v]; e < rptr[v + 1]; ++e)
        if (local[rsrc[e]] < 0) {
          local[rsrc[e]] = m + static_cast<int32_t>(outside.size());
          outside.push_back(rsrc[e]);
        }
    for (int32_t u : outside) {
      for (int64_t e = ptr[u]; e < ptr[u + 1]; ++e)
        if (local[dst[e]] >= 0 && local[dst[e]] < m) ldst.push_back(local[dst[e]]);
      lptr.push_back(static_cast<int64_t>(ldst.size()));
    }
    EliminationPlan sub;
    sub.order = amd_order(std::move(adj), plan.estimate);
    if (plan.estimate.entries > budget / kBytesPerEntry) over_budget(plan.estimate, budget, "");
    for (size_t i = 0; i < outside.size(); ++i) sub.order.push_back(m + static_cast<int32_t>(i));
    sub.estimate = plan.estimate;
    symbolic(static_cast<int32_t>(sub.order.size()), lptr, ldst, budget, sub);
    auto greedy =
        markowitz_order(lptr, ldst, m, sub.nonzeros, std::min(sub.work, kMarkowitzWork));
    if (greedy.empty()) greedy.assign(sub.order.begin(), sub.order.begin() + m);
    for (int32_t i : greedy) plan.order.push_back(comp[i]);
    for (int32_t v : comp) local[v] = -1;
    for (int32_t u : outside) local[u] = -1;
  }
}

}  // namespace

int64_t default_memory_budget() {
  const char* text = std::getenv(kBudgetVar);
  if (text == nullptr || *text == '\0') return kDefaultMemoryBudget;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(text, &end);
  double scale = 1.0;
  if (*end == 'K' || *end == 'k') scale = 1024.0;
  if (*end == 'M' || *end == 'm') scale = 1024.0 * 1024.0;
  if (*end == 'G' || *end == 'g') scale = 1024.0 * 1024.0 * 1024.0;
  if (scale != 1.0) ++end;
  if (end == text || *end != '\0' || errno != 0 || !(x > 0.0) || x * scale > 9.0e18)
    throw std::invalid_argument(std::string(kBudgetVar) + " is '" + text +
                                "'; set it to a positive number of bytes, optionally with a "
                                "K, M or G suffix (e.g. 2G), or unset it for the 2 GiB default");
  return static_cast<int64_t>(x * scale);
}

EliminationPlan plan_elimination(int32_t n, const std::vector<int64_t>& ptr,
                                 const std::vector<int32_t>& dst, int64_t budget_bytes) {
  const int64_t budget = budget_bytes < 0 ? default_memory_budget() : budget_bytes;
  EliminationPlan plan;
  choose_order(n, ptr, dst, budget, plan);
  // Edges between components (the estimate's bound covers those inside them).
  plan.estimate.entries += static_cast<int64_t>(dst.size());
  plan.estimate.work += static_cast<double>(dst.size());
  if (plan.estimate.entries > budget / kBytesPerEntry) over_budget(plan.estimate, budget, "");
  symbolic(n, ptr, dst, budget, plan);
  pad_runs(budget, plan);
  return plan;
}

}  // namespace phasic
