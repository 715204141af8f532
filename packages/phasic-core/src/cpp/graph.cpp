#include "graph.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "json_io.hpp"

namespace phasic {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

}  // namespace

std::string GraphData::state_string(int64_t v) const {
  std::string s = "[";
  for (int64_t i = 0; i < state_length; ++i) {
    if (i) s += ", ";
    s += std::to_string(states[static_cast<size_t>(v * state_length + i)]);
  }
  return s + "]";
}

// ---------------------------------------------------------------- parsing

namespace {

template <class T>
void read_int_column(JsonReader& r, const char* name, std::vector<T>& out, int64_t lo, int64_t hi,
                     const char* range_msg) {
  out.clear();
  r.read_array(Path{name}, [&](size_t i) {
    Path p{name, static_cast<int64_t>(i)};
    int64_t v = r.read_int(p);
    if (v < lo || v > hi) r.fail(p, std::to_string(v) + " " + range_msg);
    out.push_back(static_cast<T>(v));
  });
}

void read_double_column(JsonReader& r, const char* name, std::vector<double>& out) {
  out.clear();
  r.read_array(Path{name}, [&](size_t i) {
    out.push_back(r.read_double(Path{name, static_cast<int64_t>(i)}));
  });
}

// Reads an object's members, calling each(key) with the cursor at the value;
// rejects duplicate keys.
template <class F>
void read_object(JsonReader& r, const Path& path, F&& each) {
  r.expect('{', path);
  std::vector<std::string> seen;
  if (r.consume('}')) return;
  do {
    std::string key = r.read_string(path);
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      r.fail(path, "duplicate key '" + quote_input(key) + "'");
    seen.push_back(key);
    r.expect(':', path);
    each(key);
  } while (r.consume(','));
  r.expect('}', path);
}

void require_keys(const std::vector<std::string>& seen, std::initializer_list<const char*> keys,
                  const std::string& where) {
  for (const char* k : keys)
    if (std::find(seen.begin(), seen.end(), k) == seen.end())
      bad(where + ": missing key '" + k + "'");
}

}  // namespace

