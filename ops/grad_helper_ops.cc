// Kernels of the gradient helper ops. The broadcasting ones (ReduceToShape, ReductionGrad,
// MaxReductionGrad, MaximumMinimumGrad) first merge the dimensions of the big tensor into
// alternating groups that are or are not repeated in the small one (size-1 dimensions dropped),
// so [64,1024] -> [1024] is one rank-2 problem and any pattern needs at most a few Eigen passes.

#include "ops/grad_helper_ops.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

using Eigen::DenseIndex;

absl::StatusOr<std::vector<int64_t>> VectorArg(const Tensor& t, absl::string_view what) {
  if (t.rank() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a vector, got shape ", t.shape().DebugString()));
  }
  return TensorToInt64s(t, what);
}

// The dimensions of a big shape, merged into groups by whether a small shape of the same rank
// (each dimension 1 or equal to the big one) repeats them. Size-1 big dimensions are dropped.
struct Groups {
  std::vector<int64_t> dims;
  std::vector<bool> repeated;
  bool any_repeated() const {
    return std::find(repeated.begin(), repeated.end(), true) != repeated.end();
  }
};

Groups GroupDims(const std::vector<int64_t>& big, const std::vector<int64_t>& small) {
  Groups g;
  for (size_t i = 0; i < big.size(); ++i) {
    if (big[i] == 1) continue;
    const bool rep = small[i] == 1;
    if (!g.dims.empty() && g.repeated.back() == rep) {
      g.dims.back() *= big[i];
    } else {
      g.dims.push_back(big[i]);
      g.repeated.push_back(rep);
    }
  }
  return g;
}

// out[o, i] = sum over j of in[o, j, i].
template <typename T>
void SumMiddle(const OpKernelContext& ctx, const T* in, T* out, int64_t outer, int64_t r,
               int64_t inner) {
  const int64_t work = outer * r * inner;
  const Eigen::array<DenseIndex, 1> axis0 = {0}, axis1 = {1};
  if (outer == 1 && inner == 1) {
    ConstTensorMapT<T, 1> im(in, r);
    Eigen::TensorMap<Eigen::Tensor<T, 0, Eigen::RowMajor, DenseIndex>> om(out);
    EvalExpr(ctx, om, im.sum(axis0), work);
  } else if (inner == 1) {
    ConstTensorMapT<T, 2> im(in, outer, r);
    TensorMapT<T, 1> om(out, outer);
    EvalExpr(ctx, om, im.sum(axis1), work);
  } else if (outer == 1) {
    // Column sums of a row-major [r, inner] block (a bias gradient): adding whole rows
    // vectorises, where a strided Eigen reduction does not.
    using Row = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    using ConstRow = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    Row acc(out, inner);
    acc = ConstRow(in, inner);
    for (int64_t j = 1; j < r; ++j) acc += ConstRow(in + j * inner, inner);
  } else {
    ConstTensorMapT<T, 3> im(in, outer, r, inner);
    TensorMapT<T, 2> om(out, outer, inner);
    EvalExpr(ctx, om, im.sum(axis1), work);
  }
}

// Sums `in` (the big tensor) over its repeated groups into `out`; g has a repeated group.
template <typename T>
void SumGroups(const OpKernelContext& ctx, const T* in, T* out, Groups g) {
  Tensor scratch;
  const T* src = in;
  while (true) {
    int j = static_cast<int>(g.dims.size()) - 1;
    while (!g.repeated[j]) --j;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < j; ++i) outer *= g.dims[i];
    for (int i = j + 1; i < static_cast<int>(g.dims.size()); ++i) inner *= g.dims[i];
    const int64_t r = g.dims[j];
    g.dims.erase(g.dims.begin() + j);
    g.repeated.erase(g.repeated.begin() + j);
    if (j > 0 && j < static_cast<int>(g.dims.size())) {
      g.dims[j - 1] *= g.dims[j];
      g.dims.erase(g.dims.begin() + j);
      g.repeated.erase(g.repeated.begin() + j);
    }
    const bool last = !g.any_repeated();
    T* dst = out;
    Tensor next;
    if (!last) {
      next = Tensor(DTypeOf<T>::value, TensorShape({outer * inner}));
      dst = next.data<T>();
    }
    SumMiddle<T>(ctx, src, dst, outer, r, inner);
    if (last) return;
    scratch = std::move(next);
    src = scratch.data<T>();
  }
}

