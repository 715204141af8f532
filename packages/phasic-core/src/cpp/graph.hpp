// The graph as data (the JSON schema's columns), its builder, and (de)serialization.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "hashing.hpp"

namespace phasic {

// The largest state_length and param_length, for the builder and the JSON reader
// alike (whatever one writes, the other reads).
constexpr int64_t kMaxLength = int64_t{1} << 24;

// Columns of the JSON schema (docs/pages/json_schema.md), version 1.
struct GraphData {
  bool discrete = false;
  int64_t state_length = 0;
  int64_t param_length = 0;  // as declared (the builder may raise it)
  int64_t n_vertices = 0;
  std::vector<int32_t> states;  // n_vertices * state_length, row-major
  std::vector<int32_t> from, to;
  std::vector<double> weight;
  std::vector<int32_t> coef_edge, coef_param;
  std::vector<double> coef_value;

  std::string state_string(int64_t v) const;  // "[1, 0, 2]"
};

// Parses JSON text into GraphData and checks everything the schema states;
// throws std::invalid_argument naming the field (e.g. "edges.to[17]: ...").
GraphData parse_graph_json(std::string_view text);
// Checks the structural rules on already-parsed columns (used by the parser).
void validate_graph_data(const GraphData& g);
std::string serialize_graph(const GraphData& g);

class GraphBuilder {
 public:
  GraphBuilder(int64_t state_length, bool discrete);
  static GraphBuilder from_data(GraphData&& data);

  int64_t vertices_length() const { return data_.n_vertices; }
  int64_t edges_length() const { return static_cast<int64_t>(data_.from.size()); }
  int64_t param_length() const { return data_.param_length; }
  void set_param_length(int64_t n);
  int64_t state_length() const { return data_.state_length; }
  bool discrete() const { return data_.discrete; }

  int64_t find_or_create_vertex(const int32_t* state, size_t len);
  int64_t find_vertex(const int32_t* state, size_t len) const;
  std::vector<int32_t> vertex_state(int64_t v) const;
  // rate = weight + coefficients . theta; coefficient k multiplies theta[k].
  void add_edge(int64_t src, int64_t dst, double weight, const double* coefs, size_t n_coefs);
  // (target, constant weight, parameter indices, coefficients): sparse, as stored.
  using OutEdge = std::tuple<int64_t, double, std::vector<int32_t>, std::vector<double>>;
  std::vector<OutEdge> out_edges(int64_t v) const;

  const GraphData& data() const { return data_; }
  std::string serialize() const { return serialize_graph(data_); }

 private:
  void check_vertex(int64_t v, const char* what) const;
  void check_state(size_t len) const;
  GraphData data_;
  StateIndex index_;
  // Duplicate-edge check: a scan of the source's (short) out-list, or this set once
  // the source has more than kScan edges.
  static constexpr size_t kScan = 32;
  KeySet edges_;
  std::vector<std::vector<int32_t>> out_;  // edge ids per source vertex
  // Each edge's coefficient entries are contiguous: [coef_begin_[e], coef_begin_[e+1]).
  std::vector<int64_t> coef_begin_{0};
};

}  // namespace phasic
