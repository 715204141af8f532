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

#include <climits>
#include <cmath>
#include <cstring>
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
    if (L > 0 && std::memcmp(s, self, sizeof(int32_t) * L) == 0) return false;
    if (L == 0) return false;  // a zero-length state equals the source's
  }
  return true;
}

}  // namespace

int64_t add_plain_transitions(GraphBuilder& builder, int64_t src, nb::handle items) {
  const int64_t L = builder.state_length();
  if (src < 1 || src >= builder.vertices_length()) return -1;
  const std::vector<int32_t> self = builder.vertex_state(src);
  Parsed p;
  if (!read_items(items.ptr(), L, self.data(), p)) return -1;
  const size_t n = p.size();

  // Transitions to the same next state are summed into the first one's slot; a
  // small hash table of merged slots keeps this O(1) per transition.
  std::vector<int64_t> group(n), first;
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  std::vector<int64_t> table(cap, -1);
  for (size_t i = 0; i < n; ++i) {
    const int32_t* s = p.states.data() + i * L;
    uint64_t h = hash_state(s, L) & (cap - 1);
    for (;; h = (h + 1) & (cap - 1)) {
      const int64_t g = table[h];
      if (g < 0) {
        table[h] = static_cast<int64_t>(first.size());
        group[i] = static_cast<int64_t>(first.size());
        first.push_back(static_cast<int64_t>(i));
        break;
      }
      if (std::memcmp(p.states.data() + first[g] * L, s, sizeof(int32_t) * L) == 0) {
        group[i] = g;
        break;
      }
    }
  }
  std::vector<double> base(first.size(), 0.0);
  std::vector<std::vector<double>> coefs(first.size());
  for (size_t i = 0; i < n; ++i) {
    base[group[i]] += p.base[i];
    auto& c = coefs[group[i]];
    const size_t k0 = p.coef_begin[i], k1 = p.coef_begin[i + 1];
    if (c.size() < k1 - k0) c.resize(k1 - k0, 0.0);
    for (size_t k = k0; k < k1; ++k) c[k - k0] += p.coefs[k];
  }
  for (size_t g = 0; g < first.size(); ++g) {
    const int64_t dst = builder.find_or_create_vertex(p.states.data() + first[g] * L, L);
    builder.add_edge(src, dst, base[g], coefs[g].data(), coefs[g].size());
  }
  return static_cast<int64_t>(first.size());
}

nb::object state_array(const GraphBuilder& builder, int64_t v) {
  std::vector<int32_t> s = builder.vertex_state(v);
  auto* data = new int32_t[s.size()];
  std::memcpy(data, s.data(), sizeof(int32_t) * s.size());
  nb::capsule owner(data, [](void* d) noexcept { delete[] static_cast<int32_t*>(d); });
  return nb::cast(nb::ndarray<nb::numpy, int32_t, nb::ndim<1>>(data, {s.size()}, owner));
}

}  // namespace phasic
