// The callback builder's per-vertex step in C++: a callback's transitions are read
// straight from the Python objects, summed per next state, and added with one call,
// instead of one Python-level check and one builder call per transition.
//
// Only the common forms are read here: a list or tuple of [next_state, weight]
// items whose state is a list/tuple of ints or an integer numpy array, and whose
// weight is a finite number (>= 0) or a list of finite numbers (coefficients). Any
// other item, and every error (a self-transition, a negative weight, a state of the
// wrong length), returns -1 before the graph changes, so that the Python reader
// gives the same result or the same message as before.
#include "callback_items.hpp"

#include <nanobind/ndarray.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "hashing.hpp"

namespace nb = nanobind;

namespace phasic {
namespace {

// The transitions of one vertex, flat: state i is states[i*L, (i+1)*L), its
// coefficients coefs[coef_begin[i], coef_begin[i+1]).
struct Parsed {
  std::vector<int32_t> states;
  std::vector<double> base;
  std::vector<double> coefs;
  std::vector<size_t> coef_begin{0};
  size_t size() const { return base.size(); }
};

bool int32_value(PyObject* x, int32_t& out) {
  if (!PyLong_CheckExact(x)) return false;  // bool and numpy scalars: the Python reader
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
  if (overflow || v < INT32_MIN || v > INT32_MAX) {
    PyErr_Clear();
    return false;
  }
  out = static_cast<int32_t>(v);
  return true;
}

bool number_value(PyObject* x, double& out) {
  if (PyFloat_Check(x)) {  // float and its subclasses (numpy.float64)
    out = PyFloat_AS_DOUBLE(x);
  } else if (PyLong_CheckExact(x)) {
    out = PyLong_AsDouble(x);
    if (out == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
  } else {
    return false;
  }
  return std::isfinite(out);
}

// A state from a list/tuple of ints or a 1-d int32/int64 numpy array of length L.
bool read_state(PyObject* s, int64_t L, std::vector<int32_t>& out) {
  if (PyList_CheckExact(s) || PyTuple_CheckExact(s)) {
    if (PySequence_Fast_GET_SIZE(s) != L) return false;
    PyObject** xs = PySequence_Fast_ITEMS(s);
    for (int64_t i = 0; i < L; ++i) {
      int32_t v;
      if (!int32_value(xs[i], v)) return false;
      out.push_back(v);
    }
    return true;
  }
  static PyObject* ndarray =  // kept for the process
      nb::object(nb::module_::import_("numpy").attr("ndarray")).release().ptr();
  if (!PyObject_TypeCheck(s, reinterpret_cast<PyTypeObject*>(ndarray))) return false;
  Py_buffer view;
  if (PyObject_GetBuffer(s, &view, PyBUF_RECORDS_RO) != 0) {
    PyErr_Clear();
    return false;
  }
  const char* f = view.format ? view.format : "B";
  const bool i32 = view.itemsize == 4 && std::strcmp(f, "i") == 0;
  const bool i64 = view.itemsize == 8 && (std::strcmp(f, "l") == 0 || std::strcmp(f, "q") == 0);
  bool ok = view.ndim == 1 && view.shape[0] == L && (i32 || i64);
  const char* p = static_cast<const char*>(view.buf);
  for (int64_t i = 0; ok && i < L; ++i, p += view.strides[0]) {
    int64_t v;
    if (i32) {
      int32_t w;
      std::memcpy(&w, p, 4);
      v = w;
    } else {
      std::memcpy(&v, p, 8);
    }
    ok = v >= INT32_MIN && v <= INT32_MAX;
    out.push_back(static_cast<int32_t>(v));
  }
  PyBuffer_Release(&view);
  return ok;
}

// A weight: a number (constant >= 0) or a list of numbers (coefficients c).
bool read_weight(PyObject* w, Parsed& p) {
  double x;
  if (number_value(w, x)) {
    if (x < 0.0) return false;
    p.base.push_back(x);
  } else if (PyList_CheckExact(w)) {
    const Py_ssize_t n = PyList_GET_SIZE(w);
    for (Py_ssize_t k = 0; k < n; ++k) {
      if (!number_value(PyList_GET_ITEM(w, k), x)) return false;
      p.coefs.push_back(x);
    }
    p.base.push_back(0.0);
  } else {
    return false;
  }
  p.coef_begin.push_back(p.coefs.size());
  return true;
}

bool read_items(PyObject* items, int64_t L, const int32_t* self, Parsed& p) {
  if (!PyList_CheckExact(items) && !PyTuple_CheckExact(items)) return false;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
  PyObject** xs = PySequence_Fast_ITEMS(items);
  p.states.reserve(static_cast<size_t>(n * L));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = xs[i];
    if (!(PyList_CheckExact(item) || PyTuple_CheckExact(item)) ||
        PySequence_Fast_GET_SIZE(item) != 2)
      return false;
    PyObject** pair = PySequence_Fast_ITEMS(item);
    if (!read_state(pair[0], L, p.states) || !read_weight(pair[1], p)) return false;
    const int32_t* s = p.states.data() + static_cast<size_t>(i) * L;
    if (L == 0 || std::memcmp(s, self, sizeof(int32_t) * L) == 0) return false;  // itself
  }
  return true;
}

// Scratch space reused from call to call (the GIL serializes the calls): a vertex's
// transitions then cost no allocation once the buffers have grown.
struct Scratch {
  Parsed p;
  std::vector<int64_t> table, group, first, coef_len;
  std::vector<double> base, coefs;  // per merged next state; coefs row-padded
};

// Sums the transitions of `p` per next state (first occurrence order) into s.first,
// s.base and, per group g, coefs[g * width, g * width + coef_len[g]); returns width.
size_t merge(Scratch& s, int64_t L) {
  const Parsed& p = s.p;
  const size_t n = p.size();
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  s.table.assign(cap, -1);
  s.group.resize(n);
  s.first.clear();
  size_t width = 0;
  for (size_t i = 0; i < n; ++i) {
    width = std::max(width, p.coef_begin[i + 1] - p.coef_begin[i]);
    const int32_t* st = p.states.data() + i * L;
    for (uint64_t h = hash_state(st, L) & (cap - 1);; h = (h + 1) & (cap - 1)) {
      const int64_t g = s.table[h];
      if (g < 0) {
        s.table[h] = s.group[i] = static_cast<int64_t>(s.first.size());
        s.first.push_back(static_cast<int64_t>(i));
        break;
      }
      if (std::memcmp(p.states.data() + s.first[g] * L, st, sizeof(int32_t) * L) == 0) {
        s.group[i] = g;
        break;
      }
    }
  }
  const size_t groups = s.first.size();
  s.base.assign(groups, 0.0);
  s.coef_len.assign(groups, 0);
  s.coefs.assign(groups * width, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const int64_t g = s.group[i];
    const size_t k0 = p.coef_begin[i], k1 = p.coef_begin[i + 1];
    s.base[g] += p.base[i];
    s.coef_len[g] = std::max<int64_t>(s.coef_len[g], static_cast<int64_t>(k1 - k0));
    for (size_t k = k0; k < k1; ++k) s.coefs[g * width + (k - k0)] += p.coefs[k];
  }
  return width;
}

}  // namespace

int64_t add_plain_transitions(GraphBuilder& builder, int64_t src, nb::handle items) {
  const int64_t L = builder.state_length();
  if (src < 1 || src >= builder.vertices_length()) return -1;
  static Scratch s;
  Parsed& p = s.p;
  p.states.clear();
  p.base.clear();
  p.coefs.clear();
  p.coef_begin.assign(1, 0);
  const int32_t* self = builder.data().states.data() + src * L;  // read before any insertion
  if (!read_items(items.ptr(), L, self, p)) return -1;
  const size_t width = merge(s, L);
  for (size_t g = 0; g < s.first.size(); ++g) {
    const int64_t dst = builder.find_or_create_vertex(p.states.data() + s.first[g] * L, L);
    builder.add_edge(src, dst, s.base[g], s.coefs.data() + g * width,
                     static_cast<size_t>(s.coef_len[g]));
  }
  return static_cast<int64_t>(s.first.size());
}

nb::object state_array(const GraphBuilder& builder, int64_t v) {
  std::vector<int32_t> s = builder.vertex_state(v);
  auto* data = new int32_t[s.size()];
  std::memcpy(data, s.data(), sizeof(int32_t) * s.size());
  nb::capsule owner(data, [](void* d) noexcept { delete[] static_cast<int32_t*>(d); });
  return nb::cast(nb::ndarray<nb::numpy, int32_t, nb::ndim<1>>(data, {s.size()}, owner));
}

nb::object states_array(const GraphBuilder& builder, int64_t first, int64_t count) {
  const int64_t L = builder.state_length();
  if (first < 0 || count < 0 || first + count > builder.vertices_length())
    throw std::invalid_argument("vertices " + std::to_string(first) + " .. " +
                                std::to_string(first + count - 1) + " do not exist");
  const size_t n = static_cast<size_t>(count * L);
  auto* data = new int32_t[n == 0 ? 1 : n];
  std::memcpy(data, builder.data().states.data() + first * L, sizeof(int32_t) * n);
  nb::capsule owner(data, [](void* d) noexcept { delete[] static_cast<int32_t*>(d); });
  return nb::cast(nb::ndarray<nb::numpy, int32_t, nb::ndim<2>>(
      data, {static_cast<size_t>(count), static_cast<size_t>(L)}, owner));
}

int64_t add_batched_transitions(GraphBuilder& builder, int64_t first, int64_t count,
                                const int64_t* rows, int64_t n_items, const int32_t* next_states,
                                const double* weights, int64_t n_params) {
  const int64_t L = builder.state_length();
  const int64_t W = std::max<int64_t>(n_params, 1);  // weight entries per transition
  if (first < 1 || count < 0 || first + count > builder.vertices_length())
    throw std::invalid_argument("the batch's vertices do not exist");
  // Every check before the graph changes: rows in range, no transition to itself.
  const int32_t* parents = builder.data().states.data() + first * L;
  std::vector<int64_t> start(static_cast<size_t>(count) + 1, 0);
  for (int64_t k = 0; k < n_items; ++k) {
    const int64_t r = rows[k];
    if (r < 0 || r >= count)
      throw std::invalid_argument("rows[" + std::to_string(k) + "] = " + std::to_string(r) +
                                  " is not a row of the batch (0 .. " +
                                  std::to_string(count - 1) + ")");
    if (std::memcmp(next_states + k * L, parents + r * L, sizeof(int32_t) * L) == 0)
      throw std::invalid_argument(
          "transition " + std::to_string(k) + " goes from state " +
          builder.data().state_string(first + r) +
          " to itself; leave self-transitions out (continuous: they do not change the "
          "distribution; discrete: the probability of staying is 1 minus the sum of the "
          "out-probabilities)");
    ++start[static_cast<size_t>(r) + 1];
  }
  // Transitions grouped by parent, in their order within each parent (a counting sort).
  for (int64_t r = 0; r < count; ++r) start[r + 1] += start[r];
  std::vector<int64_t> order(static_cast<size_t>(n_items));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < n_items; ++k) order[fill[rows[k]]++] = k;
  }
  // Per parent: next states found or created in order, repeats summed into the first
  // one's slot (slot_of[dst] is valid while owner_of[dst] is this parent).
  static std::vector<int64_t> owner_of, slot_of;  // the GIL serializes the calls
  std::vector<int64_t> dst;
  std::vector<double> acc;
  int64_t added = 0;
  for (int64_t r = 0; r < count; ++r) {
    const int64_t src = first + r;
    dst.clear();
    acc.clear();
    for (int64_t i = start[r]; i < start[r + 1]; ++i) {
      const int64_t k = order[i];
      const int64_t v = builder.find_or_create_vertex(next_states + k * L, static_cast<size_t>(L));
      if (static_cast<size_t>(v) >= owner_of.size()) {
        owner_of.resize(static_cast<size_t>(v) * 2 + 16, -1);
        slot_of.resize(owner_of.size());
      }
      int64_t g;
      if (owner_of[v] == src && slot_of[v] < static_cast<int64_t>(dst.size()) &&
          dst[slot_of[v]] == v) {
        g = slot_of[v];
      } else {
        g = static_cast<int64_t>(dst.size());
        owner_of[v] = src;
        slot_of[v] = g;
        dst.push_back(v);
        acc.resize(acc.size() + static_cast<size_t>(W), 0.0);
      }
      for (int64_t p = 0; p < W; ++p) acc[g * W + p] += weights[k * W + p];
    }
    for (size_t g = 0; g < dst.size(); ++g) {
      if (n_params == 0)
        builder.add_edge(src, dst[g], acc[g], nullptr, 0);
      else
        builder.add_edge(src, dst[g], 0.0, acc.data() + g * W, static_cast<size_t>(W));
    }
    added += static_cast<int64_t>(dst.size());
  }
  return added;
}

}  // namespace phasic
