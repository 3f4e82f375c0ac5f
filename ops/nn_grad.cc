// Gradient functions of the nn family. Softmax-based gradients work on the last axis like the
// forward ops; the cross-entropy losses differentiate both outputs (loss and backprop).

#include <vector>

#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/gradient_fns.h"
#include "ops/math_ops.h"
#include "ops/nn_ops.h"

namespace sluice {
namespace {

using Grads = std::vector<Output>;

absl::Status ReluGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::ReluGrad(s, dy[0], OpOutput(op, 0))};
  return absl::OkStatus();
}

// y = 1 / (1 + e^-x): dy/dx = y (1 - y).
absl::Status SigmoidGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output y = OpOutput(op, 0);
  *dx = {ops::Mul(s, dy[0], ops::Mul(s, y, ops::Sub(s, 1.0, y)))};
  return absl::OkStatus();
}

// y = tanh(x): dy/dx = 1 - y^2.
absl::Status TanhGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output y = OpOutput(op, 0);
  *dx = {ops::Mul(s, dy[0], ops::Sub(s, 1.0, ops::Square(s, y)))};
  return absl::OkStatus();
}

// The vector-Jacobian product of softmax over the last axis: p * (g - sum(g * p)).
Output SoftmaxBackprop(const Scope& s, const Output& g, const Output& p) {
  return ops::Mul(s, ops::Sub(s, g, ops::ReduceSum(s, ops::Mul(s, g, p), {-1}, true)), p);
}

absl::Status SoftmaxGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {SoftmaxBackprop(s, dy[0], OpOutput(op, 0))};
  return absl::OkStatus();
}

// y = x - log(sum(e^x)): dx = g - e^y * sum(g).
absl::Status LogSoftmaxGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output y = OpOutput(op, 0);
  *dx = {ops::Sub(s, dy[0], ops::Mul(s, ops::Exp(s, y), ops::ReduceSum(s, dy[0], {-1}, true)))};
  return absl::OkStatus();
}

Output SumIfBoth(const Scope& s, const Output& a, const Output& b) {
  if (!a.valid()) return b;
  if (!b.valid()) return a;
  return ops::Add(s, a, b);
}

// loss_i = -sum_j labels_ij log softmax(f)_ij and backprop = softmax(f) - labels, so
//   d loss_i / d f_i = backprop_i, d loss_i / d labels_i = -log softmax(f)_i,
//   backprop's vector-Jacobian product is softmax's for f and -identity for labels.
// (d loss / d f is backprop only when each labels row sums to 1, as the op requires; like
// TensorFlow, the gradient reuses the op's backprop output.)
// `dense` selects SoftmaxCrossEntropyWithLogits (labels differentiable) over the sparse form.
template <bool kDense>
absl::Status XentGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output features = OpInput(op, 0);
  Output d_features, d_labels;
  if (dy[0].valid()) {
    const Output g = ops::Reshape(s, dy[0], {-1, 1});  // One loss per row.
    d_features = ops::Mul(s, g, OpOutput(op, 1));
    if (kDense) d_labels = ops::Mul(s, g, ops::Neg(s, ops::LogSoftmax(s, features)));
  }
  if (dy[1].valid()) {
    d_features = SumIfBoth(s, d_features, SoftmaxBackprop(s, dy[1], ops::Softmax(s, features)));
    if (kDense) d_labels = SumIfBoth(s, d_labels, ops::Neg(s, dy[1]));
  }
  *dx = {d_features, d_labels};
  return absl::OkStatus();
}

absl::Status Conv2DGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output input = OpInput(op, 0), filter = OpInput(op, 1);
  *dx = {ops::Conv2DBackpropInput(s, grad_internal::ShapeOf(s, input), filter, dy[0], op),
         ops::Conv2DBackpropFilter(s, input, grad_internal::ShapeOf(s, filter), dy[0], op)};
  return absl::OkStatus();
}

absl::Status MaxPoolGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::PoolGrad(s, "MaxPoolGrad", {OpInput(op, 0), OpOutput(op, 0), dy[0]}, op)};
  return absl::OkStatus();
}

absl::Status AvgPoolGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::PoolGrad(s, "AvgPoolGrad", {grad_internal::ShapeOf(s, OpInput(op, 0)), dy[0]}, op)};
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterNnGradients(GradientRegistry* r) {
  SLUICE_RETURN_IF_ERROR(r->Register("Relu", ReluGradFn));
  SLUICE_RETURN_IF_ERROR(r->Register("Sigmoid", SigmoidGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Tanh", TanhGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Softmax", SoftmaxGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("LogSoftmax", LogSoftmaxGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("SoftmaxCrossEntropyWithLogits", XentGrad<true>));
  SLUICE_RETURN_IF_ERROR(r->Register("SparseSoftmaxCrossEntropyWithLogits", XentGrad<false>));
  SLUICE_RETURN_IF_ERROR(r->Register("Conv2D", Conv2DGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("MaxPool", MaxPoolGradFn));
  return r->Register("AvgPool", AvgPoolGradFn);
}

}  // namespace sluice
