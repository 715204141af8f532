// nanobind bindings: phasic._core (the contract is README.md in this directory).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <climits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "callback_items.hpp"
#include "ffi_handlers.hpp"
#include "graph.hpp"
#include "hashing.hpp"
#include "kernels.hpp"
#include "kingman.hpp"
#include "lumping.hpp"
#include "structure.hpp"
#include "time_windows.hpp"
#include "structure_cache.hpp"
#include "structure_registry.hpp"
#include "threads.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace phasic {
namespace {

using Array1 = nb::ndarray<nb::numpy, double, nb::ndim<1>>;
using InArray = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Any 1-d sequence of numbers as a contiguous float64 array (lists, numpy, jax arrays).
InArray as_f64(nb::handle obj, const char* name) {
  // Leaked on purpose: destroying it at interpreter exit would need the GIL.
  static nb::object* asarray =
      new nb::object(nb::module_::import_("numpy").attr("ascontiguousarray"));
  nb::object arr;
  try {
    arr = (*asarray)(obj, "dtype"_a = "float64");
  } catch (const nb::python_error& e) {
    throw std::invalid_argument(std::string(name) + " must be a sequence of numbers");
  }
  if (nb::cast<int64_t>(arr.attr("ndim")) != 1)
    throw std::invalid_argument(std::string(name) + " must be one-dimensional, got shape " +
                                nb::cast<std::string>(nb::str(arr.attr("shape"))));
  return nb::cast<InArray>(arr);
}

Array1 to_numpy(std::vector<double>&& v) {
  auto* heap = new std::vector<double>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<double>*>(p); });
  return Array1(heap->data(), {heap->size()}, owner);
}

std::vector<int32_t> to_state(const std::vector<int64_t>& s) {
  std::vector<int32_t> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] < INT32_MIN || s[i] > INT32_MAX)
      throw std::invalid_argument("state entry " + std::to_string(s[i]) + " does not fit in 32 bits");
    out[i] = static_cast<int32_t>(s[i]);
  }
  return out;
}

// Ctrl-C during an eager kernel call: the kernels poll between chunks of steps with
// the GIL released; the poll takes it for a moment so Python can run its SIGINT
// handler, and a KeyboardInterrupt abandons the call.
void check_signals() {
  nb::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw nb::python_error();
}

// Releases the GIL for a kernel call and installs the Ctrl-C poll meanwhile.
class KernelCall {
 public:
  KernelCall() { set_interrupt_poll(&check_signals); }
  ~KernelCall() { set_interrupt_poll(nullptr); }
  KernelCall(const KernelCall&) = delete;
  KernelCall& operator=(const KernelCall&) = delete;

 private:
  nb::gil_scoped_release release_;
};

// memory_budget as passed from Python: None means the default (environment or 2 GiB).
int64_t checked_budget(std::optional<int64_t> budget) {
  if (!budget) return -1;
  if (*budget <= 0)
    throw std::invalid_argument("memory_budget must be a positive number of bytes, got " +
                                std::to_string(*budget) + " (None: the default)");
  return *budget;
}

// The length of each of nr_rewards equal rows in the flattened rewards.
int64_t row_length(const InArray& rewards, int64_t nr_rewards) {
  if (nr_rewards < 1 || static_cast<int64_t>(rewards.shape(0)) % nr_rewards != 0)
    throw std::invalid_argument("rewards (flattened) has " + std::to_string(rewards.shape(0)) +
                                " entries, which is not nr_rewards = " +
                                std::to_string(nr_rewards) + " rows of equal length");
  return static_cast<int64_t>(rewards.shape(0)) / nr_rewards;
}

// Python-facing handle on an immutable, shareable Structure.
struct PyStructure {
  std::shared_ptr<const Structure> s;
};

// Structure.pdf / Structure.cdf: one kernel computes both; ask for the one wanted.
Array1 distribution(const PyStructure& p, nb::handle theta, nb::handle times, bool want_pdf) {
  InArray th = as_f64(theta, "theta");
  InArray tm = as_f64(times, "times");
  std::vector<double> out(tm.shape(0));
  {
    KernelCall call;
    compute_distribution(*p.s, th.data(), static_cast<int64_t>(th.shape(0)), tm.data(),
                         static_cast<int64_t>(tm.shape(0)), want_pdf ? out.data() : nullptr,
                         want_pdf ? nullptr : out.data());
  }
  return to_numpy(std::move(out));
}

}  // namespace
}  // namespace phasic