template <typename T, int N>
void BroadcastEigen(const OpKernelContext& ctx, const T* in, T* out, const Groups& g) {
  Eigen::DSizes<DenseIndex, N> src_dims, dst_dims;
  Eigen::array<DenseIndex, N> factors;
  for (int i = 0; i < N; ++i) {
    src_dims[i] = g.repeated[i] ? 1 : g.dims[i];
    dst_dims[i] = g.dims[i];
    factors[i] = g.repeated[i] ? g.dims[i] : 1;
  }
  ConstTensorMapT<T, N> src(in, src_dims);
  TensorMapT<T, N> dst(out, dst_dims);
  EvalExpr(ctx, dst, src.broadcast(factors));
}

// Writes the small tensor `in` repeated along the repeated groups into `out` (the big tensor).
template <typename T>
void BroadcastGroups(const OpKernelContext& ctx, const T* in, T* out, const Groups& g) {
  int64_t n = 1;
  for (int64_t d : g.dims) n *= d;
  if (!g.any_repeated()) {
    std::memcpy(out, in, n * sizeof(T));
    return;
  }
  switch (g.dims.size()) {
    case 1:
      std::fill(out, out + n, in[0]);
      return;
    case 2:
      return BroadcastEigen<T, 2>(ctx, in, out, g);
    case 3:
      return BroadcastEigen<T, 3>(ctx, in, out, g);
    case 4:
      return BroadcastEigen<T, 4>(ctx, in, out, g);
    default:
      break;
  }
  // Deeper alternations are rare: an odometer with stride 0 along repeated groups.
  const int rank = static_cast<int>(g.dims.size());
  std::vector<int64_t> strides(rank), index(rank, 0);
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    strides[i] = g.repeated[i] ? 0 : s;
    if (!g.repeated[i]) s *= g.dims[i];
  }
  int64_t src = 0;
  for (int64_t k = 0; k < n; ++k) {
    out[k] = in[src];
    for (int i = rank - 1; i >= 0; --i) {
      src += strides[i];
      if (++index[i] < g.dims[i]) break;
      src -= strides[i] * index[i];
      index[i] = 0;
    }
  }
}

// For each element of the big tensor, the index of its element in the small one.
std::vector<int64_t> SmallIndices(const Groups& g) {
  const int rank = static_cast<int>(g.dims.size());
  int64_t n = 1;
  for (int64_t d : g.dims) n *= d;
  std::vector<int64_t> strides(rank), index(rank, 0), out(n);
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    strides[i] = g.repeated[i] ? 0 : s;
    if (!g.repeated[i]) s *= g.dims[i];
  }
  int64_t src = 0;
  for (int64_t k = 0; k < n; ++k) {
    out[k] = src;
    for (int i = rank - 1; i >= 0; --i) {
      src += strides[i];
      if (++index[i] < g.dims[i]) break;
      src -= strides[i] * index[i];
      index[i] = 0;
    }
  }
  return out;
}

// The big shape's dimensions and the small shape's, left-padded with 1s to the same rank;
// InvalidArgument unless each small dimension is 1 or equal to the big one.
absl::StatusOr<std::vector<int64_t>> AlignSmall(const std::vector<int64_t>& big,
                                                const std::vector<int64_t>& small) {
  auto error = [&] {
    return absl::InvalidArgumentError(absl::StrCat("cannot reduce a tensor of shape ",
                                                   DimsString(big), " to shape ", DimsString(small),
                                                   ": the shapes do not broadcast"));
  };
  if (small.size() > big.size()) return error();
  std::vector<int64_t> aligned(big.size() - small.size(), 1);
  for (size_t i = 0; i < small.size(); ++i) {
    const int64_t b = big[big.size() - small.size() + i];
    if (small[i] != 1 && small[i] != b) return error();
    aligned.push_back(small[i]);
  }
  return aligned;
}

