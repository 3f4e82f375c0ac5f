// Neural-network ops: activations, softmax and the cross-entropy losses training graphs use.
//   Relu Sigmoid Tanh                      elementwise activations
//   Softmax LogSoftmax                     over the last axis, shifted by the row maximum so
//                                          large logits (1000 and more) stay finite
//   SoftmaxCrossEntropyWithLogits          features [batch,classes], labels [batch,classes]
//                                          (probabilities) -> loss [batch], backprop
//                                          [batch,classes] = softmax(features) - labels
//   SparseSoftmaxCrossEntropyWithLogits    labels [batch] of class indices (int32 or int64)
//   Conv2D                                 NHWC input, [h, w, in, out] filter, strides and
//                                          dilations [1, h, w, 1], padding SAME or VALID
//   Conv2DBackpropInput/Filter             its gradients (conv_ops.cc)
//   MaxPool AvgPool                        NHWC windows ksize [1, h, w, 1]; padding never counts
//   MaxPoolGrad AvgPoolGrad                their gradients
// DSL functions are thread-compatible like Scope; kernels are thread-safe.
//
//   std::vector<Output> xent = ops::SparseSoftmaxCrossEntropyWithLogits(s, logits, labels);
//   Output loss = ops::ReduceMean(s, xent[0], {0});      // xent[1] is d(loss_i)/d(logits)
#ifndef SLUICE_OPS_NN_OPS_H_
#define SLUICE_OPS_NN_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterNnOps(OpRegistry* ops, KernelRegistry* kernels);

namespace nn_internal {
absl::Status RegisterConvOps(OpRegistry* ops, KernelRegistry* kernels);  // conv_ops.cc
}  // namespace nn_internal

namespace ops {

Output Relu(const Scope& scope, Input features, SourceLocation loc = SourceLocation::Current());
Output Sigmoid(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Tanh(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Softmax(const Scope& scope, Input logits, SourceLocation loc = SourceLocation::Current());
Output LogSoftmax(const Scope& scope, Input logits, SourceLocation loc = SourceLocation::Current());

// Returns {loss, backprop}, or an empty vector after an error.
std::vector<Output> SoftmaxCrossEntropyWithLogits(const Scope& scope, Input features, Input labels,
                                                  SourceLocation loc = SourceLocation::Current());
std::vector<Output> SparseSoftmaxCrossEntropyWithLogits(
    const Scope& scope, Input features, Input labels,
    SourceLocation loc = SourceLocation::Current());

// 2-D convolution; strides and dilations are [1, h, w, 1], padding "SAME" or "VALID".
Output Conv2D(const Scope& scope, Input input, Input filter, const std::vector<int64_t>& strides,
              const std::string& padding, const std::vector<int64_t>& dilations = {1, 1, 1, 1},
              SourceLocation loc = SourceLocation::Current());
// Conv2D's gradients, with the strides, padding and dilations of the Conv2D node `conv`.
Output Conv2DBackpropInput(const Scope& scope, Input input_sizes, Input filter, Input out_backprop,
                           const Node& conv, SourceLocation loc = SourceLocation::Current());
Output Conv2DBackpropFilter(const Scope& scope, Input input, Input filter_sizes, Input out_backprop,
                            const Node& conv, SourceLocation loc = SourceLocation::Current());
// Pooling; ksize and strides are [1, h, w, 1].
Output MaxPool(const Scope& scope, Input input, const std::vector<int64_t>& ksize,
               const std::vector<int64_t>& strides, const std::string& padding,
               SourceLocation loc = SourceLocation::Current());
Output AvgPool(const Scope& scope, Input input, const std::vector<int64_t>& ksize,
               const std::vector<int64_t>& strides, const std::string& padding,
               SourceLocation loc = SourceLocation::Current());
// "MaxPoolGrad" (orig_input, orig_output, grad) or "AvgPoolGrad" (orig_input_shape, grad) with
// the ksize, strides and padding of the pooling node `pool`.
Output PoolGrad(const Scope& scope, absl::string_view op, const std::vector<Input>& inputs,
                const Node& pool, SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_NN_OPS_H_
