// Reading a transition callback's return value in one call (see callback_items.cpp).
#pragma once
#include <nanobind/nanobind.h>

#include <cstdint>

#include "graph.hpp"

namespace phasic {

// Adds the edges `items` (a callback's returned transitions) gives vertex `src`,
// creating the vertices of new states. Returns the number of edges added, or -1
// when some item is not in a common form; the graph is then unchanged and the
// caller reads the items itself (with its own checks and messages).
int64_t add_plain_transitions(GraphBuilder& builder, int64_t src, nanobind::handle items);

// A fresh numpy int32 array holding vertex v's state.
nanobind::object state_array(const GraphBuilder& builder, int64_t v);

}  // namespace phasic