// Which dimensions of a shape of `rank` the reduction axes name.
absl::StatusOr<std::vector<bool>> ReducedDims(const Tensor& axis_t, int rank) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axes, TensorToInt64s(axis_t, "reduction axis"));
  std::vector<bool> reduced(rank, false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("reduction axis ", a, " is out of range for rank ", rank));
    }
    reduced[a < 0 ? a + rank : a] = true;
  }
  return reduced;
}

// ------------------------------------------------------------------------------------------
// StopGradient, Shape, AddN

class ForwardOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsExpensive() const override { return false; }
  absl::Status Compute(OpKernelContext* ctx) override {
    ctx->set_output(0, ctx->release_input(0));
    return absl::OkStatus();
  }
};

absl::Status ShapeShape(InferenceContext* c) {
  const TensorShape& in = c->input_shape(0);
  c->set_output(0, TensorShape({in.unknown_rank() ? kUnknownDim : in.rank()}));
  return absl::OkStatus();
}

class ShapeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsExpensive() const override { return false; }
  absl::Status Compute(OpKernelContext* ctx) override {
    const TensorShape& s = ctx->input(0).shape();
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, TensorShape({s.rank()})));
    for (int i = 0; i < s.rank(); ++i) out->data<int64_t>()[i] = s.dim(i);
    return absl::OkStatus();
  }
};

absl::Status AddNShape(InferenceContext* c) {
  TensorShape merged = c->input_shape(0);
  for (int i = 1; i < c->num_inputs(); ++i) {
    TensorShape next;
    if (!merged.MergeWith(c->input_shape(i), &next).ok()) {
      return InferenceContext::Error(absl::StrCat("AddN inputs must have equal shapes, got ",
                                                  c->input_shape(0).DebugString(), " and ",
                                                  c->input_shape(i).DebugString()));
    }
    merged = std::move(next);
  }
  c->set_output(0, std::move(merged));
  return absl::OkStatus();
}

template <typename T>
class AddNOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const int n = ctx->num_inputs();
    const TensorShape& shape = ctx->input(0).shape();
    for (int i = 1; i < n; ++i) {
      if (ctx->input(i).shape() != shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            "AddN inputs must have equal shapes, got ", shape.DebugString(), " (input 0) and ",
            ctx->input(i).shape().DebugString(), " (input ", i, ")"));
      }
    }
    if (n == 1) {
      ctx->set_output(0, ctx->release_input(0));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ForwardInputOrAllocateOutput(ctx, 0, 0, shape));
    auto o = out->flat<T>();
    EvalExpr(*ctx, o, ctx->input(0).flat<T>() + ctx->input(1).flat<T>());
    for (int i = 2; i < n; ++i) EvalExpr(*ctx, o, o + ctx->input(i).flat<T>());
    return absl::OkStatus();
  }
};

// ------------------------------------------------------------------------------------------
// ReduceToShape

template <typename T>
class ReduceToShapeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> target, VectorArg(ctx->input(1), "shape"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> small, AlignSmall(x.shape().dims(), target));
    const TensorShape out_shape{absl::Span<const int64_t>(target)};
    const Groups g = GroupDims(x.shape().dims(), small);
    if (!g.any_repeated() || x.num_elements() == 0) {
      if (out_shape.num_elements() == x.num_elements()) {
        SLUICE_ASSIGN_OR_RETURN(Tensor same, x.Reshaped(out_shape));  // Nothing to sum: share.
        ctx->set_output(0, std::move(same));
        return absl::OkStatus();
      }
      SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
      out->flat<T>().setZero();  // Summing over an empty dimension.
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    SumGroups<T>(*ctx, x.data<T>(), out->data<T>(), g);
    return absl::OkStatus();
  }
};

// ------------------------------------------------------------------------------------------
// ReductionGrad, MaxReductionGrad

