// Neural-network ops: activations, softmax and the cross-entropy losses training graphs use.
//   Relu Sigmoid Tanh                      elementwise activations
//   Softmax LogSoftmax                     over the last axis, shifted by the row maximum so
//                                          large logits (1000 and more) stay finite
//   SoftmaxCrossEntropyWithLogits          features [batch,classes], labels [batch,classes]
//                                          (probabilities) -> loss [batch], backprop
//                                          [batch,classes] = softmax(features) - labels
//   SparseSoftmaxCrossEntropyWithLogits    labels [batch] of class indices (int32 or int64)
// DSL functions are thread-compatible like Scope; kernels are thread-safe.
//
//   std::vector<Output> xent = ops::SparseSoftmaxCrossEntropyWithLogits(s, logits, labels);
//   Output loss = ops::ReduceMean(s, xent[0], {0});      // xent[1] is d(loss_i)/d(logits)
#ifndef SLUICE_OPS_NN_OPS_H_
#define SLUICE_OPS_NN_OPS_H_

#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterNnOps(OpRegistry* ops, KernelRegistry* kernels);

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

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_NN_OPS_H_