NB_MODULE(_core, m) {
  using namespace phasic;
  m.doc() = "phasic C++ kernels: graph builder, compiled structures, moments, pdf/pmf, XLA FFI";

  nb::class_<GraphBuilder>(m, "GraphBuilder")
      .def(nb::init<int64_t, bool>(), "state_length"_a, "discrete"_a = false)
      .def_prop_ro("state_length", &GraphBuilder::state_length)
      .def_prop_ro("discrete", &GraphBuilder::discrete)
      .def("vertices_length", &GraphBuilder::vertices_length)
      .def("edges_length", &GraphBuilder::edges_length)
      .def("param_length", &GraphBuilder::param_length)
      .def("set_param_length", &GraphBuilder::set_param_length, "n"_a)
      .def(
          "find_or_create_vertex",
          [](GraphBuilder& b, const std::vector<int64_t>& state) {
            auto s = to_state(state);
            return b.find_or_create_vertex(s.data(), s.size());
          },
          "state"_a)
      .def(
          "find_vertex",
          [](const GraphBuilder& b, const std::vector<int64_t>& state) {
            auto s = to_state(state);
            return b.find_vertex(s.data(), s.size());
          },
          "state"_a)
      .def("vertex_state", &GraphBuilder::vertex_state, "i"_a)
      .def("state_array", &state_array, "i"_a)
      .def("add_plain_transitions", &add_plain_transitions, "src"_a, "items"_a)
      .def("states_array", &states_array, "first"_a, "count"_a)
      .def(
          "add_batched_transitions",
          [](GraphBuilder& b, int64_t first, int64_t count,
             nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> rows,
             nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> next_states,
             nb::ndarray<const double, nb::c_contig, nb::device::cpu> weights) {
            const int64_t K = static_cast<int64_t>(rows.shape(0));
            if (static_cast<int64_t>(next_states.shape(0)) != K ||
                static_cast<int64_t>(next_states.shape(1)) != b.state_length())
              throw std::invalid_argument("next_states must have shape (len(rows), state_length)");
            if ((weights.ndim() != 1 && weights.ndim() != 2) ||
                static_cast<int64_t>(weights.shape(0)) != K ||
                (weights.ndim() == 2 && weights.shape(1) == 0))
              throw std::invalid_argument("weights must have shape (len(rows),) or (len(rows), P)");
            const int64_t P = weights.ndim() == 2 ? static_cast<int64_t>(weights.shape(1)) : 0;
            return add_batched_transitions(b, first, count, rows.data(), K, next_states.data(),
                                           weights.data(), P);
          },
          "first"_a, "count"_a, "rows"_a, "next_states"_a, "weights"_a,
          "A batched callback's transitions from vertices first .. first + count - 1 "
          "(phasic.callbacks validates them first); returns the number of edges added.")
      .def(
          "add_edge",
          [](GraphBuilder& b, int64_t src, int64_t dst, double weight,
             const std::vector<double>& coefficients) {
            b.add_edge(src, dst, weight, coefficients.data(), coefficients.size());
          },
          "src"_a, "dst"_a, "weight"_a, "coefficients"_a = std::vector<double>())
      .def("out_edges", &GraphBuilder::out_edges, "i"_a)
      .def(
          "serialize",
          [](const GraphBuilder& b) {
            nb::gil_scoped_release release;
            return b.serialize();
          })
      .def_static(
          "from_json",
          [](std::string_view text) {
            nb::gil_scoped_release release;
            return GraphBuilder::from_data(parse_graph_json(text));
          },
          "text"_a)
      .def(
          "compile",
          [](const GraphBuilder& b, std::optional<int64_t> memory_budget) {
            const int64_t budget = checked_budget(memory_budget);
            nb::gil_scoped_release release;
            return PyStructure{Structure::compile(b.data(), budget)};
          },
          "memory_budget"_a = nb::none());

  nb::class_<PyStructure>(m, "Structure")
      .def_static(
          "from_json",
          [](std::string_view text, std::optional<int64_t> memory_budget) {
            const int64_t budget = checked_budget(memory_budget);
            nb::gil_scoped_release release;
            return PyStructure{Structure::from_json(text, budget)};
          },
          "text"_a, "memory_budget"_a = nb::none())
      .def_prop_ro("discrete", [](const PyStructure& p) { return p.s->discrete; })
      .def_prop_ro("param_length", [](const PyStructure& p) { return p.s->P; })
      .def_prop_ro("vertices_length", [](const PyStructure& p) { return p.s->V; })
      .def_prop_ro("edges_length", [](const PyStructure& p) { return p.s->E; })
      .def_prop_ro("transient_length", [](const PyStructure& p) { return int64_t(p.s->n); })
      .def_prop_ro("acyclic", [](const PyStructure& p) { return p.s->acyclic; })
      .def_prop_ro(
          "lumped_length",
          [](const PyStructure& p) { return int64_t(density_structure(*p.s).n); },
          "Transient vertices the densities run on: fewer than transient_length when the "
          "graph lumps exactly for its time to absorption.")
      .def_prop_ro("fill_length", [](const PyStructure& p) { return p.s->n_fill; })
      .def(
          "moments",
          [](const PyStructure& p, nb::handle theta, int64_t nr_moments, nb::handle rewards) {
            InArray th = as_f64(theta, "theta");
            std::optional<InArray> rw;
            if (!rewards.is_none()) rw = as_f64(rewards, "rewards");
            const int64_t k = nr_moments;
            check_nr_moments(k);
            std::vector<double> out(static_cast<size_t>(k));
            {
              KernelCall call;
              compute_moments(*p.s, th.data(), static_cast<int64_t>(th.shape(0)),
                              rw ? rw->data() : nullptr,
                              rw ? static_cast<int64_t>(rw->shape(0)) : 0, k, out.data());
            }
            return to_numpy(std::move(out));
          },
          "theta"_a, "nr_moments"_a, "rewards"_a = nb::none())
      .def(
          "covariance",
          [](const PyStructure& p, nb::handle theta, nb::handle rewards, int64_t nr_rewards) {
            InArray th = as_f64(theta, "theta");
            InArray rw = as_f64(rewards, "rewards");
            const int64_t R = nr_rewards, V = row_length(rw, R);
            std::vector<double> out(static_cast<size_t>(R * R));
            {
              KernelCall call;
              compute_covariance(*p.s, th.data(), static_cast<int64_t>(th.shape(0)), rw.data(),
                                 R, V, out.data());
            }
            return to_numpy(std::move(out));
          },
          "theta"_a, "rewards"_a, "nr_rewards"_a,
          "Cov(Y_i, Y_j) for nr_rewards reward rows (rewards flattened row-major), "
          "flattened row-major (nr_rewards, nr_rewards)")
      .def(
          "expected_rewards",
          [](const PyStructure& p, nb::handle theta, nb::handle rewards) {
            InArray th = as_f64(theta, "theta");
            std::optional<InArray> rw;
            if (!rewards.is_none()) rw = as_f64(rewards, "rewards");
            std::vector<double> out(static_cast<size_t>(p.s->V));
            {
              KernelCall call;
              compute_expected_rewards(*p.s, th.data(), static_cast<int64_t>(th.shape(0)),
                                       rw ? rw->data() : nullptr,
                                       rw ? static_cast<int64_t>(rw->shape(0)) : 0, out.data());
            }
            return to_numpy(std::move(out));
          },
          "theta"_a, "rewards"_a = nb::none(),
          "E[Y | start at v] for every vertex v (the time without rewards), from the "
          "moments' factorization")
      .def(
          "mutation_pmf",
          [](const PyStructure& p, nb::handle theta, double mutation_rate, nb::handle rewards,
             int64_t nr_rewards, int64_t kmax, bool grad) {
            InArray th = as_f64(theta, "theta");
            InArray rw = as_f64(rewards, "rewards");
            check_mutation_kmax(kmax);
            const int64_t R = nr_rewards, V = row_length(rw, R);
            const int64_t P = static_cast<int64_t>(th.shape(0));
            const size_t count = static_cast<size_t>(R * (kmax + 1));
            std::vector<double> out(count), jac(grad ? count * static_cast<size_t>(P + 1) : 0);
            {
              KernelCall call;
              if (grad)
                compute_mutation_pmf_jac(*p.s, th.data(), P, mutation_rate, rw.data(), R, V,
                                         kmax, out.data(), jac.data());
              else
                compute_mutation_pmf(*p.s, th.data(), P, mutation_rate, rw.data(), R, V, kmax,
                                     out.data());
            }
            return std::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(jac)));
          },
          "theta"_a, "mutation_rate"_a, "rewards"_a, "nr_rewards"_a, "kmax"_a,
          "grad"_a = false,
          "(P(K_i = k) flattened (nr_rewards, kmax + 1), and with grad its Jacobian "
          "flattened (nr_rewards, kmax + 1, param_length + 1), the last column d/d "
          "mutation_rate; else empty)")
      .def(
          "pdf",
          [](const PyStructure& p, nb::handle theta, nb::handle times) {
            return distribution(p, theta, times, /*want_pdf=*/true);
          },
          "theta"_a, "times"_a)
      .def(
          "cdf",
          [](const PyStructure& p, nb::handle theta, nb::handle times) {
            return distribution(p, theta, times, /*want_pdf=*/false);
          },
          "theta"_a, "times"_a)
      .def(
          "moments_jac",
          [](const PyStructure& p, nb::handle theta, int64_t nr_moments, nb::handle rewards) {
            InArray th = as_f64(theta, "theta");
            std::optional<InArray> rw;
            if (!rewards.is_none()) rw = as_f64(rewards, "rewards");
            const int64_t k = nr_moments;
            check_nr_moments(k);
            const size_t P = th.shape(0);
            std::vector<double> out(static_cast<size_t>(k)), jac(static_cast<size_t>(k) * P);
            {
              KernelCall call;
              compute_moments_jac(*p.s, th.data(), static_cast<int64_t>(P),
                                  rw ? rw->data() : nullptr,
                                  rw ? static_cast<int64_t>(rw->shape(0)) : 0, k, out.data(),
                                  jac.data());
            }
            return std::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(jac)));
          },
          "theta"_a, "nr_moments"_a, "rewards"_a = nb::none(),
          "(moments, jacobian flattened row-major with shape (nr_moments, param_length))")
      .def(
          "pdf_jac",
          [](const PyStructure& p, nb::handle theta, nb::handle times) {
            InArray th = as_f64(theta, "theta");
            InArray tm = as_f64(times, "times");
            const size_t P = th.shape(0), T = tm.shape(0);
            std::vector<double> out(T), jac(T * P);
            {
              KernelCall call;
              compute_pmf_jac(*p.s, th.data(), static_cast<int64_t>(P), tm.data(),
                              static_cast<int64_t>(T), out.data(), jac.data());
            }
            return std::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(jac)));
          },
          "theta"_a, "times"_a,
          "(pdf or pmf, jacobian flattened row-major with shape (len(times), param_length))")
      .def(
          "log_pdf",
          [](const PyStructure& p, nb::handle theta, nb::handle times, bool grad) {
            InArray th = as_f64(theta, "theta");
            InArray tm = as_f64(times, "times");
            const size_t P = th.shape(0), T = tm.shape(0);
            std::vector<double> out(T), jac(grad ? T * P : 0);
            {
              KernelCall call;
              compute_log_pmf(*p.s, th.data(), static_cast<int64_t>(P), tm.data(),
                              static_cast<int64_t>(T), out.data(), grad ? jac.data() : nullptr);
            }
            return std::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(jac)));
          },
          "theta"_a, "times"_a, "grad"_a = false,
          "(log pdf or log pmf, d/dtheta flattened (len(times), param_length) or empty)");

  m.def(
      "kingman",
      [](int64_t n) {
        nb::gil_scoped_release release;
        return kingman(n);
      },
      "n"_a);

  m.def("ffi_targets", []() {
    nb::dict d;
    for (const FfiTarget& t : ffi_targets()) d[t.name] = nb::capsule(t.handler);
    return d;
  });
  m.attr("max_moments") = kMaxMoments;
  m.attr("max_mutation_count") = kMaxMutationCount;
  m.def("cache_stats", &cache_stats);
  m.def(
      "sweep_counts",
      []() {
        const SweepCounts c = sweep_counts();
        nb::dict d;
        d["piecewise"] = c.piecewise;
        d["single"] = c.single;
        d["madds"] = c.madds;
        d["anchored"] = c.anchored;
        return d;
      },
      "Continuous sweeps run so far in this process: {'piecewise': n, 'single': m, 'madds': "
      "multiply-adds of the scaled and piecewise sweeps' steps, 'anchored': observed times "
      "summed through shared anchors}.");
  m.def(
      "set_time_windows",
      [](bool on) { kernel::g_time_windows.store(on, std::memory_order_relaxed); },
      "on"_a,
      "Diagnostic: False makes the derivative and log-density sweeps sum every time's "
      "series term by term from n = 0 (the former per-step sums) instead of over a window "
      "around its Poisson mode; tests compare the two. True (the default) restores them.");
  m.def(
      "set_lumping", [](bool on) { g_lumping.store(on, std::memory_order_relaxed); }, "on"_a,
      "Diagnostic: False makes the densities run on the graph itself even where it lumps "
      "exactly to fewer vertices (lumping.hpp); tests compare the two. True (the default) "
      "restores lumping.");
  m.def(
      "set_time_anchors",
      [](bool on) { kernel::g_time_anchors.store(on, std::memory_order_relaxed); },
      "on"_a,
      "Diagnostic: False makes every time use its own window, even where many times share "
      "anchors (time_anchors.hpp); tests compare the two. True (the default) restores them.");
  m.def(
      "set_anchor_vectors",
      [](bool on) { kernel::g_anchor_vectors.store(on, std::memory_order_relaxed); },
      "on"_a,
      "Diagnostic: False builds every anchor from the sweep's terms, even on graphs small "
      "enough to keep the sweep's vectors (time_anchors.hpp); tests compare the two. True "
      "(the default) restores them.");
  m.def(
      "hash_probes", []() { return t_hash_probes; },
      "Diagnostic: hash-table slots examined so far on the calling thread (state and "
      "edge lookups and insertions while graphs are built, read and validated). About 1-2 "
      "per operation; tests take differences to check that no input makes hashing slow.");
  m.def(
      "register_structure",
      [](std::string_view digest, nb::str text, const PyStructure* compiled) {
        std::shared_ptr<const Structure> s = compiled ? compiled->s : nullptr;
        // The registry borrows the caller's string instead of copying it (the JSON of
        // a million-vertex graph is ~0.7 GB): its UTF-8 form is the string's own
        // buffer for ASCII text (the writer's JSON), else one cached by Python on it.
        Py_ssize_t size = 0;
        const char* utf8 = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
        if (utf8 == nullptr) nb::raise_python_error();
        PyObject* ref = text.inc_ref().ptr();
        std::shared_ptr<const void> owner(ref, [](const void* o) {
          nb::gil_scoped_acquire gil;
          Py_DECREF(static_cast<PyObject*>(const_cast<void*>(o)));
        });
        nb::gil_scoped_release release;  // comparing a large text needs no Python objects
        register_structure(digest, std::move(owner),
                           std::string_view(utf8, static_cast<size_t>(size)), std::move(s));
      },
      "digest"_a, "text"_a, "compiled"_a.none() = nb::none(),
      "Registers a structure's JSON text under its SHA-256 hex digest for the FFI targets, "
      "which carry only the digest; `compiled` (Structure.from_json(text)) spares the "
      "first call compiling it again. Idempotent; a different text under the same digest "
      "raises ValueError.");
  m.def(
      "transient_indicator",
      [](std::string_view digest) {
        std::shared_ptr<const Structure> s = cached_structure(digest);
        std::vector<double> out(static_cast<size_t>(s->V), 0.0);
        for (int32_t v : s->tvert) out[static_cast<size_t>(v)] = 1.0;
        return to_numpy(std::move(out));
      },
      "digest"_a,
      "1.0 on each transient vertex, 0.0 elsewhere (vertex 0, absorbing vertices), for the "
      "structure registered under `digest`");
  m.def("cache_clear", &cache_clear);
  m.def("set_cache_capacity", &set_cache_capacity, "n"_a);
  m.def("set_num_threads", &set_num_threads, "n"_a);
  m.def("get_num_threads", &get_num_threads);
}
