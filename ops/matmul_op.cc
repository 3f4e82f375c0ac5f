// MatMul: the rank-2 matrix product, with either operand optionally transposed.
//
// On one intra-op thread (or for small products) the kernel maps the row-major buffers as Eigen
// matrices and runs Eigen's GEMM, which compiled with -mavx2 -mfma matches OpenBLAS sgemm on
// one core; transposes are folded into GEMM's packing, never materialised. With more threads it
// evaluates an Eigen tensor contraction on the device's thread pool, which splits the product
// into blocks across the pool.

#include <algorithm>
#include <cstdint>
#include <vector>

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

// c [m,n] = op(a) x op(b) for row-major a [ra, ca] and b [rb, cb] on the calling thread.
template <typename T>
void MatrixProductAt(const T* a, int64_t ra, int64_t ca, bool ta, const T* b, int64_t rb,
                     int64_t cb, bool tb, T* c, int64_t m, int64_t n) {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Matrix> am(a, ra, ca);
  Eigen::Map<const Matrix> bm(b, rb, cb);
  Eigen::Map<Matrix> cm(c, m, n);
  if (!ta && !tb) {
    cm.noalias() = am * bm;
  } else if (ta && !tb) {
    cm.noalias() = am.transpose() * bm;
  } else if (!ta && tb) {
    cm.noalias() = am * bm.transpose();
  } else {
    cm.noalias() = am.transpose() * bm.transpose();
  }
}

// ------------------------------------------------------------------------------------------
// BatchMatMul: matrices in the last two dimensions, numpy broadcasting over the rest.

// The broadcast batch dimensions of a and b (both of rank >= 2), or InvalidArgument.
absl::StatusOr<std::vector<int64_t>> BatchDims(const TensorShape& a, const TensorShape& b) {
  const int ra = a.rank() - 2, rb = b.rank() - 2, r = std::max(ra, rb);
  std::vector<int64_t> out(r);
  for (int i = 0; i < r; ++i) {
    const int64_t da = i - (r - ra) >= 0 ? a.dim(i - (r - ra)) : 1;
    const int64_t db = i - (r - rb) >= 0 ? b.dim(i - (r - rb)) : 1;
    if (da != db && da != 1 && db != 1 && da != kUnknownDim && db != kUnknownDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("BatchMatMul batch dimensions do not broadcast: ", a.DebugString(), " x ",
                       b.DebugString()));
    }
    out[i] = da == 1 ? db : (db == 1 ? da : (da == kUnknownDim ? db : da));
  }
  return out;
}

absl::Status BatchMatMulShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(bool ta, c->GetAttr<bool>("adj_x"));
  SLUICE_ASSIGN_OR_RETURN(bool tb, c->GetAttr<bool>("adj_y"));
  const TensorShape& a = c->input_shape(0);
  const TensorShape& b = c->input_shape(1);
  if (a.unknown_rank() || b.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  if (a.rank() < 2 || b.rank() < 2) {
    return InferenceContext::Error(absl::StrCat("BatchMatMul needs operands of rank >= 2, got ",
                                                a.DebugString(), " x ", b.DebugString()));
  }
  const int64_t ka = a.dim(a.rank() - (ta ? 2 : 1)), kb = b.dim(b.rank() - (tb ? 1 : 2));
  if (ka != kUnknownDim && kb != kUnknownDim && ka != kb) {
    return InferenceContext::Error(InnerDimError(a, b, ta, tb));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, BatchDims(a, b));
  dims.push_back(a.dim(a.rank() - (ta ? 1 : 2)));
  dims.push_back(b.dim(b.rank() - (tb ? 2 : 1)));
  c->set_output(0, TensorShape(absl::Span<const int64_t>(dims)));
  return absl::OkStatus();
}