GraphData parse_graph_json(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    bad("graph JSON starts with a UTF-8 byte-order mark (bytes EF BB BF at byte 0); remove "
        "it, e.g. read the file with encoding='utf-8-sig'");
  JsonReader r(text);
  GraphData g;
  std::vector<std::string> seen, seen_edges, seen_coefs;
  int64_t row_len = -1;
  int64_t version = -1;
  read_object(r, Path{}, [&](const std::string& key) {
    seen.push_back(key);
    if (key == "format") {
      std::string f = r.read_string(Path{"format"});
      if (f != "phasic.graph")
        r.fail(Path{"format"}, "expected \"phasic.graph\", got \"" + quote_input(f) + "\"");
    } else if (key == "version") {
      version = r.read_int(Path{"version"});
      if (version != 1)
        r.fail(Path{"version"}, "this reader supports version 1, got " + std::to_string(version));
    } else if (key == "discrete") {
      g.discrete = r.read_bool(Path{"discrete"});
    } else if (key == "state_length") {
      g.state_length = r.read_int(Path{"state_length"});
      if (g.state_length < 0 || g.state_length > kMaxLength)
        r.fail(Path{"state_length"}, "must be between 0 and 2^24");
    } else if (key == "param_length") {
      g.param_length = r.read_int(Path{"param_length"});
      if (g.param_length < 0 || g.param_length > kMaxLength)
        r.fail(Path{"param_length"}, "must be between 0 and 2^24");
    } else if (key == "states") {
      g.states.clear();
      r.read_array(Path{"states"}, [&](size_t i) {
        int64_t len = 0;
        r.read_array(Path{"states", static_cast<int64_t>(i)}, [&](size_t j) {
          Path p{"states", static_cast<int64_t>(i), static_cast<int64_t>(j)};
          int64_t v = r.read_int(p);
          if (v < INT32_MIN || v > INT32_MAX) r.fail(p, "state entries must fit in 32 bits");
          g.states.push_back(static_cast<int32_t>(v));
          ++len;
        });
        if (row_len < 0) row_len = len;
        if (len != row_len)
          r.fail(Path{"states", static_cast<int64_t>(i)},
                 "has " + std::to_string(len) + " entries but states[0] has " +
                     std::to_string(row_len));
        ++g.n_vertices;
      });
    } else if (key == "edges") {
      read_object(r, Path{"edges"}, [&](const std::string& k) {
        seen_edges.push_back(k);
        if (k == "from") {
          read_int_column(r, "edges.from", g.from, 0, INT32_MAX, "is not a vertex index");
        } else if (k == "to") {
          read_int_column(r, "edges.to", g.to, 0, INT32_MAX, "is not a vertex index");
        } else if (k == "weight") {
          read_double_column(r, "edges.weight", g.weight);
        } else {
          r.fail(Path{"edges"}, "unknown key '" + quote_input(k) + "' (expected from, to, weight)");
        }
      });
    } else if (key == "coefficients") {
      read_object(r, Path{"coefficients"}, [&](const std::string& k) {
        seen_coefs.push_back(k);
        if (k == "edge") {
          read_int_column(r, "coefficients.edge", g.coef_edge, 0, INT32_MAX,
                          "is not an edge index");
        } else if (k == "param") {
          read_int_column(r, "coefficients.param", g.coef_param, 0, INT32_MAX,
                          "is not a parameter index");
        } else if (k == "value") {
          read_double_column(r, "coefficients.value", g.coef_value);
        } else {
          r.fail(Path{"coefficients"}, "unknown key '" + quote_input(k) + "' (expected edge, param, value)");
        }
      });
    } else {
      r.fail(Path{}, "unknown key '" + quote_input(key) +
                         "' (expected format, version, discrete, state_length, param_length, "
                         "states, edges, coefficients)");
    }
  });
  if (!r.at_end()) r.fail(Path{}, "unexpected text after the JSON object");
  require_keys(seen, {"format", "version", "discrete", "state_length", "param_length", "states",
                      "edges", "coefficients"},
               "graph JSON");
  require_keys(seen_edges, {"from", "to", "weight"}, "edges");
  require_keys(seen_coefs, {"edge", "param", "value"}, "coefficients");
  if (g.n_vertices > 0 && row_len != g.state_length)
    bad("states[0]: has " + std::to_string(row_len) + " entries but state_length is " +
        std::to_string(g.state_length));
  validate_graph_data(g);
  return g;
}

