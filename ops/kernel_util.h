// Small helpers shared by kernels: error messages that name shapes, and numpy-style
// broadcasting of two shapes into Eigen broadcast arguments.
#ifndef SLUICE_OPS_KERNEL_UTIL_H_
#define SLUICE_OPS_KERNEL_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "graph/shape_inference.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

// InvalidArgument "<what>: expected rank <rank>, got shape <shape>" unless t has that rank.
absl::Status CheckRank(const Tensor& t, int rank, absl::string_view what);

// Integer values of a 0-D or 1-D int32/int64 tensor (shape arguments, axes, ...).
absl::StatusOr<std::vector<int64_t>> TensorToInt64s(const Tensor& t, absl::string_view what);

// Every element of an int32/int64 tensor of any rank, in order (gather and scatter indices).
absl::StatusOr<std::vector<int64_t>> IndexValues(const Tensor& t, absl::string_view what);

// `axis` in [-rank, rank) as a non-negative axis; InvalidArgument naming the range otherwise.
absl::StatusOr<int> CanonicalAxis(int64_t axis, int rank);

// Product of dims [begin, end) of a fully defined shape (1 for an empty range).
int64_t DimProduct(const TensorShape& s, int begin, int end);

// "[2,3,4]".
std::string DimsString(const std::vector<int64_t>& dims);

// Shape function helper: output `output` has the shape held by constant input `i` (a vector),
// else the vector's length in unknown dimensions, else an unknown rank.
absl::Status OutputShapeFromInput(InferenceContext* c, int i, int output);

// Elementwise work below this many elements runs on the calling thread: handing it to the
// intra-op pool costs more than it saves.
inline constexpr int64_t kInlineEvalElements = 16384;

// Evaluates the Eigen expression `expr` into `dst` (a TensorMap): inline when `work` (default:
// dst's size) is small, else on the context's intra-op thread pool.
template <typename Dst, typename Expr>
void EvalExpr(const OpKernelContext& ctx, Dst&& dst, const Expr& expr, int64_t work = -1) {
  if (work < 0) work = dst.size();
  if (work < kInlineEvalElements) {
    dst = expr;
  } else {
    dst.device(ctx.eigen_device()) = expr;
  }
}

// Sets output `output` to a tensor of `shape`, reusing input `input`'s buffer when the context
// holds the only reference to it and dtype and shape match (saves an allocation on elementwise
// hot paths; safe because an elementwise kernel reads element i before writing element i).
// Otherwise allocates. ctx->input(input) stays readable either way.
absl::StatusOr<Tensor*> ForwardInputOrAllocateOutput(OpKernelContext* ctx, int input, int output,
                                                     const TensorShape& shape);

// How two fully defined shapes broadcast (numpy rules), with adjacent dimensions that broadcast
// the same way merged, so [4,1,3] * [2,1] becomes a rank-3 problem and [2,3] + [3] rank 2:
//   x viewed as x_dims and repeated x_bcast[i] times along dimension i gives out_dims; same for y.
struct BroadcastPlan {
  enum class Kind {
    kSameSize,  // x, y and the output have the same number of elements: no broadcasting.
    kScalarX,   // x has one element.
    kScalarY,   // y has one element.
    kGeneral,
  };
  Kind kind = Kind::kSameSize;
  TensorShape output_shape;
  std::vector<int64_t> x_dims, x_bcast, y_dims, y_bcast, out_dims;  // Collapsed; equal length.
};
// InvalidArgument "Incompatible shapes for broadcasting: [2,3] vs [4]" when they do not.
absl::StatusOr<BroadcastPlan> PlanBroadcast(const TensorShape& x, const TensorShape& y);

// Elementwise y = F(x) for an Eigen scalar functor F (one with packetOp vectorises), e.g.
// UnaryElementwiseOp<float, Eigen::internal::scalar_exp_op<float>>. The output reuses x's buffer
// when it can. Reports itself cheap when its output is known to be small, so the executor runs
// it inline.
template <typename T, typename F>
class UnaryElementwiseOp : public OpKernel {
 public:
  explicit UnaryElementwiseOp(const Node& node)
      : OpKernel(node),
        cheap_(node.output_shape(0).IsFullyDefined() &&
               node.output_shape(0).num_elements() <= kInlineEvalElements) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    absl::StatusOr<Tensor*> y = ForwardInputOrAllocateOutput(ctx, 0, 0, x.shape());
    if (!y.ok()) return y.status();
    EvalExpr(*ctx, (*y)->template flat<T>(), x.flat<T>().unaryExpr(F()));
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return !cheap_; }

 private:
  const bool cheap_;
};

// Names a C++ element type for the Switch* helpers: f(TypeTag<float>{}).
template <typename S>
struct TypeTag {
  using type = S;
};

// Calls f(TypeTag<T>{}) with T the C++ type of a numeric dtype (float32, float64, int32, int64);
// InvalidArgument for any other.
template <typename F>
absl::Status SwitchNumeric(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(TypeTag<float>{});
    case DType::kFloat64:
      return f(TypeTag<double>{});
    case DType::kInt32:
      return f(TypeTag<int32_t>{});
    case DType::kInt64:
      return f(TypeTag<int64_t>{});
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported dtype ", DTypeName(dtype), " (expected a numeric type)"));
  }
}

// Registers Kernel<T> on the CPU for `op` and each T in Ts:
//   SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<ReluOp, float, double>(kernels, "Relu")));
template <template <typename> class Kernel, typename... Ts>
absl::Status RegisterCpuKernels(KernelRegistry* kernels, absl::string_view op) {
  absl::Status status;
  (status.Update(kernels->Register(op, kDeviceCpu, DTypeOf<Ts>::value, MakeKernel<Kernel<Ts>>)),
   ...);
  return status;
}

}  // namespace sluice

#endif  // SLUICE_OPS_KERNEL_UTIL_H_