template <typename T>
class BatchMatMulOp : public OpKernel {
 public:
  explicit BatchMatMulOp(const Node& node)
      : OpKernel(node), adj_x_(Attr<bool>("adj_x")), adj_y_(Attr<bool>("adj_y")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    if (a.rank() < 2 || b.rank() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("BatchMatMul needs operands of rank >= 2, got ", a.shape().DebugString(),
                       " x ", b.shape().DebugString()));
    }
    const int64_t ra = a.dim(a.rank() - 2), ca = a.dim(a.rank() - 1);
    const int64_t rb = b.dim(b.rank() - 2), cb = b.dim(b.rank() - 1);
    const int64_t m = adj_x_ ? ca : ra, k = adj_x_ ? ra : ca, n = adj_y_ ? rb : cb;
    if (k != (adj_y_ ? cb : rb)) {
      return absl::InvalidArgumentError(InnerDimError(a.shape(), b.shape(), adj_x_, adj_y_));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> batch, BatchDims(a.shape(), b.shape()));
    std::vector<int64_t> out_dims = batch;
    out_dims.push_back(m);
    out_dims.push_back(n);
    SLUICE_ASSIGN_OR_RETURN(
        Tensor * c, ctx->allocate_output(0, TensorShape(absl::Span<const int64_t>(out_dims))));
    if (c->num_elements() == 0) return absl::OkStatus();
    // Each output matrix's operand matrices: walk the batch index, stepping an operand only
    // along the dimensions where it is not broadcast.
    const int r = static_cast<int>(batch.size());
    int64_t count = 1;
    for (int64_t d : batch) count *= d;
    std::vector<int64_t> a_index(count), b_index(count);
    std::vector<int64_t> coords(r, 0);
    for (int64_t i = 0; i < count; ++i) {
      int64_t ai = 0, bi = 0;
      for (int d = 0; d < r; ++d) {
        const int da = d - (r - (a.rank() - 2)), db = d - (r - (b.rank() - 2));
        if (da >= 0) ai = ai * a.dim(da) + (a.dim(da) == 1 ? 0 : coords[d]);
        if (db >= 0) bi = bi * b.dim(db) + (b.dim(db) == 1 ? 0 : coords[d]);
      }
      a_index[i] = ai;
      b_index[i] = bi;
      for (int d = r - 1; d >= 0; --d) {
        if (++coords[d] < batch[d]) break;
        coords[d] = 0;
      }
    }
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* cp = c->data<T>();
    auto run = [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        if (k == 0) {
          std::fill(cp + i * m * n, cp + (i + 1) * m * n, T(0));
          continue;
        }
        MatrixProductAt(ap + a_index[i] * ra * ca, ra, ca, adj_x_, bp + b_index[i] * rb * cb, rb,
                        cb, adj_y_, cp + i * m * n, m, n);
      }
    };
    if (ctx->eigen_device().numThreads() <= 1 || count * m * n * k < kSmallProductMacs) {
      run(0, count);
    } else {
      const double bytes = static_cast<double>((m * k + k * n + m * n) * sizeof(T));
      ctx->eigen_device().parallelFor(count, Eigen::TensorOpCost(bytes, bytes, 2.0 * m * n * k),
                                      run);
    }
    return absl::OkStatus();
  }

 private:
  const bool adj_x_;
  const bool adj_y_;
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
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<MatMulOp, float, double>(kernels, "MatMul")));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("BatchMatMul")
          .Input("x: T")
          .Input("y: T")
          .Output("output: T")
          .Attr("T: {float32, float64}")
          .Attr("adj_x: bool = false")
          .Attr("adj_y: bool = false")
          .Doc("Matrix products over the last two dimensions of x [..., m, k] and y [..., k, n] "
               "(each transposed when its adj_* attribute is set), the leading dimensions "
               "broadcast as in numpy: [..., m, n].")
          .SetShapeFn(BatchMatMulShape)));
  return RegisterCpuKernels<BatchMatMulOp, float, double>(kernels, "BatchMatMul");
}

}  // namespace math_internal

namespace ops {

Output MatMul(const Scope& scope, Input a, Input b, bool transpose_a, bool transpose_b,
              SourceLocation loc) {
  return BuildOp(scope, "MatMul", {a, b},
                 {{"transpose_a", AttrValue(transpose_a)}, {"transpose_b", AttrValue(transpose_b)}},
                 loc);
}

Output BatchMatMul(const Scope& scope, Input x, Input y, bool adj_x, bool adj_y,
                   SourceLocation loc) {
  return BuildOp(scope, "BatchMatMul", {x, y},
                 {{"adj_x", AttrValue(adj_x)}, {"adj_y", AttrValue(adj_y)}}, loc);
}

}  // namespace ops
}  // namespace sluice