void validate_graph_data(const GraphData& g) {
  const int64_t V = g.n_vertices;
  const int64_t L = g.state_length;
  if (V < 1) bad("states: must contain at least the starting vertex (vertex 0)");
  if (V > INT32_MAX) bad("states: too many vertices");
  for (int64_t i = 0; i < L; ++i)
    if (g.states[static_cast<size_t>(i)] != 0)
      bad("states[0]: the starting vertex's state must be all zeros, got " + g.state_string(0));
  {
    // The starting vertex is not looked up by state: vertices 1.. may be all zeros too.
    StateIndex idx;
    idx.reserve(g.states, L, static_cast<size_t>(V));
    for (int64_t v = 1; v < V; ++v) {
      int64_t w = idx.insert(g.states, L, static_cast<int32_t>(v));
      if (w != v)
        bad("states[" + std::to_string(v) + "]: duplicates states[" + std::to_string(w) + "] " +
            g.state_string(v));
    }
  }
  const size_t E = g.from.size();
  if (g.to.size() != E)
    bad("edges.to: has " + std::to_string(g.to.size()) + " entries but edges.from has " +
        std::to_string(E));
  if (g.weight.size() != E)
    bad("edges.weight: has " + std::to_string(g.weight.size()) + " entries but edges.from has " +
        std::to_string(E));
  KeySet pairs;
  pairs.reserve(E);
  for (size_t e = 0; e < E; ++e) {
    const std::string at = "[" + std::string() + std::to_string(e) + "]";
    if (g.from[e] >= V)
      bad("edges.from" + at + ": vertex " + std::to_string(g.from[e]) +
          " does not exist (the graph has " + std::to_string(V) + " vertices)");
    if (g.to[e] >= V)
      bad("edges.to" + at + ": vertex " + std::to_string(g.to[e]) +
          " does not exist (the graph has " + std::to_string(V) + " vertices)");
    if (g.to[e] == 0)
      bad("edges.to" + at + ": edges into vertex 0 (the starting vertex) are not allowed");
    if (g.from[e] == g.to[e])
      bad("edges" + at + ": self-loop on vertex " + std::to_string(g.from[e]) +
          " (a discrete graph's self-loop is the remainder of its row; continuous graphs have "
          "none)");
    if (!std::isfinite(g.weight[e])) bad("edges.weight" + at + ": must be finite");
    if (!pairs.insert(edge_key(g.from[e], g.to[e])))
      bad("edges" + at + ": duplicate edge " + std::to_string(g.from[e]) + " -> " +
          std::to_string(g.to[e]));
  }
  const size_t C = g.coef_edge.size();
  if (g.coef_param.size() != C)
    bad("coefficients.param: has " + std::to_string(g.coef_param.size()) +
        " entries but coefficients.edge has " + std::to_string(C));
  if (g.coef_value.size() != C)
    bad("coefficients.value: has " + std::to_string(g.coef_value.size()) +
        " entries but coefficients.edge has " + std::to_string(C));
  KeySet cpairs;
  cpairs.reserve(C);
  for (size_t k = 0; k < C; ++k) {
    const std::string at = "[" + std::to_string(k) + "]";
    if (static_cast<size_t>(g.coef_edge[k]) >= E)
      bad("coefficients.edge" + at + ": edge " + std::to_string(g.coef_edge[k]) +
          " does not exist (the graph has " + std::to_string(E) + " edges)");
    if (g.coef_param[k] >= g.param_length)
      bad("coefficients.param" + at + ": parameter " + std::to_string(g.coef_param[k]) +
          " is not below param_length " + std::to_string(g.param_length));
    if (!std::isfinite(g.coef_value[k])) bad("coefficients.value" + at + ": must be finite");
    if (!cpairs.insert(edge_key(g.coef_edge[k], g.coef_param[k])))
      bad("coefficients" + at + ": duplicate entry for edge " + std::to_string(g.coef_edge[k]) +
          " and parameter " + std::to_string(g.coef_param[k]));
  }
}

// ---------------------------------------------------------------- writing

std::string serialize_graph(const GraphData& g) {
  std::string out;
  const size_t E = g.from.size();
  out.reserve(256 + g.states.size() * 4 + E * 40 + g.coef_edge.size() * 32);
  out += "{\"format\": \"phasic.graph\", \"version\": 1, \"discrete\": ";
  out += g.discrete ? "true" : "false";
  out += ", \"state_length\": ";
  append_int(out, g.state_length);
  out += ", \"param_length\": ";
  append_int(out, g.param_length);
  out += ",\n\"states\": [";
  for (int64_t v = 0; v < g.n_vertices; ++v) {
    if (v) out += ',';
    out += '[';
    for (int64_t i = 0; i < g.state_length; ++i) {
      if (i) out += ',';
      append_int(out, g.states[static_cast<size_t>(v * g.state_length + i)]);
    }
    out += ']';
  }
  auto ints = [&](const char* name, const std::vector<int32_t>& col) {
    out += '"';
    out += name;
    out += "\": [";
    for (size_t i = 0; i < col.size(); ++i) {
      if (i) out += ',';
      append_int(out, col[i]);
    }
    out += ']';
  };
  auto doubles = [&](const char* name, const std::vector<double>& col) {
    out += '"';
    out += name;
    out += "\": [";
    for (size_t i = 0; i < col.size(); ++i) {
      if (i) out += ',';
      append_double(out, col[i]);
    }
    out += ']';
  };
  out += "],\n\"edges\": {";
  ints("from", g.from);
  out += ",\n";
  ints("to", g.to);
  out += ",\n";
  doubles("weight", g.weight);
  out += "},\n\"coefficients\": {";
  ints("edge", g.coef_edge);
  out += ",\n";
  ints("param", g.coef_param);
  out += ",\n";
  doubles("value", g.coef_value);
  out += "}}\n";
  return out;
}