// The keep-dims shape of a reduction of `in_dims` over `axis`, checked against `grad`.
absl::StatusOr<std::vector<int64_t>> KeepDims(const std::vector<int64_t>& in_dims,
                                              const Tensor& axis, const Tensor& grad,
                                              int64_t* count) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<bool> reduced,
                          ReducedDims(axis, static_cast<int>(in_dims.size())));
  std::vector<int64_t> keep(in_dims);
  int64_t kept = 1;
  *count = 1;
  for (size_t i = 0; i < in_dims.size(); ++i) {
    if (in_dims[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input_shape ", DimsString(in_dims), " has a negative dimension"));
    }
    if (reduced[i]) {
      *count *= in_dims[i];
      keep[i] = 1;
    }
    kept *= keep[i];
  }
  if (grad.num_elements() != kept) {
    return absl::InvalidArgumentError(absl::StrCat("gradient of shape ", grad.shape().DebugString(),
                                                   " does not match the reduction of ",
                                                   DimsString(in_dims), " to ", DimsString(keep)));
  }
  return keep;
}

template <typename T>
class ReductionGradOp : public OpKernel {
 public:
  explicit ReductionGradOp(const Node& node) : OpKernel(node), mean_(Attr<bool>("mean")) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> in_dims, VectorArg(ctx->input(1), "input_shape"));
    int64_t count = 1;
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> keep,
                            KeepDims(in_dims, ctx->input(2), grad, &count));
    SLUICE_ASSIGN_OR_RETURN(
        Tensor * out, ctx->allocate_output(0, TensorShape(absl::Span<const int64_t>(in_dims))));
    if (out->num_elements() == 0) return absl::OkStatus();
    Tensor src = grad;
    if (mean_) {
      src = Tensor(grad.dtype(), grad.shape());
      EvalExpr(*ctx, src.flat<T>(), grad.flat<T>() / grad.flat<T>().constant(T(count)));
    }
    BroadcastGroups<T>(*ctx, src.data<T>(), out->data<T>(), GroupDims(in_dims, keep));
    return absl::OkStatus();
  }

 private:
  const bool mean_;
};

template <typename T>
class MaxReductionGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const Tensor& grad = ctx->input(2);
    int64_t count = 1;
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> keep,
                            KeepDims(x.shape().dims(), ctx->input(3), grad, &count));
    if (y.num_elements() != grad.num_elements()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output of shape ", y.shape().DebugString(), " and gradient of shape ",
                       grad.shape().DebugString(), " differ in size"));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, x.shape()));
    const int64_t n = x.num_elements();
    if (n == 0) return absl::OkStatus();
    const std::vector<int64_t> idx = SmallIndices(GroupDims(x.shape().dims(), keep));
    const T* xp = x.data<T>();
    const T* yp = y.data<T>();
    const T* gp = grad.data<T>();
    T* op = out->data<T>();
    std::vector<int64_t> ties(y.num_elements(), 0);
    for (int64_t k = 0; k < n; ++k) ties[idx[k]] += xp[k] == yp[idx[k]];
    for (int64_t k = 0; k < n; ++k) {
      const int64_t j = idx[k];
      op[k] = xp[k] == yp[j] ? gp[j] / static_cast<T>(ties[j]) : T(0);
    }
    return absl::OkStatus();
  }
};

// The gradient of Prod: d/dx_k of the product of a group is the product of the others. Counting
// each group's zeros and multiplying its nonzero elements gives that without dividing by 0.
template <typename T>
class ProdReductionGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& grad = ctx->input(1);
    int64_t count = 1;
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> keep,
                            KeepDims(x.shape().dims(), ctx->input(2), grad, &count));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, x.shape()));
    const int64_t n = x.num_elements();
    if (n == 0) return absl::OkStatus();
    const std::vector<int64_t> idx = SmallIndices(GroupDims(x.shape().dims(), keep));
    const T* xp = x.data<T>();
    const T* gp = grad.data<T>();
    T* op = out->data<T>();
    std::vector<int64_t> zeros(grad.num_elements(), 0);
    std::vector<T> nonzero_product(grad.num_elements(), T(1));
    for (int64_t k = 0; k < n; ++k) {
      if (xp[k] == T(0)) {
        ++zeros[idx[k]];
      } else {
        nonzero_product[idx[k]] *= xp[k];
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t j = idx[k];
      T others = T(0);  // Two or more zeros: every product of the others has a zero.
      if (zeros[j] == 0) {
        others = nonzero_product[j] / xp[k];
      } else if (zeros[j] == 1 && xp[k] == T(0)) {
        others = nonzero_product[j];
      }
      op[k] = gp[j] * others;
    }
    return absl::OkStatus();
  }
};

