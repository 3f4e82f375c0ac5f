// Registration of the gradient functions of every op family (ops/math_grad.cc, nn_grad.cc,
// array_grad.cc), called once from RegisterAllOps, plus helpers those functions share.
// See graph/gradient_registry.h for what a gradient function receives and returns.
// Thread-safety: registration runs once (under RegisterAllOps' call_once); the gradient
// functions and helpers build nodes through a Scope and are thread-compatible like it.
#ifndef SLUICE_OPS_GRADIENT_FNS_H_
#define SLUICE_OPS_GRADIENT_FNS_H_

#include "graph/gradient_registry.h"
#include "graph/scope.h"

namespace sluice {

// Math family: arithmetic, unary math, MatMul, Select and the reductions; comparisons, logic,
// rounding and ArgMax are NoGradient.
absl::Status RegisterMathGradients(GradientRegistry* registry);
// Nn family: Relu Sigmoid Tanh Softmax LogSoftmax, the two cross-entropy losses, Conv2D,
// MaxPool and AvgPool.
absl::Status RegisterNnGradients(GradientRegistry* registry);
// Array and base families (Identity Reshape Transpose Concat Split Slice Cast Fill, AddN), and
// the NoGradient markers of the ops that pass no gradient (Const, Placeholder, ZerosLike,
// OnesLike, StopGradient, Shape, Variable, Assign*, random ops, ...).
absl::Status RegisterArrayGradients(GradientRegistry* registry);

namespace grad_internal {

// The shape of `x` as an int64 vector: a Const when it is known while building, else a Shape
// node.
Output ShapeOf(const Scope& scope, const Output& x);

// The gradient of `x`, one operand of a broadcasting binary op whose other operand is `other`,
// from the gradient `grad` of the op's output: `grad` summed over the dimensions broadcasting
// repeated `x` along. Returns `grad` itself when the static shapes prove nothing was repeated.
Output UnbroadcastGrad(const Scope& scope, const Output& grad, const Output& x,
                       const Output& other);

}  // namespace grad_internal
}  // namespace sluice

#endif  // SLUICE_OPS_GRADIENT_FNS_H_