// ---------------------------------------------------------------- builder

GraphBuilder::GraphBuilder(int64_t state_length, bool discrete) {
  if (state_length < 0 || state_length > kMaxLength)
    bad("state_length must be between 0 and 2^24, got " + std::to_string(state_length));
  data_.discrete = discrete;
  data_.state_length = state_length;
  // The starting vertex (all zeros) stays out of the state index, so that
  // find_or_create_vertex(all zeros) makes an ordinary vertex.
  data_.states.assign(static_cast<size_t>(state_length), 0);
  data_.n_vertices = 1;
  out_.emplace_back();
}

GraphBuilder GraphBuilder::from_data(GraphData&& data) {
  validate_graph_data(data);
  GraphBuilder b(data.state_length, data.discrete);
  b.data_ = std::move(data);
  const GraphData& g = b.data_;
  b.index_ = StateIndex();
  b.index_.reserve(g.states, g.state_length, static_cast<size_t>(g.n_vertices));
  for (int64_t v = 1; v < g.n_vertices; ++v)
    b.index_.insert(g.states, g.state_length, static_cast<int32_t>(v));
  b.out_.assign(static_cast<size_t>(g.n_vertices), {});
  for (size_t e = 0; e < g.from.size(); ++e) {
    auto& out = b.out_[g.from[e]];
    out.push_back(static_cast<int32_t>(e));
    if (out.size() == kScan + 1)
      for (int32_t f : out) b.edges_.insert(edge_key(g.from[f], g.to[f]));
    else if (out.size() > kScan + 1)
      b.edges_.insert(edge_key(g.from[e], g.to[e]));
  }
  // Group coefficient entries by edge (stable), so that each edge's are contiguous.
  const size_t C = g.coef_edge.size();
  std::vector<int64_t> ptr(g.from.size() + 1, 0);
  for (int32_t e : g.coef_edge) ++ptr[e + 1];
  for (size_t e = 0; e < g.from.size(); ++e) ptr[e + 1] += ptr[e];
  std::vector<int32_t> ce(C), cp(C);
  std::vector<double> cv(C);
  {
    std::vector<int64_t> fill(ptr.begin(), ptr.end() - 1);
    for (size_t k = 0; k < C; ++k) {
      const int64_t at = fill[g.coef_edge[k]]++;
      ce[at] = g.coef_edge[k];
      cp[at] = g.coef_param[k];
      cv[at] = g.coef_value[k];
    }
  }
  b.data_.coef_edge.swap(ce);
  b.data_.coef_param.swap(cp);
  b.data_.coef_value.swap(cv);
  b.coef_begin_ = std::move(ptr);
  return b;
}

void GraphBuilder::set_param_length(int64_t n) {
  if (n < 0 || n > kMaxLength)
    bad("param_length must be between 0 and 2^24, got " + std::to_string(n));
  int64_t used = 0;
  for (int32_t p : data_.coef_param) used = std::max<int64_t>(used, p + 1);
  if (n < used)
    bad("param_length " + std::to_string(n) + " is below the " + std::to_string(used) +
        " parameters the edge coefficients already use");
  data_.param_length = n;
}

void GraphBuilder::check_state(size_t len) const {
  if (static_cast<int64_t>(len) != data_.state_length)
    bad("a state must have state_length = " + std::to_string(data_.state_length) +
        " entries, got " + std::to_string(len));
}

void GraphBuilder::check_vertex(int64_t v, const char* what) const {
  if (v < 0 || v >= data_.n_vertices)
    bad(std::string(what) + " vertex " + std::to_string(v) + " does not exist (the graph has " +
        std::to_string(data_.n_vertices) + " vertices)");
}

