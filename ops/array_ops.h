// Array ops: change the shape, layout or dtype of tensors without arithmetic.
//   Reshape    same elements, new shape (one -1 dimension is inferred); shares the input buffer
//   Transpose  permutes dimensions
//   Concat     joins tensors along an axis
//   Split      cuts a tensor into equal parts along an axis
//   Slice      a box of a tensor given begin and size (-1: to the end)
//   Cast       converts element dtype (bool <-> numeric: nonzero is true, true is 1)
//   Fill       a tensor of a given shape with every element equal to a scalar
//   ZerosLike, OnesLike
//   Gather     slices along an axis at indices (index_ops.cc); GatherNd by index tuples
//   UnsortedSegmentSum, ScatterNd   add values into zeros by index (the gradients of the two)
//   DynamicPartition, DynamicStitch   route rows to outputs by partition number, merge rows
//              back by index (partition_ops.cc); DynamicPartitionGrad is the first's gradient
//   Range      start, start + delta, ... below limit
//   OneHot     indices to one-hot vectors; InTopK  whether a target is among the k best
//   Tile       repeats a tensor along each dimension; Pad  pads it with a constant
//              (tile_pad_ops.cc); TileGrad, PadGrad, GatherGrad are their gradients
// Shape functions use constant inputs (shapes, axes, perms from Const nodes) so output shapes
// are known when the graph is built; otherwise they return what can be known.
//
//   Output y = ops::Reshape(s, x, Tensor::FromVector<int64_t>({-1, 3}));
//   std::vector<Output> parts = ops::Split(s, /*axis=*/1, y, /*num_split=*/3);
#ifndef SLUICE_OPS_ARRAY_OPS_H_
#define SLUICE_OPS_ARRAY_OPS_H_

#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterArrayOps(OpRegistry* ops, KernelRegistry* kernels);

namespace array_internal {
// The parts of RegisterArrayOps that live in index_ops.cc and tile_pad_ops.cc.
absl::Status RegisterIndexOps(OpRegistry* ops, KernelRegistry* kernels);
absl::Status RegisterTilePadOps(OpRegistry* ops, KernelRegistry* kernels);
absl::Status RegisterPartitionOps(OpRegistry* ops, KernelRegistry* kernels);
}  // namespace array_internal

namespace ops {

Output Reshape(const Scope& scope, Input x, Input shape,
               SourceLocation loc = SourceLocation::Current());
Output Transpose(const Scope& scope, Input x, Input perm,
                 SourceLocation loc = SourceLocation::Current());
Output Concat(const Scope& scope, const std::vector<Output>& values, Input axis,
              SourceLocation loc = SourceLocation::Current());
std::vector<Output> Split(const Scope& scope, Input axis, Input value, int num_split,
                          SourceLocation loc = SourceLocation::Current());
Output Slice(const Scope& scope, Input x, Input begin, Input size,
             SourceLocation loc = SourceLocation::Current());
Output Cast(const Scope& scope, Input x, DType dst, SourceLocation loc = SourceLocation::Current());
Output Fill(const Scope& scope, Input dims, Input value,
            SourceLocation loc = SourceLocation::Current());
Output ZerosLike(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output OnesLike(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Gather(const Scope& scope, Input params, Input indices, Input axis,
              SourceLocation loc = SourceLocation::Current());
Output GatherGrad(const Scope& scope, Input grad, Input indices, Input params_shape, Input axis,
                  SourceLocation loc = SourceLocation::Current());
Output UnsortedSegmentSum(const Scope& scope, Input data, Input segment_ids, Input num_segments,
                          SourceLocation loc = SourceLocation::Current());
Output GatherNd(const Scope& scope, Input params, Input indices,
                SourceLocation loc = SourceLocation::Current());
Output ScatterNd(const Scope& scope, Input indices, Input updates, Input shape,
                 SourceLocation loc = SourceLocation::Current());
std::vector<Output> DynamicPartition(const Scope& scope, Input data, Input partitions,
                                     int num_partitions,
                                     SourceLocation loc = SourceLocation::Current());
Output DynamicPartitionGrad(const Scope& scope, Input partitions, Input data_shape,
                            const std::vector<Output>& grads,
                            SourceLocation loc = SourceLocation::Current());
Output DynamicStitch(const Scope& scope, const std::vector<Output>& indices,
                     const std::vector<Output>& data,
                     SourceLocation loc = SourceLocation::Current());
Output OneHot(const Scope& scope, Input indices, Input depth, Input on_value, Input off_value,
              int64_t axis = -1, SourceLocation loc = SourceLocation::Current());
Output Range(const Scope& scope, Input start, Input limit, Input delta,
             SourceLocation loc = SourceLocation::Current());
Output InTopK(const Scope& scope, Input predictions, Input targets, int64_t k,
              SourceLocation loc = SourceLocation::Current());
Output Tile(const Scope& scope, Input x, Input multiples,
            SourceLocation loc = SourceLocation::Current());
Output TileGrad(const Scope& scope, Input grad, Input multiples, Input input_shape,
                SourceLocation loc = SourceLocation::Current());
Output Pad(const Scope& scope, Input x, Input paddings, Input constant_values,
           SourceLocation loc = SourceLocation::Current());
Output PadGrad(const Scope& scope, Input grad, Input paddings,
               SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_ARRAY_OPS_H_