// ------------------------------------------------------------------------------------------
// ReluGrad, MaximumMinimumGrad

absl::Status SameShapesShape(InferenceContext* c) {
  TensorShape merged;
  if (!c->input_shape(0).MergeWith(c->input_shape(1), &merged).ok()) {
    return InferenceContext::Error(absl::StrCat("shapes differ: ", c->input_shape(0).DebugString(),
                                                " vs ", c->input_shape(1).DebugString()));
  }
  c->set_output(0, std::move(merged));
  return absl::OkStatus();
}

template <typename T>
class ReluGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& g = ctx->input(0);
    const Tensor& f = ctx->input(1);
    if (g.shape() != f.shape()) {
      return absl::InvalidArgumentError(absl::StrCat("gradients of shape ", g.shape().DebugString(),
                                                     " and features of shape ",
                                                     f.shape().DebugString(), " differ"));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ForwardInputOrAllocateOutput(ctx, 0, 0, g.shape()));
    auto gf = g.flat<T>();
    auto ff = f.flat<T>();
    EvalExpr(*ctx, out->flat<T>(), (ff > ff.constant(T(0))).select(gf, gf.constant(T(0))));
    return absl::OkStatus();
  }
};

// `t` viewed in `shape` (which it broadcasts to), materialised when its shape differs.
template <typename T>
absl::StatusOr<Tensor> BroadcastTo(const OpKernelContext& ctx, const Tensor& t,
                                   const TensorShape& shape, absl::string_view what) {
  if (t.shape() == shape) return t;
  auto small = AlignSmall(shape.dims(), t.shape().dims());
  if (!small.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " of shape ", t.shape().DebugString(),
                                                   " does not broadcast to the gradient's shape ",
                                                   shape.DebugString()));
  }
  Tensor out(t.dtype(), shape);
  if (out.num_elements() > 0) {
    BroadcastGroups<T>(ctx, t.data<T>(), out.data<T>(), GroupDims(shape.dims(), *small));
  }
  return out;
}

template <typename T>
class MaximumMinimumGradOp : public OpKernel {
 public:
  explicit MaximumMinimumGradOp(const Node& node)
      : OpKernel(node), is_maximum_(Attr<bool>("is_maximum")) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& g = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(Tensor x, BroadcastTo<T>(*ctx, ctx->input(1), g.shape(), "x"));
    SLUICE_ASSIGN_OR_RETURN(Tensor y, BroadcastTo<T>(*ctx, ctx->input(2), g.shape(), "y"));
    SLUICE_ASSIGN_OR_RETURN(Tensor * gx, ctx->allocate_output(0, g.shape()));
    SLUICE_ASSIGN_OR_RETURN(Tensor * gy, ctx->allocate_output(1, g.shape()));
    auto gf = g.flat<T>();
    auto xf = x.flat<T>();
    auto yf = y.flat<T>();
    auto zero = gf.constant(T(0));
    if (is_maximum_) {
      EvalExpr(*ctx, gx->flat<T>(), (xf >= yf).select(gf, zero));
      EvalExpr(*ctx, gy->flat<T>(), (xf >= yf).select(zero, gf));
    } else {
      EvalExpr(*ctx, gx->flat<T>(), (xf <= yf).select(gf, zero));
      EvalExpr(*ctx, gy->flat<T>(), (xf <= yf).select(zero, gf));
    }
    return absl::OkStatus();
  }

 private:
  const bool is_maximum_;
};

absl::Status MaximumMinimumGradShape(InferenceContext* c) {
  c->set_output(0, c->input_shape(0));
  c->set_output(1, c->input_shape(0));
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------
// InvertPermutation, ConcatOffset, SliceGrad

template <typename T>
class InvertPermutationOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsExpensive() const override { return false; }
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_RETURN_IF_ERROR(CheckRank(x, 1, "permutation"));
    const int64_t n = x.num_elements();
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, x.shape()));
    std::vector<bool> seen(n, false);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = x.data<T>()[i];
      if (v < 0 || v >= n || seen[v]) {
        return absl::InvalidArgumentError(
            absl::StrCat(x.DebugString(16), " is not a permutation of 0..", n - 1));
      }
      seen[v] = true;
      y->data<T>()[v] = static_cast<T>(i);
    }
    return absl::OkStatus();
  }
};