int64_t GraphBuilder::find_vertex(const int32_t* state, size_t len) const {
  check_state(len);
  return index_.find(data_.states, data_.state_length, state);
}

int64_t GraphBuilder::find_or_create_vertex(const int32_t* state, size_t len) {
  check_state(len);
  int64_t v = index_.find(data_.states, data_.state_length, state);
  if (v >= 0) return v;
  if (data_.n_vertices >= INT32_MAX) bad("too many vertices");
  data_.states.insert(data_.states.end(), state, state + len);
  v = data_.n_vertices++;
  index_.insert(data_.states, data_.state_length, static_cast<int32_t>(v));
  out_.emplace_back();
  return v;
}

std::vector<int32_t> GraphBuilder::vertex_state(int64_t v) const {
  check_vertex(v, "");
  auto b = data_.states.begin() + v * data_.state_length;
  return std::vector<int32_t>(b, b + data_.state_length);
}

void GraphBuilder::add_edge(int64_t src, int64_t dst, double weight, const double* coefs,
                            size_t n_coefs) {
  check_vertex(src, "source");
  check_vertex(dst, "target");
  if (n_coefs > static_cast<size_t>(kMaxLength))
    bad(std::to_string(n_coefs) + " edge coefficients, more than the 2^24 parameters a graph "
        "may have");
  if (dst == 0) bad("edges into vertex 0 (the starting vertex) are not allowed");
  if (src == dst)
    bad("self-loop on vertex " + std::to_string(src) + " " + data_.state_string(src) +
        ": continuous graphs have none, and a discrete graph's self-loop is the remainder of "
        "its row");
  if (!std::isfinite(weight)) bad("edge weight must be finite, got " + std::to_string(weight));
  for (size_t k = 0; k < n_coefs; ++k)
    if (!std::isfinite(coefs[k]))
      bad("edge coefficient " + std::to_string(k) + " must be finite");
  auto& out = out_[src];
  bool duplicate = false;
  if (out.size() < kScan) {
    for (int32_t f : out) duplicate |= data_.to[f] == dst;
  } else {
    if (out.size() == kScan)
      for (int32_t f : out) edges_.insert(edge_key(src, data_.to[f]));
    duplicate = !edges_.insert(edge_key(src, dst));
  }
  if (duplicate)
    bad("duplicate edge " + std::to_string(src) + " -> " + std::to_string(dst) + " (states " +
        data_.state_string(src) + " -> " + data_.state_string(dst) + ")");
  const int32_t e = static_cast<int32_t>(data_.from.size());
  data_.from.push_back(static_cast<int32_t>(src));
  data_.to.push_back(static_cast<int32_t>(dst));
  data_.weight.push_back(weight);
  out.push_back(e);
  for (size_t k = 0; k < n_coefs; ++k) {
    if (coefs[k] == 0.0) continue;
    data_.coef_edge.push_back(e);
    data_.coef_param.push_back(static_cast<int32_t>(k));
    data_.coef_value.push_back(coefs[k]);
  }
  coef_begin_.push_back(static_cast<int64_t>(data_.coef_edge.size()));
  // Coefficients define how many parameters the graph takes, even when zero.
  data_.param_length = std::max<int64_t>(data_.param_length, static_cast<int64_t>(n_coefs));
}

std::vector<GraphBuilder::OutEdge> GraphBuilder::out_edges(int64_t v) const {
  check_vertex(v, "");
  std::vector<OutEdge> res;
  for (int32_t e : out_[v]) {
    const int64_t k0 = coef_begin_[e], k1 = coef_begin_[e + 1];
    const auto params = data_.coef_param.begin();
    const auto values = data_.coef_value.begin();
    res.emplace_back(data_.to[e], data_.weight[e], std::vector<int32_t>(params + k0, params + k1),
                     std::vector<double>(values + k0, values + k1));
  }
  return res;
}

}  // namespace phasic
