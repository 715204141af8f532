#include "lumping.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace phasic {

std::atomic<bool> g_lumping{true};

namespace {

constexpr int32_t kAbsorbing = -1;  // the target block of edges into absorption
constexpr int32_t kConstant = -1;   // the "parameter" of an edge's constant weight
constexpr int32_t kKeepAll = -2;    // Signature::build's `skip` when no block is left out

// One term of a vertex's rates: `value` times theta[param] (or the constant) into block.
struct Term {
  int32_t block;
  int32_t param;
  double value;
};

// The block of edge e's target under the partition blk: kAbsorbing for absorbing ones.
struct TargetBlock {
  const Structure& s;
  const std::vector<int32_t>& blk;
  int32_t operator()(int32_t e) const {
    const int32_t t = s.tidx[s.eto[e]];
    return t >= 0 ? blk[t] : kAbsorbing;
  }
};

// A vertex's rates per target block, canonical: terms sorted by (block, param, value),
// equal (block, param) summed in that order, exact zeros dropped.
class Signature {
 public:
  // The `count` edges `edges` out of one vertex, their targets' blocks by
  // target_block. Edges into block `skip` are left out (the vertex's own block: its
  // rate there is implied by the others).
  void build(const Structure& s, const int32_t* edges, int64_t count,
             const TargetBlock& target_block, int32_t skip) {
    terms_.clear();
    for (int64_t k = 0; k < count; ++k) {
      const int32_t e = edges[k];
      const int32_t b = target_block(e);
      if (b == skip) continue;
      if (s.eweight[e] != 0.0) terms_.push_back({b, kConstant, s.eweight[e]});
      for (int64_t c = s.coef_ptr[e]; c < s.coef_ptr[e + 1]; ++c)
        terms_.push_back({b, s.coef_param[c], s.coef_value[c]});
    }
    std::sort(terms_.begin(), terms_.end(), [](const Term& a, const Term& b) {
      if (a.block != b.block) return a.block < b.block;
      if (a.param != b.param) return a.param < b.param;
      return a.value < b.value;
    });
    size_t out = 0;
    for (size_t i = 0; i < terms_.size();) {
      Term t = terms_[i];
      size_t j = i + 1;
      for (; j < terms_.size() && terms_[j].block == t.block && terms_[j].param == t.param; ++j)
        t.value += terms_[j].value;
      if (t.value != 0.0) terms_[out++] = t;
      i = j;
    }
    terms_.resize(out);
  }

  const std::vector<Term>& terms() const { return terms_; }

  // The bytes of the terms after `prefix` (the vertex's current block, in the
  // refinement), a hash key.
  std::string key(int32_t prefix) const {
    std::string k(sizeof prefix + terms_.size() * (2 * sizeof(int32_t) + sizeof(double)), '\0');
    char* p = k.data();
    std::memcpy(p, &prefix, sizeof prefix);
    p += sizeof prefix;
    for (const Term& t : terms_) {
      std::memcpy(p, &t.block, sizeof t.block);
      std::memcpy(p + sizeof t.block, &t.param, sizeof t.param);
      std::memcpy(p + 2 * sizeof t.block, &t.value, sizeof t.value);
      p += 2 * sizeof(int32_t) + sizeof(double);
    }
    return k;
  }