absl::Status ConcatOffsetShape(InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input_shape(i + 1));
  return absl::OkStatus();
}

class ConcatOffsetOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsExpensive() const override { return false; }
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& axis_t = ctx->input(0);
    if (axis_t.rank() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis must be a scalar, got shape ", axis_t.shape().DebugString()));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, TensorToInt64s(axis_t, "axis"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> first, VectorArg(ctx->input(1), "shape 0"));
    const int64_t rank = static_cast<int64_t>(first.size());
    int64_t axis = axis_v[0];
    if (axis < -rank || axis >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis, " is out of range for rank ", rank));
    }
    if (axis < 0) axis += rank;
    int64_t offset = 0;
    for (int i = 1; i < ctx->num_inputs(); ++i) {
      SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> s,
                              VectorArg(ctx->input(i), absl::StrCat("shape ", i - 1)));
      bool ok = s.size() == first.size();
      for (int64_t d = 0; ok && d < rank; ++d) ok = d == axis || s[d] == first[d];
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat("shape ", DimsString(s),
                                                       " does not concatenate with ",
                                                       DimsString(first), " along axis ", axis));
      }
      SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(i - 1, TensorShape({rank})));
      std::fill(out->data<int64_t>(), out->data<int64_t>() + rank, 0);
      out->data<int64_t>()[axis] = offset;
      offset += s[axis];
    }
    return absl::OkStatus();
  }
};

template <typename T>
class SliceGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, VectorArg(ctx->input(0), "input_shape"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> begin, VectorArg(ctx->input(1), "begin"));
    const Tensor& g = ctx->input(2);
    const int rank = static_cast<int>(dims.size());
    bool ok = static_cast<int>(begin.size()) == rank && g.rank() == rank;
    for (int i = 0; ok && i < rank; ++i) {
      ok = begin[i] >= 0 && begin[i] + g.dim(i) <= dims[i];
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("a slice of shape ", g.shape().DebugString(),
                                                     " at ", DimsString(begin),
                                                     " does not fit in shape ", DimsString(dims)));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out,
                            ctx->allocate_output(0, TensorShape(absl::Span<const int64_t>(dims))));
    out->flat<T>().setZero();
    if (g.num_elements() == 0) return absl::OkStatus();
    if (rank == 0) {
      out->data<T>()[0] = g.data<T>()[0];
      return absl::OkStatus();
    }
    // Copy row by row (the last dimension is contiguous in both).
    std::vector<int64_t> out_strides(rank, 1);
    for (int i = rank - 2; i >= 0; --i) out_strides[i] = out_strides[i + 1] * dims[i + 1];
    const int64_t row = g.dim(rank - 1);
    const int64_t rows = g.num_elements() / row;
    std::vector<int64_t> index(rank, 0);
    const T* src = g.data<T>();
    T* dst = out->data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      int64_t off = 0;
      for (int i = 0; i < rank; ++i) off += (begin[i] + index[i]) * out_strides[i];
      std::memcpy(dst + off, src + r * row, row * sizeof(T));
      for (int i = rank - 2; i >= 0; --i) {
        if (++index[i] < g.dim(i)) break;
        index[i] = 0;
      }
    }
    return absl::OkStatus();
  }
};

// ------------------------------------------------------------------------------------------
// Registration

constexpr DType kAllTypes[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64,
                               DType::kBool};

absl::Status RegisterPlumbing(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("StopGradient")
          .Input("input: T")
          .Output("output: T")
          .Attr("T: type")
          .Doc("Forwards its input unchanged; AddGradients passes no gradient through it, so "
               "the input is treated as a constant by the backward graph.")
          .SetShapeFn(UnchangedShape)));
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("StopGradient", kDeviceCpu, dt, MakeKernel<ForwardOp>));
  }
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("Shape")
                                           .Input("input: T")
                                           .Output("output: int64")
                                           .Attr("T: type")
                                           .Doc("The shape of `input` as an int64 vector.")
                                           .SetShapeFn(ShapeShape)));
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(kernels->Register("Shape", kDeviceCpu, dt, MakeKernel<ShapeOp>));
  }
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("AddN")
                                           .Input("inputs: N * T")
                                           .Output("sum: T")
                                           .Attr("N: int >= 1")
                                           .Attr("T: {float32, float64, int32, int64}")
                                           .Doc("The elementwise sum of N tensors of equal shape.")
                                           .SetShapeFn(AddNShape)));
  return RegisterCpuKernels<AddNOp, float, double, int32_t, int64_t>(kernels, "AddN");
}

