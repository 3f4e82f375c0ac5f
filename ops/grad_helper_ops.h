// Gradient helper ops: the ops backward graphs are built from (ops/gradients.h), beside the
// forward ops they differentiate. Users rarely build them by hand, except StopGradient.
//   StopGradient        forwards its input; AddGradients passes no gradient through it
//   Shape               the shape of a tensor as an int64 vector
//   AddN                the elementwise sum of N equally shaped tensors (sums fan-out gradients)
//   ReduceToShape       sums `input` over the dimensions that broadcasting `shape` up to
//                       input's shape repeated: the gradient of numpy broadcasting
//   ReductionGrad       the gradient of Sum (mean=false) or Mean (mean=true): `grad`, the
//                       reduced tensor, broadcast back to `input_shape` (divided by the number
//                       of reduced elements for Mean); works for keep_dims true and false
//   MaxReductionGrad    the gradient of Max: grad routed to the maximal elements, shared equally
//                       between ties
//   ProdReductionGrad   the gradient of Prod: grad times the product of the other elements
//   ReluGrad            gradients where features > 0, else 0
//   MaximumMinimumGrad  the gradients of Maximum (is_maximum) or Minimum for x and y, before
//                       reduction to their shapes: grad where x wins (ties go to x), else 0
//   InvertPermutation   y[x[i]] = i
//   ConcatOffset        the offset of each Concat input inside the output (for Concat's grad)
//   SliceGrad           zeros of `input_shape` with `grad` placed at `begin`
// DSL functions are thread-compatible like Scope; kernels are thread-safe.
//
//   Output frozen = ops::StopGradient(s, features);   // no gradient flows into `features`
//   Output db = ops::ReduceToShape(s, dz, ops::Shape(s, b));
#ifndef SLUICE_OPS_GRAD_HELPER_OPS_H_
#define SLUICE_OPS_GRAD_HELPER_OPS_H_

#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterGradHelperOps(OpRegistry* ops, KernelRegistry* kernels);

namespace ops {

Output StopGradient(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Shape(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output AddN(const Scope& scope, const std::vector<Output>& inputs,
            SourceLocation loc = SourceLocation::Current());
Output ReduceToShape(const Scope& scope, Input x, Input shape,
                     SourceLocation loc = SourceLocation::Current());
Output ReductionGrad(const Scope& scope, Input grad, Input input_shape, Input axis, bool mean,
                     SourceLocation loc = SourceLocation::Current());
Output MaxReductionGrad(const Scope& scope, Input input, Input output, Input grad, Input axis,
                        SourceLocation loc = SourceLocation::Current());
Output ProdReductionGrad(const Scope& scope, Input input, Input grad, Input axis,
                         SourceLocation loc = SourceLocation::Current());
Output ReluGrad(const Scope& scope, Input gradients, Input features,
                SourceLocation loc = SourceLocation::Current());
// Returns {grad_x, grad_y}, or an empty vector after an error.
std::vector<Output> MaximumMinimumGrad(const Scope& scope, Input grad, Input x, Input y,
                                       bool is_maximum,
                                       SourceLocation loc = SourceLocation::Current());
Output InvertPermutation(const Scope& scope, Input x,
                         SourceLocation loc = SourceLocation::Current());
// One offset vector per shape, or an empty vector after an error.
std::vector<Output> ConcatOffset(const Scope& scope, Input axis, const std::vector<Output>& shapes,
                                 SourceLocation loc = SourceLocation::Current());
Output SliceGrad(const Scope& scope, Input input_shape, Input begin, Input grad,
                 SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_GRAD_HELPER_OPS_H_
