// Training ops: optimizer updates that change variables in place. Each takes its variables
// (and accumulator "slot" variables) as leading "ref" inputs, write handles like Assign's input
// 0 (ops/state_ops.h), and has no outputs: run it as a target, or group several behind a NoOp
// (ops/optimizers.h does). Hyper-parameters are scalar inputs of the variable's dtype.
//   ApplyGradientDescent  var -= alpha * delta
//   ApplyGradientDescentMatMul
//                         var -= alpha * op(a) op(b): gradient descent whose gradient is a
//                         MatMul (op transposes per transpose_a / transpose_b), as one GEMM
//                         accumulating into the variable (no gradient tensor)
//   ApplyMomentum         accum = momentum * accum + grad;
//                         var -= lr * accum, or with use_nesterov
//                         var -= lr * grad + lr * momentum * accum
//   ApplyAdagrad          accum += grad^2; var -= lr * grad / sqrt(accum)
//   SparseApplyMomentum, SparseApplyAdagrad
//                         the same on the rows `indices` names only: grad holds one row per
//                         index (the gradient of rows gathered from the variable)
//   ApplyAdam             lr_t = lr * sqrt(1 - beta2_power) / (1 - beta1_power);
//                         m += (1 - beta1) (grad - m); v += (1 - beta2) (grad^2 - v);
//                         var -= lr_t * m / (sqrt(v) + epsilon)
// (the update rules of TensorFlow's ops of the same names).
//
// Concurrency and memory: an update locks the Variable::mu of each of its variables (in address
// order, so two updates never deadlock) and writes the buffer in place, unless another reader
// still holds it (a fetched value, a read earlier in the step that is still in flight): then it
// first copies (copy-on-write, runtime/kernel/resource_mgr.h), so a value once read never changes.
// All variables must be initialised and have the gradient's dtype and shape; errors name the
// variable. Kernels are thread-safe.
//
//   Output w = ops::Variable(s.WithOpName("w"), TensorShape({10}), DType::kFloat32);
//   const Node* step = ops::ApplyGradientDescent(s, w, 0.1f, grad_w);
//   session->Run({}, {}, {step->name()}, nullptr);
#ifndef SLUICE_OPS_TRAINING_OPS_H_
#define SLUICE_OPS_TRAINING_OPS_H_

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterTrainingOps(OpRegistry* ops, KernelRegistry* kernels);

namespace ops {

// `var`, `accum`, `m`, `v` are the outputs of Variable nodes (the variables' readers); the
// functions build write handles for them. Each returns the update node, or nullptr on error.
const Node* ApplyGradientDescent(const Scope& scope, Output var, Input alpha, Input delta,
                                 SourceLocation loc = SourceLocation::Current());
const Node* ApplyGradientDescentMatMul(const Scope& scope, Output var, Input alpha, Input a,
                                       Input b, bool transpose_a = false, bool transpose_b = false,
                                       SourceLocation loc = SourceLocation::Current());
const Node* ApplyMomentum(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                          Input momentum, bool use_nesterov = false,
                          SourceLocation loc = SourceLocation::Current());
const Node* ApplyAdagrad(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                         SourceLocation loc = SourceLocation::Current());
const Node* SparseApplyMomentum(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                                Input indices, Input momentum, bool use_nesterov,
                                SourceLocation loc = SourceLocation::Current());
const Node* SparseApplyAdagrad(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                               Input indices, SourceLocation loc = SourceLocation::Current());
const Node* ApplyAdam(const Scope& scope, Output var, Output m, Output v, Input beta1_power,
                      Input beta2_power, Input lr, Input beta1, Input beta2, Input epsilon,
                      Input grad, SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_TRAINING_OPS_H_