absl::Status RegisterBroadcastGrads(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ReduceToShape")
          .Input("input: T")
          .Input("shape: Tshape")
          .Output("output: T")
          .Attr("T: {float32, float64}")
          .Attr("Tshape: {int32, int64} = int64")
          .Doc("Sums `input` over the dimensions that numpy broadcasting of `shape` to input's "
               "shape would repeat (leading extra dimensions, and dimensions where `shape` has "
               "1), giving a tensor of shape `shape`: the gradient of broadcasting.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 1, 0); })));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ReduceToShapeOp, float, double>(kernels, "ReduceToShape")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ReductionGrad")
          .Input("grad: T")
          .Input("input_shape: Tshape")
          .Input("axis: Tidx")
          .Output("output: T")
          .Attr("T: {float32, float64}")
          .Attr("Tshape: {int32, int64} = int64")
          .Attr("Tidx: {int32, int64} = int32")
          .Attr("mean: bool = false")
          .Doc("The gradient of Sum (or Mean, with mean) over `axis` of a tensor of shape "
               "`input_shape`: `grad` (the reduced shape, with or without kept dimensions) "
               "repeated along the reduced dimensions, divided by their element count for "
               "Mean.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 1, 0); })));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ReductionGradOp, float, double>(kernels, "ReductionGrad")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("MaxReductionGrad")
          .Input("input: T")
          .Input("output: T")
          .Input("grad: T")
          .Input("axis: Tidx")
          .Output("backprop: T")
          .Attr("T: {float32, float64}")
          .Attr("Tidx: {int32, int64} = int32")
          .Doc("The gradient of Max over `axis`: each element of `grad` goes to the elements of "
               "`input` equal to the maximum `output`, split equally between ties; 0 elsewhere.")
          .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MaxReductionGradOp, float, double>(kernels, "MaxReductionGrad")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ProdReductionGrad")
          .Input("input: T")
          .Input("grad: T")
          .Input("axis: Tidx")
          .Output("backprop: T")
          .Attr("T: {float32, float64}")
          .Attr("Tidx: {int32, int64} = int32")
          .Doc("The gradient of Prod over `axis`: each element of `input` gets its group's "
               "`grad` times the product of the other elements of its group (exact with zeros).")
          .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ProdReductionGradOp, float, double>(kernels, "ProdReductionGrad")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ReluGrad")
          .Input("gradients: T")
          .Input("features: T")
          .Output("backprops: T")
          .Attr("T: {float32, float64}")
          .Doc("gradients where features > 0, else 0 (the gradient of Relu; features may be "
               "Relu's input or output).")
          .SetShapeFn(SameShapesShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<ReluGradOp, float, double>(kernels, "ReluGrad")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("MaximumMinimumGrad")
          .Input("grad: T")
          .Input("x: T")
          .Input("y: T")
          .Output("grad_x: T")
          .Output("grad_y: T")
          .Attr("T: {float32, float64}")
          .Attr("is_maximum: bool = true")
          .Doc("The gradients of Maximum (is_maximum) or Minimum with respect to x and y, in "
               "the shape of `grad` (x and y broadcast to it): grad where x is selected (x >= y "
               "for Maximum, x <= y for Minimum; ties go to x), else 0, and the rest for y.")
          .SetShapeFn(MaximumMinimumGradShape)));
  return RegisterCpuKernels<MaximumMinimumGradOp, float, double>(kernels, "MaximumMinimumGrad");
}

