// Base ops: the graph plumbing every other family relies on.
//   Const        a constant tensor (attribute "value")
//   Placeholder  a value the caller feeds at run time ("dtype", "shape")
//   Identity     forwards its input unchanged (no copy)
//   NoOp         does nothing; a target that groups control dependencies
//   Timestamp    the wall-clock time it ran, in seconds since the epoch (float64 scalar)
//   Sleep        forwards its input after a fixed wait: an op of known duration for benchmarks
#ifndef SLUICE_OPS_BASE_OPS_H_
#define SLUICE_OPS_BASE_OPS_H_

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterBaseOps(OpRegistry* ops, KernelRegistry* kernels);

namespace ops {

Output Const(const Scope& scope, const Tensor& value,
             SourceLocation loc = SourceLocation::Current());
Output Placeholder(const Scope& scope, DType dtype, TensorShape shape = TensorShape::UnknownRank(),
                   SourceLocation loc = SourceLocation::Current());
Output Identity(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
// Returns the NoOp node (no outputs); use it as a target or control dependency.
const Node* NoOp(const Scope& scope, SourceLocation loc = SourceLocation::Current());
// When it ran (seconds since the Unix epoch, the system clock); order it with control
// dependencies. Pipelines time their actions with it.
Output Timestamp(const Scope& scope, SourceLocation loc = SourceLocation::Current());
// Forwards x after waiting `microseconds` (without using a core); its gradient waits
// `gradient_microseconds`. Benchmarks use it as a stage of known duration.
Output Sleep(const Scope& scope, Input x, int64_t microseconds, int64_t gradient_microseconds = 0,
             SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_BASE_OPS_H_