 private:
  std::vector<Term> terms_;
};

// Every out-edge of transient vertex j (T->T then T->absorbing), in the structure's order.
void out_edges(const Structure& s, int32_t j, std::vector<int32_t>& edges) {
  edges.assign(s.tt_edge.begin() + s.tt_ptr[j], s.tt_edge.begin() + s.tt_ptr[j + 1]);
  edges.insert(edges.end(), s.ta_edge.begin() + s.ta_ptr[j], s.ta_edge.begin() + s.ta_ptr[j + 1]);
}

// Transient vertices sinks first (every T->T edge's target before its source), or
// empty when the transient graph has a cycle.
std::vector<int32_t> sinks_first(const Structure& s) {
  std::vector<int64_t> left(s.n), rptr;
  std::vector<int32_t> rsrc;
  for (int32_t j = 0; j < s.n; ++j) left[j] = s.tt_ptr[j + 1] - s.tt_ptr[j];
  s.predecessors(rptr, rsrc);
  std::vector<int32_t> order;
  order.reserve(s.n);
  for (int32_t j = 0; j < s.n; ++j)
    if (left[j] == 0) order.push_back(j);
  for (size_t i = 0; i < order.size(); ++i)
    for (int64_t k = rptr[order[i]]; k < rptr[order[i] + 1]; ++k)
      if (--left[rsrc[k]] == 0) order.push_back(rsrc[k]);
  if (static_cast<int32_t>(order.size()) != s.n) order.clear();
  return order;
}

// Acyclic graphs: sinks first, each vertex joins the block of its signature over its
// targets' (final) blocks. No block then holds an edge inside itself. Blocks are never
// merged, so the pass stops (-1) once there are more than `most` of them.
int32_t blocks_acyclic(const Structure& s, const std::vector<int32_t>& order,
                       std::vector<int32_t>& blk, int32_t most) {
  Signature sig;
  std::vector<int32_t> edges;
  std::unordered_map<std::string, int32_t> ids;
  blk.assign(s.n, 0);
  const TargetBlock target{s, blk};
  for (int32_t j : order) {
    out_edges(s, j, edges);
    sig.build(s, edges.data(), static_cast<int64_t>(edges.size()), target, kKeepAll);
    blk[j] = ids.emplace(sig.key(0), static_cast<int32_t>(ids.size())).first->second;
    if (static_cast<int32_t>(ids.size()) > most) return -1;
  }
  return static_cast<int32_t>(ids.size());
}

// Cyclic graphs: split blocks by their vertices' rates into the other blocks until no
// block splits. Blocks only split, so the search stops (-1) once there are more than
// `most` of them, or after kMaxRounds rounds (a ring told apart from one vertex splits
// one block a round).
constexpr int kMaxRounds = 64;
int32_t blocks_refined(const Structure& s, std::vector<int32_t>& blk, int32_t most) {
  Signature sig;
  std::vector<int32_t> edges, next(s.n);
  blk.assign(s.n, 0);
  int32_t count = 1;
  const TargetBlock target{s, blk};
  for (int round = 0; round < kMaxRounds; ++round) {
    std::unordered_map<std::string, int32_t> ids;
    for (int32_t j = 0; j < s.n; ++j) {
      out_edges(s, j, edges);
      sig.build(s, edges.data(), static_cast<int64_t>(edges.size()), target, blk[j]);
      next[j] = ids.emplace(sig.key(blk[j]), static_cast<int32_t>(ids.size())).first->second;
    }
    blk.swap(next);
    const int32_t now = static_cast<int32_t>(ids.size());
    if (now == count) return count;
    if (now > most) return -1;
    count = now;
  }
  return -1;
}

// Appends the edges of one lumped vertex: one per target block of sig's terms.
void add_edges(GraphData& g, int32_t from, const Signature& sig, int32_t absorbing_vertex) {
  const std::vector<Term>& t = sig.terms();
  for (size_t i = 0; i < t.size();) {
    const int32_t b = t[i].block;
    const int32_t e = static_cast<int32_t>(g.from.size());
    g.from.push_back(from);
    g.to.push_back(b == kAbsorbing ? absorbing_vertex : b + 1);
    g.weight.push_back(0.0);
    for (; i < t.size() && t[i].block == b; ++i) {
      if (t[i].param == kConstant) {
        g.weight.back() = t[i].value;
      } else {
        g.coef_edge.push_back(e);
        g.coef_param.push_back(t[i].param);
        g.coef_value.push_back(t[i].value);
      }
    }
  }
}

void append_state(GraphData& g, const Structure& s, int64_t v) {
  g.states.insert(g.states.end(), s.states.begin() + v * s.L, s.states.begin() + (v + 1) * s.L);
}

}  // namespace

std::shared_ptr<const Structure> lump(const Structure& s) {
  if (s.n < 4) return nullptr;
  std::vector<int32_t> blk;
  const std::vector<int32_t> order = sinks_first(s);
  const int32_t most = static_cast<int32_t>(3 * static_cast<int64_t>(s.n) / 4);
  const int32_t K =
      order.empty() ? blocks_refined(s, blk, most) : blocks_acyclic(s, order, blk, most);
  if (K < 0 || K > most) return nullptr;
  // Each block's first vertex speaks for it.
  std::vector<int32_t> rep(K, -1);
  for (int32_t j = 0; j < s.n; ++j)
    if (rep[blk[j]] < 0) rep[blk[j]] = j;
  int64_t absorbing = -1;
  for (int64_t v = 1; v < s.V && absorbing < 0; ++v)
    if (s.tidx[v] < 0) absorbing = v;
  if (absorbing < 0) return nullptr;

  GraphData g;
  g.discrete = s.discrete;
  g.state_length = s.L;
  g.param_length = s.P;
  g.n_vertices = K + 2;
  const int32_t absorbing_vertex = K + 1;
  std::vector<int32_t> origin{0};
  append_state(g, s, 0);
  for (int32_t b = 0; b < K; ++b) {
    append_state(g, s, s.tvert[rep[b]]);
    origin.push_back(s.tvert[rep[b]]);
  }
  append_state(g, s, absorbing);
  origin.push_back(static_cast<int32_t>(absorbing));

  Signature sig;
  const TargetBlock target{s, blk};
  sig.build(s, s.alpha_edge.data(), static_cast<int64_t>(s.alpha_edge.size()), target, kKeepAll);
  add_edges(g, 0, sig, absorbing_vertex);
  std::vector<int32_t> edges;
  for (int32_t b = 0; b < K; ++b) {
    out_edges(s, rep[b], edges);
    sig.build(s, edges.data(), static_cast<int64_t>(edges.size()), target, b);
    add_edges(g, b + 1, sig, absorbing_vertex);
  }
  try {
    return Structure::compile(g, -1, std::move(origin));
  } catch (const std::exception&) {
    // A rate summed to exactly 0 can leave a block without a way out: keep the graph.
    return nullptr;
  }
}

