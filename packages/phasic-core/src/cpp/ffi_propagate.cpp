// XLA FFI handlers of propagate and the per-vertex moments (propagate.cpp, moments.cpp):
// phasic_propagate, phasic_propagate_jac, phasic_propagate_adjoint,
// phasic_vertex_moments, phasic_vertex_moments_jac. Listed in ffi_targets()
// (ffi_handlers.cpp).
#include <string>
#include <string_view>
#include <utility>

#include "ffi_common.hpp"
#include "ffi_handlers.hpp"

namespace phasic {
namespace {

using namespace ffi_common;

// rewards [..., R] must be empty (R = 0: the default) or one entry per vertex.
void check_rewards_length(Preamble& pre, int64_t R, int64_t V) {
  pre.require(R == 0 || R == V, "rewards has length " + std::to_string(R) +
                                    " but the graph has " + std::to_string(V) +
                                    " vertices; pass one reward per vertex");
}

// theta [..., P], start [..., L, V], times [..., T], rewards [..., R] -> x, dx, ddx
// [..., T, L, V] and acc [..., T, V], with the Jacobians of x, dx, acc when asked for.
ffi::Error propagate(In& theta, In& start, In& times, In& rewards, Out& x, Out& dx, Out& acc,
                     Out& ddx, Out* x_jac, Out* dx_jac, Out* acc_jac, std::string_view digest) {
  Preamble pre(theta);
  const std::pair<int64_t, int64_t> lv = pre.matrix_input("start", start, "layers, vertices");
  const int64_t L = lv.first, VS = lv.second;  // named: lambdas cannot capture bindings
  const int64_t T = pre.input("times", times);
  const int64_t R = pre.input("rewards", rewards);
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const Structure& st = pre.s();
  const int64_t V = st.V, P = pre.P;
  pre.require(VS == V, "start has " + std::to_string(VS) + " columns but the graph has " +
                           std::to_string(V) + " vertices; start must have shape (layers, " +
                           std::to_string(V) + ")");
  pre.require(L >= 1, "start must have at least one layer (row)");
  check_rewards_length(pre, R, V);
  pre.output("x", x, pre.batch_and({T, L, V}));
  pre.output("dx", dx, pre.batch_and({T, L, V}));
  pre.output("acc", acc, pre.batch_and({T, V}));
  pre.output("ddx", ddx, pre.batch_and({T, L, V}));
  if (x_jac) {
    pre.output("x jacobian", *x_jac, pre.batch_and({T, L, V, P}));
    pre.output("dx jacobian", *dx_jac, pre.batch_and({T, L, V, P}));
    pre.output("acc jacobian", *acc_jac, pre.batch_and({T, V, P}));
  }
  if (!pre.ok()) return pre.error();
  const double* th = theta.typed_data();
  const double* sv = start.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  double* xo = x->typed_data();
  double* dxo = dx->typed_data();
  double* ao = acc->typed_data();
  double* ddo = ddx->typed_data();
  const bool jac = x_jac != nullptr;
  const double work = work_estimate(st) * static_cast<double>((T + 1) * L) * (jac ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    const int64_t ox = b * T * L * V, oa = b * T * V;
    const double* rb = R ? rw + b * R : nullptr;
    if (jac)
      compute_propagate_jac(st, th + b * P, P, sv + b * L * V, L, tm + b * T, T, rb, R, xo + ox,
                            dxo + ox, ao + oa, ddo + ox, (*x_jac)->typed_data() + ox * P,
                            (*dx_jac)->typed_data() + ox * P, (*acc_jac)->typed_data() + oa * P);
    else
      compute_propagate(st, th + b * P, P, sv + b * L * V, L, tm + b * T, T, rb, R, xo + ox,
                        dxo + ox, ao + oa, ddo + ox);
  });
}

ffi::Error Propagate(In theta, In start, In times, In rewards, Out x, Out dx, Out acc, Out ddx,
                     std::string_view digest) {
  return propagate(theta, start, times, rewards, x, dx, acc, ddx, nullptr, nullptr, nullptr,
                   digest);
}

ffi::Error PropagateJac(In theta, In start, In times, In rewards, Out x, Out dx, Out acc,
                        Out ddx, Out x_jac, Out dx_jac, Out acc_jac, std::string_view digest) {
  return propagate(theta, start, times, rewards, x, dx, acc, ddx, &x_jac, &dx_jac, &acc_jac,
                   digest);
}

// The transpose in start: theta, times [..., T], rewards [..., R], gx and gdx
// [..., T, L, V], gacc [..., T, V] -> [..., L, V].
ffi::Error PropagateAdjoint(In theta, In times, In rewards, In gx, In gdx, In gacc, Out out,
                            std::string_view digest) {
  Preamble pre(theta);
  const int64_t T = pre.input("times", times);
  const int64_t R = pre.input("rewards", rewards);
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const Structure& st = pre.s();
  const int64_t V = st.V, P = pre.P;
  const Dims gd = dims(gx);
  const int64_t L = gd.size() == pre.batch.size() + 3 ? gd[gd.size() - 2] : -1;
  pre.require(gd == pre.batch_and({T, L, V}),
              "cotangent of x has shape " + shape_string(gd) + ", expected " +
                  shape_string(pre.batch_and({T, L, V})));
  pre.require(dims(gdx) == gd, "cotangent of dx has shape " + shape_string(dims(gdx)) +
                                   ", expected " + shape_string(gd));
  pre.require(dims(gacc) == pre.batch_and({T, V}),
              "cotangent of acc has shape " + shape_string(dims(gacc)) + ", expected " +
                  shape_string(pre.batch_and({T, V})));
  check_rewards_length(pre, R, V);
  pre.output("start cotangent", out, pre.batch_and({L, V}));
  if (!pre.ok()) return pre.error();
  const double* th = theta.typed_data();
  const double* tm = times.typed_data();
  const double* rw = rewards.typed_data();
  const double* a = gx.typed_data();
  const double* d = gdx.typed_data();
  const double* c = gacc.typed_data();
  double* o = out->typed_data();
  const double work = work_estimate(st) * static_cast<double>((T + 1) * L);
  return run_batch(pre.B, work, [&](int64_t b) {
    const int64_t ox = b * T * L * V;
    compute_propagate_adjoint(st, th + b * P, P, L, tm + b * T, T, R ? rw + b * R : nullptr, R,
                              a + ox, d + ox, c + b * T * V, o + b * L * V);
  });
}

// theta, rewards [..., R] -> [..., K, V] (and the Jacobian [..., K, V, P]).
ffi::Error vertex_moments(In& theta, In& rewards, Out& out, Out* jac, std::string_view digest,
                          int64_t nr_moments) {
  Preamble pre(theta);
  const int64_t R = pre.input("rewards", rewards);
  const int64_t K = nr_moments;
  pre.nr_moments(K);
  pre.structure(digest);
  if (!pre.ok()) return pre.error();
  const Structure& st = pre.s();
  const int64_t V = st.V, P = pre.P;
  check_rewards_length(pre, R, V);
  pre.output("vertex moments", out, pre.batch_and({K, V}));
  if (jac) pre.output("jacobian", *jac, pre.batch_and({K, V, P}));
  if (!pre.ok()) return pre.error();
  const double* th = theta.typed_data();
  const double* rw = rewards.typed_data();
  double* o = out->typed_data();
  double* j = jac ? (*jac)->typed_data() : nullptr;
  const double work = work_estimate(st) * static_cast<double>(K + 1) * (j ? P + 1 : 1);
  return run_batch(pre.B, work, [&](int64_t b) {
    const double* rb = R ? rw + b * R : nullptr;
    if (j)
      compute_vertex_moments_jac(st, th + b * P, P, rb, R, K, o + b * K * V, j + b * K * V * P);
    else
      compute_vertex_moments(st, th + b * P, P, rb, R, K, o + b * K * V);
  });
}

ffi::Error VertexMoments(In theta, In rewards, Out out, std::string_view digest,
                         int64_t nr_moments) {
  return vertex_moments(theta, rewards, out, nullptr, digest, nr_moments);
}

ffi::Error VertexMomentsJac(In theta, In rewards, Out out, Out jac, std::string_view digest,
                            int64_t nr_moments) {
  return vertex_moments(theta, rewards, out, &jac, digest, nr_moments);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPropagate, Propagate, (bind_buffers<4, 4>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPropagateJac, PropagateJac, (bind_buffers<4, 7>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicPropagateAdjoint, PropagateAdjoint, (bind_buffers<6, 1>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicVertexMoments, VertexMoments,
                              (bind_buffers<2, 1>().Attr<int64_t>("nr_moments")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PhasicVertexMomentsJac, VertexMomentsJac,
                              (bind_buffers<2, 2>().Attr<int64_t>("nr_moments")));

}  // namespace phasic
