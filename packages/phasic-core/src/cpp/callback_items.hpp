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

// A fresh (count, state_length) numpy int32 array: the states of vertices first ..
// first + count - 1, the batch a batched callback receives.
nanobind::object states_array(const GraphBuilder& builder, int64_t first, int64_t count);

// A batched callback's transitions from the vertices first .. first + count - 1:
// transition k leaves vertex first + rows[k] for the state next_states[k] (K x
// state_length) with weight `weights` [k] (1-d: constant) or coefficients
// weights[k, :] (2-d: weights[k] . theta). Added parent by parent in the order of
// `rows` (stable), so vertices are numbered as if the vertices had been called one
// at a time; transitions from one parent to one state are summed. The caller has
// validated the values (phasic.callbacks); rows outside [0, count) and
// self-transitions throw std::invalid_argument before the graph changes. Returns the
// number of edges added.
int64_t add_batched_transitions(GraphBuilder& builder, int64_t first, int64_t count,
                                const int64_t* rows, int64_t n_items, const int32_t* next_states,
                                const double* weights, int64_t n_params);

}  // namespace phasic