absl::Status RegisterIndexGrads(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("InvertPermutation")
                                           .Input("x: T")
                                           .Output("y: T")
                                           .Attr("T: {int32, int64} = int32")
                                           .Doc("The inverse permutation: y[x[i]] = i.")
                                           .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<InvertPermutationOp, int32_t, int64_t>(kernels, "InvertPermutation")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ConcatOffset")
          .Input("axis: Tidx")
          .Input("shape: N * int64")
          .Output("offset: N * int64")
          .Attr("N: int >= 1")
          .Attr("Tidx: {int32, int64} = int32")
          .Doc("Where each input of a Concat along `axis` with these shapes starts in the "
               "output: zeros except the running sum of the sizes along `axis`.")
          .SetShapeFn(ConcatOffsetShape)));
  // No "T" attribute: one kernel for any axis dtype.
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("ConcatOffset", kDeviceCpu, DType::kInvalid, MakeKernel<ConcatOffsetOp>));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("SliceGrad")
          .Input("input_shape: Tshape")
          .Input("begin: Index")
          .Input("grad: T")
          .Output("output: T")
          .Attr("T: {float32, float64}")
          .Attr("Tshape: {int32, int64} = int64")
          .Attr("Index: {int32, int64} = int32")
          .Doc("Zeros of shape `input_shape` with `grad` copied in at `begin`: the gradient of "
               "Slice.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 0, 0); })));
  return RegisterCpuKernels<SliceGradOp, float, double>(kernels, "SliceGrad");
}

}  // namespace

absl::Status RegisterGradHelperOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterPlumbing(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterBroadcastGrads(ops, kernels));
  return RegisterIndexGrads(ops, kernels);
}

namespace ops {

Output StopGradient(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "StopGradient", {x}, {}, loc);
}
Output Shape(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Shape", {x}, {}, loc);
}
Output AddN(const Scope& scope, const std::vector<Output>& inputs, SourceLocation loc) {
  return BuildOp(scope, "AddN", std::vector<Input>(inputs.begin(), inputs.end()),
                 {{"N", AttrValue(static_cast<int64_t>(inputs.size()))}}, loc);
}
Output ReduceToShape(const Scope& scope, Input x, Input shape, SourceLocation loc) {
  return BuildOp(scope, "ReduceToShape", {x, shape}, {}, loc);
}
Output ReductionGrad(const Scope& scope, Input grad, Input input_shape, Input axis, bool mean,
                     SourceLocation loc) {
  return BuildOp(scope, "ReductionGrad", {grad, input_shape, axis}, {{"mean", AttrValue(mean)}},
                 loc);
}
Output MaxReductionGrad(const Scope& scope, Input input, Input output, Input grad, Input axis,
                        SourceLocation loc) {
  return BuildOp(scope, "MaxReductionGrad", {input, output, grad, axis}, {}, loc);
}
Output ProdReductionGrad(const Scope& scope, Input input, Input grad, Input axis,
                         SourceLocation loc) {
  return BuildOp(scope, "ProdReductionGrad", {input, grad, axis}, {}, loc);
}
Output ReluGrad(const Scope& scope, Input gradients, Input features, SourceLocation loc) {
  return BuildOp(scope, "ReluGrad", {gradients, features}, {}, loc);
}
std::vector<Output> MaximumMinimumGrad(const Scope& scope, Input grad, Input x, Input y,
                                       bool is_maximum, SourceLocation loc) {
  return AllOutputs(BuildNode(scope, "MaximumMinimumGrad", {grad, x, y},
                              {{"is_maximum", AttrValue(is_maximum)}}, loc));
}
Output InvertPermutation(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "InvertPermutation", {x}, {}, loc);
}
std::vector<Output> ConcatOffset(const Scope& scope, Input axis, const std::vector<Output>& shapes,
                                 SourceLocation loc) {
  std::vector<Input> inputs = {axis};
  inputs.insert(inputs.end(), shapes.begin(), shapes.end());
  return AllOutputs(BuildNode(scope, "ConcatOffset", inputs,
                              {{"N", AttrValue(static_cast<int64_t>(shapes.size()))}}, loc));
}
Output SliceGrad(const Scope& scope, Input input_shape, Input begin, Input grad,
                 SourceLocation loc) {
  return BuildOp(scope, "SliceGrad", {input_shape, begin, grad}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
