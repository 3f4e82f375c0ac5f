// Math ops: elementwise arithmetic with numpy broadcasting, unary math functions, matrix
// product and reductions over axes.
//   Add Sub Mul Div Maximum Minimum   binary, numpy broadcasting ([2,3] + [3], [2,1] * [1,3])
//   FloorDiv FloorMod Pow             binary, numpy broadcasting (Python's // and %)
//   Equal NotEqual Less LessEqual Greater GreaterEqual   bool comparisons, broadcasting
//   LogicalAnd LogicalOr LogicalNot   on bool tensors
//   Select                            condition ? t : e, the three broadcast
//   Neg Exp Log Square Sqrt Abs Sign Rsqrt Reciprocal Floor Ceil Round   unary, elementwise
//   MatMul                            rank-2 product, attributes transpose_a / transpose_b
//   Sum Mean Max Min Prod Any All     reductions over `axis` (negative axes count from the end),
//                                     attribute keep_dims
//   ArgMax ArgMin                     the index of the extreme element along one axis
// DSL functions are thread-compatible like Scope; kernels are thread-safe.
//
//   Output logits = ops::Add(s, ops::MatMul(s, x, w), b);          // b: [classes] broadcasts
//   Output loss = ops::ReduceMean(s, per_example, {0});
#ifndef SLUICE_OPS_MATH_OPS_H_
#define SLUICE_OPS_MATH_OPS_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterMathOps(OpRegistry* ops, KernelRegistry* kernels);

// Parts of RegisterMathOps that live in matmul_op.cc and reduction_ops.cc.
namespace math_internal {
absl::Status RegisterMatMulOp(OpRegistry* ops, KernelRegistry* kernels);
absl::Status RegisterReductionOps(OpRegistry* ops, KernelRegistry* kernels);
}  // namespace math_internal

namespace ops {

// Binary elementwise ops; x and y have the same dtype and broadcast numpy-style.
Output Add(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output Sub(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output Mul(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output Div(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output Maximum(const Scope& scope, Input x, Input y,
               SourceLocation loc = SourceLocation::Current());
Output Minimum(const Scope& scope, Input x, Input y,
               SourceLocation loc = SourceLocation::Current());
// FloorDiv and FloorMod refuse an integer zero divisor; Pow is for float32 and float64.
Output FloorDiv(const Scope& scope, Input x, Input y,
                SourceLocation loc = SourceLocation::Current());
Output FloorMod(const Scope& scope, Input x, Input y,
                SourceLocation loc = SourceLocation::Current());
Output Pow(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output Equal(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output NotEqual(const Scope& scope, Input x, Input y,
                SourceLocation loc = SourceLocation::Current());
Output Less(const Scope& scope, Input x, Input y, SourceLocation loc = SourceLocation::Current());
Output LessEqual(const Scope& scope, Input x, Input y,
                 SourceLocation loc = SourceLocation::Current());
Output Greater(const Scope& scope, Input x, Input y,
               SourceLocation loc = SourceLocation::Current());
Output GreaterEqual(const Scope& scope, Input x, Input y,
                    SourceLocation loc = SourceLocation::Current());
Output LogicalAnd(const Scope& scope, Input x, Input y,
                  SourceLocation loc = SourceLocation::Current());
Output LogicalOr(const Scope& scope, Input x, Input y,
                 SourceLocation loc = SourceLocation::Current());
// Comparisons give bool; Logical* take bool. Select: condition (bool) ? t : e.
Output Select(const Scope& scope, Input condition, Input t, Input e,
              SourceLocation loc = SourceLocation::Current());

// Unary elementwise ops.
Output Neg(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Exp(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Log(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Square(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Sqrt(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Abs(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Sign(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Rsqrt(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Reciprocal(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Floor(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Ceil(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output Round(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());
Output LogicalNot(const Scope& scope, Input x, SourceLocation loc = SourceLocation::Current());

// a [m,k] x b [k,n] -> [m,n]; a transposed operand is given in its stored layout.
Output MatMul(const Scope& scope, Input a, Input b, bool transpose_a = false,
              bool transpose_b = false, SourceLocation loc = SourceLocation::Current());
// Products of the matrices in the last two dimensions, batch dimensions broadcast.
Output BatchMatMul(const Scope& scope, Input x, Input y, bool adj_x = false, bool adj_y = false,
                   SourceLocation loc = SourceLocation::Current());

// Reductions ("Sum", "Mean", "Max"). `axis` is an int32 or int64 scalar or vector; with
// keep_dims the reduced dimensions stay as size 1. The overloads taking a list of axes build
// an int64 constant: ReduceSum(s, x, {0, 2}).
Output ReduceSum(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                 SourceLocation loc = SourceLocation::Current());
Output ReduceSum(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceSum(const Scope& scope, Input x, const std::vector<int64_t>& axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceMean(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                  SourceLocation loc = SourceLocation::Current());
Output ReduceMean(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                  bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceMean(const Scope& scope, Input x, const std::vector<int64_t>& axes,
                  bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceMax(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                 SourceLocation loc = SourceLocation::Current());
Output ReduceMax(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceMax(const Scope& scope, Input x, const std::vector<int64_t>& axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
// Min, Prod (numbers) and Any, All (bool) reduce like Sum.
Output ReduceMin(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                 SourceLocation loc = SourceLocation::Current());
Output ReduceMin(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceProd(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                  SourceLocation loc = SourceLocation::Current());
Output ReduceProd(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                  bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceAny(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                 SourceLocation loc = SourceLocation::Current());
Output ReduceAny(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
Output ReduceAll(const Scope& scope, Input x, Input axis, bool keep_dims = false,
                 SourceLocation loc = SourceLocation::Current());
Output ReduceAll(const Scope& scope, Input x, std::initializer_list<int64_t> axes,
                 bool keep_dims = false, SourceLocation loc = SourceLocation::Current());
// The index of the first largest (smallest) element along `axis`, as int64 or int32.
Output ArgMax(const Scope& scope, Input x, int64_t axis, DType output_type = DType::kInt64,
              SourceLocation loc = SourceLocation::Current());
Output ArgMin(const Scope& scope, Input x, int64_t axis, DType output_type = DType::kInt64,
              SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_MATH_OPS_H_
