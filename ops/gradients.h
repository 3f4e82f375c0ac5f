// AddGradients: builds the backward graph of ys with respect to xs, as ordinary graph nodes
// that run in the same session as the forward graph (symbolic differentiation, reverse mode).
//
// For each x, grad_xs[i] = sum over j of (d ys[j] / d xs[i])^T grad_ys[j], i.e. the gradient of
// sum_j <ys[j], grad_ys[j]> with respect to xs[i]. Without grad_ys, every grad_ys[j] is ones.
//   - Gradients reaching one tensor along several paths (fan-out) are summed (AddN).
//   - Broadcasting ops sum their gradients back to each operand's shape; reductions broadcast
//     them back over the reduced dimensions, with or without keep_dims.
//   - StopGradient, and every op registered with NoGradient (Variable, ZerosLike, random ops,
//     integer-valued ops such as Shape, ...), passes nothing: its inputs count as constants.
//   - Only floating tensors carry gradients; integer inputs (axes, shapes, labels) get none.
//   - Only data edges carry gradients; control edges are ignored.
//   - An x that ys do not depend on (no path of differentiable data edges) gets an invalid
//     Output by default ("absent"), or ZerosLike(x) with GradientOptions::unconnected = kZero.
//   - A gradient with respect to a variable is the gradient with respect to its reading
//     Variable node's output (the Output ops::Variable returns); Variable itself has none.
// New nodes are named "<scope prefix>/<forward node>_grad/..." and requested on the forward
// node's device. Every op on a path from xs to ys must have a gradient function
// (graph/gradient_registry.h), else the call fails naming the node and op. Second derivatives
// are not supported: the gradient helper ops (ReduceToShape, ReluGrad, ...) have no gradients.
//
// Thread-compatible like Scope (builds nodes). Errors are returned and also recorded in the
// scope.
//
//   Output loss = ops::ReduceMean(s, xent[0], {0});
//   std::vector<Output> grads;
//   SLUICE_RETURN_IF_ERROR(AddGradients(s.NewSubScope("gradients"), {loss}, {w, b}, &grads));
#ifndef SLUICE_OPS_GRADIENTS_H_
#define SLUICE_OPS_GRADIENTS_H_

#include <vector>

#include "absl/status/status.h"
#include "graph/scope.h"

namespace sluice {

struct GradientOptions {
  enum class Unconnected {
    kNone,  // grad_xs[i] is an invalid Output.
    kZero,  // grad_xs[i] is ZerosLike(xs[i]).
  };
  Unconnected unconnected = Unconnected::kNone;
};

// grad_ys is empty (ones) or has one tensor per y, of the y's dtype and shape.
absl::Status AddGradients(const Scope& scope, const std::vector<Output>& ys,
                          const std::vector<Output>& xs, const std::vector<Output>& grad_ys,
                          std::vector<Output>* grad_xs, const GradientOptions& options = {});
absl::Status AddGradients(const Scope& scope, const std::vector<Output>& ys,
                          const std::vector<Output>& xs, std::vector<Output>* grad_xs);

}  // namespace sluice

#endif  // SLUICE_OPS_GRADIENTS_H_
