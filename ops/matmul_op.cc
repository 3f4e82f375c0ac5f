// MatMul: the rank-2 matrix product, with either operand optionally transposed.
//
// On one intra-op thread (or for small products) the kernel maps the row-major buffers as Eigen
// matrices and runs Eigen's GEMM, which compiled with -mavx2 -mfma matches OpenBLAS sgemm on
// one core; transposes are folded into GEMM's packing, never materialised. With more threads it
// evaluates an Eigen tensor contraction on the device's thread pool, which splits the product
// into blocks across the pool.

#include <cstdint>

#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/math_ops.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

using Eigen::DenseIndex;

// Below this many multiply-adds a product runs on the calling thread: splitting it across the
// pool costs more than it saves.
constexpr int64_t kSmallProductMacs = int64_t{64} * 64 * 64;

std::string InnerDimError(const TensorShape& a, const TensorShape& b, bool ta, bool tb) {
  std::string msg =
      absl::StrCat("MatMul inner dimensions differ: ", a.DebugString(), " x ", b.DebugString());
  if (ta || tb) {
    absl::StrAppend(&msg, " (transpose_a=", ta ? "true" : "false",
                    ", transpose_b=", tb ? "true" : "false", ")");
  }
  return msg;
}

absl::Status MatMulShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(bool ta, c->GetAttr<bool>("transpose_a"));
  SLUICE_ASSIGN_OR_RETURN(bool tb, c->GetAttr<bool>("transpose_b"));
  const TensorShape& a = c->input_shape(0);
  const TensorShape& b = c->input_shape(1);
  for (const auto& [name, s] : {std::make_pair("a", &a), std::make_pair("b", &b)}) {
    if (!s->unknown_rank() && s->rank() != 2) {
      return InferenceContext::Error(
          absl::StrCat("MatMul requires rank-2 inputs: ", name, " has shape ", s->DebugString()));
    }
  }
  int64_t m = kUnknownDim, ka = kUnknownDim, kb = kUnknownDim, n = kUnknownDim;
  if (!a.unknown_rank()) {
    m = a.dim(ta ? 1 : 0);
    ka = a.dim(ta ? 0 : 1);
  }
  if (!b.unknown_rank()) {
    kb = b.dim(tb ? 1 : 0);
    n = b.dim(tb ? 0 : 1);
  }
  if (ka != kUnknownDim && kb != kUnknownDim && ka != kb) {
    return InferenceContext::Error(InnerDimError(a, b, ta, tb));
  }
  c->set_output(0, TensorShape({m, n}));
  return absl::OkStatus();
}

template <typename T>
class MatMulOp : public OpKernel {
 public:
  explicit MatMulOp(const Node& node)
      : OpKernel(node),
        transpose_a_(Attr<bool>("transpose_a")),
        transpose_b_(Attr<bool>("transpose_b")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    if (a.rank() != 2 || b.rank() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("MatMul requires rank-2 inputs, got ",
                                                     a.shape().DebugString(), " x ",
                                                     b.shape().DebugString()));
    }
    const int64_t m = a.dim(transpose_a_ ? 1 : 0);
    const int64_t k = a.dim(transpose_a_ ? 0 : 1);
    const int64_t n = b.dim(transpose_b_ ? 0 : 1);
    if (k != b.dim(transpose_b_ ? 1 : 0)) {
      return absl::InvalidArgumentError(
          InnerDimError(a.shape(), b.shape(), transpose_a_, transpose_b_));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * c, ctx->allocate_output(0, TensorShape({m, n})));
    if (m == 0 || n == 0) return absl::OkStatus();
    if (k == 0) {
      c->flat<T>().setZero();
      return absl::OkStatus();
    }
    if (ctx->eigen_device().numThreads() <= 1 || m * n * k < kSmallProductMacs) {
      MatrixProduct(a, b, c);
    } else {
      const Eigen::array<Eigen::IndexPair<DenseIndex>, 1> contract_dims = {
          Eigen::IndexPair<DenseIndex>(transpose_a_ ? 0 : 1, transpose_b_ ? 1 : 0)};
      c->matrix<T>().device(ctx->eigen_device()) =
          a.matrix<T>().contract(b.matrix<T>(), contract_dims);
    }
    return absl::OkStatus();
  }

 private:
  void MatrixProduct(const Tensor& a, const Tensor& b, Tensor* c) const {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const Matrix> am(a.data<T>(), a.dim(0), a.dim(1));
    Eigen::Map<const Matrix> bm(b.data<T>(), b.dim(0), b.dim(1));
    Eigen::Map<Matrix> cm(c->data<T>(), c->dim(0), c->dim(1));
    if (!transpose_a_ && !transpose_b_) {
      cm.noalias() = am * bm;
    } else if (transpose_a_ && !transpose_b_) {
      cm.noalias() = am.transpose() * bm;
    } else if (!transpose_a_ && transpose_b_) {
      cm.noalias() = am * bm.transpose();
    } else {
      cm.noalias() = am.transpose() * bm.transpose();
    }
  }

  const bool transpose_a_;
  const bool transpose_b_;
};

}  // namespace

namespace math_internal {

absl::Status RegisterMatMulOp(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("MatMul")
          .Input("a: T")
          .Input("b: T")
          .Output("product: T")
          .Attr("T: {float32, float64}")
          .Attr("transpose_a: bool = false")
          .Attr("transpose_b: bool = false")
          .Doc("Matrix product of two rank-2 tensors: op(a) [m,k] x op(b) [k,n] -> [m,n], where "
               "op transposes the operand when its transpose_* attribute is set.")
          .SetShapeFn(MatMulShape)));
  return RegisterCpuKernels<MatMulOp, float, double>(kernels, "MatMul");
}

}  // namespace math_internal

namespace ops {

Output MatMul(const Scope& scope, Input a, Input b, bool transpose_a, bool transpose_b,
              SourceLocation loc) {
  return BuildOp(scope, "MatMul", {a, b},
                 {{"transpose_a", AttrValue(transpose_a)}, {"transpose_b", AttrValue(transpose_b)}},
                 loc);
}

}  // namespace ops
}  // namespace sluice