namespace {

// The distinct rate forms of s's edges and vertices (RateForms).
std::shared_ptr<const RateForms> rate_forms(const Structure& s) {
  auto f = std::make_shared<RateForms>();
  f->ptr.push_back(0);
  std::unordered_map<std::string, int32_t> forms;
  std::vector<int32_t> form_of(s.E);
  for (int64_t e = 0; e < s.E; ++e) {
    std::string key(reinterpret_cast<const char*>(&s.eweight[e]), sizeof(double));
    const int64_t c0 = s.coef_ptr[e], c1 = s.coef_ptr[e + 1];
    key.append(reinterpret_cast<const char*>(&s.coef_param[c0]), (c1 - c0) * sizeof(int32_t));
    key.append(reinterpret_cast<const char*>(&s.coef_value[c0]), (c1 - c0) * sizeof(double));
    auto [it, fresh] = forms.emplace(std::move(key), static_cast<int32_t>(forms.size()));
    form_of[e] = it->second;
    if (!fresh) continue;
    f->w0.push_back(s.eweight[e]);
    f->param.insert(f->param.end(), s.coef_param.begin() + c0, s.coef_param.begin() + c1);
    f->value.insert(f->value.end(), s.coef_value.begin() + c0, s.coef_value.begin() + c1);
    f->ptr.push_back(static_cast<int64_t>(f->param.size()));
  }
  for (int32_t e : s.alpha_edge) f->start.push_back(form_of[e]);
  // Continuous: a vertex fails when none of its forms is > 0 (with every form >= 0, its
  // total is then 0): the set of its forms decides. Discrete: its total, summed as
  // derive_rates sums it (absorbing edges, then the others, each in order).
  std::unordered_map<std::string, int32_t> seen;
  f->vptr.push_back(0);
  std::vector<int32_t> pat;
  for (int32_t j = 0; j < s.n; ++j) {
    pat.clear();
    for (int64_t k = s.ta_ptr[j]; k < s.ta_ptr[j + 1]; ++k) pat.push_back(form_of[s.ta_edge[k]]);
    int64_t split = static_cast<int64_t>(pat.size());
    for (int64_t k = s.tt_ptr[j]; k < s.tt_ptr[j + 1]; ++k) pat.push_back(form_of[s.tt_edge[k]]);
    if (!s.discrete) {  // a set: the split between absorbing and other edges is not read
      std::sort(pat.begin(), pat.end());
      pat.erase(std::unique(pat.begin(), pat.end()), pat.end());
      split = 0;
    }
    std::string key(reinterpret_cast<const char*>(pat.data()), pat.size() * sizeof(int32_t));
    key.append(reinterpret_cast<const char*>(&split), sizeof split);
    if (!seen.emplace(std::move(key), 0).second) continue;
    f->vsplit.push_back(f->vptr.back() + split);
    f->vform.insert(f->vform.end(), pat.begin(), pat.end());
    f->vptr.push_back(static_cast<int64_t>(f->vform.size()));
  }
  return f;
}

}  // namespace

bool rates_ok(const RateForms& f, int64_t P, bool discrete, const double* theta, int64_t plen) {
  if (plen != P) return false;
  for (int64_t p = 0; p < plen; ++p)
    if (!std::isfinite(theta[p])) return false;
  // Each form as edge_weights evaluates an edge: w0, then each coefficient in order.
  const size_t F = f.w0.size();
  thread_local std::vector<double> w;
  w.resize(F);
  for (size_t k = 0; k < F; ++k) {
    double x = f.w0[k];
    for (int64_t c = f.ptr[k]; c < f.ptr[k + 1]; ++c) x += f.value[c] * theta[f.param[c]];
    if (!(x >= 0.0 && x <= std::numeric_limits<double>::max())) return false;
    w[k] = x;
  }
  double total = 0.0;
  for (int32_t k : f.start) total += w[k];
  if (f.start.empty() || !(total > 0.0 && std::isfinite(total))) return false;
  for (size_t v = 0; v + 1 < f.vptr.size(); ++v) {
    if (discrete) {
      double a = 0.0, t = 0.0;
      for (int64_t k = f.vptr[v]; k < f.vsplit[v]; ++k) a += w[f.vform[k]];
      for (int64_t k = f.vsplit[v]; k < f.vptr[v + 1]; ++k) t += w[f.vform[k]];
      if (a + t > 1.0 + 1e-12) return false;
    } else {
      bool out = false;
      for (int64_t k = f.vptr[v]; k < f.vptr[v + 1] && !out; ++k) out = w[f.vform[k]] > 0.0;
      if (!out) return false;
    }
  }
  return true;
}

const Structure& density_structure(const Structure& s) {
  if (!g_lumping.load(std::memory_order_relaxed)) return s;
  std::call_once(s.lump_once, [&s] {
    auto lumped = lump(s);
    if (lumped) s.rate_forms = rate_forms(s);  // before `lumped`: it is what is read
    s.lumped = std::move(lumped);
  });
  return s.lumped ? *s.lumped : s;
}

}  // namespace phasic
