#include "ops/array_ops.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

constexpr DType kAllTypes[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64,
                               DType::kBool};
// Eigen kernels below are instantiated for ranks up to this.
constexpr int kMaxRank = 8;

// Ops that only move elements care about element size, not dtype: one instantiation per size
// keeps compile time and code size down. Calls f(TypeTag<S>{}) with S of the dtype's size.
template <typename F>
absl::Status SwitchByElementSize(DType dtype, F&& f) {
  switch (DTypeSize(dtype)) {
    case 1:
      return f(TypeTag<uint8_t>{});
    case 4:
      return f(TypeTag<uint32_t>{});
    case 8:
      return f(TypeTag<uint64_t>{});
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported dtype ", DTypeName(dtype)));
  }
}

// Calls f(std::integral_constant<int, N>{}) for rank N in [1, kMaxRank].
template <typename F>
absl::Status SwitchByRank(int rank, F&& f) {
  switch (rank) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    case 6:
      return f(std::integral_constant<int, 6>{});
    case 7:
      return f(std::integral_constant<int, 7>{});
    case 8:
      return f(std::integral_constant<int, 8>{});
    default:
      return absl::UnimplementedError(
          absl::StrCat("tensors of rank ", rank, " are not supported (at most ", kMaxRank, ")"));
  }
}

// A rank-2 view [rows, cols] of a tensor's buffer, whatever its own rank.
template <typename S>
TensorMapT<S, 2> AsMatrix(const Tensor& t, int64_t rows, int64_t cols) {
  return TensorMapT<S, 2>(t.data<S>(), rows, cols);
}

// The scalar integer in `t` (an axis argument).
absl::StatusOr<int64_t> ScalarInt(const Tensor& t, absl::string_view what) {
  if (t.rank() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a scalar, got shape ", t.shape().DebugString()));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> v, TensorToInt64s(t, what));
  return v[0];
}

// The integers of a rank-1 int32/int64 tensor (shape, perm, begin, size arguments).
absl::StatusOr<std::vector<int64_t>> VectorInts(const Tensor& t, absl::string_view what) {
  if (t.rank() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a vector, got shape ", t.shape().DebugString()));
  }
  return TensorToInt64s(t, what);
}

// Evaluates `expr` into `dst` inline when `work` elements are few, else on the intra-op pool
// (like EvalExpr in kernel_util.h, for destinations such as slices that have no size()).
template <typename Dst, typename Expr>
void EvalSized(const OpKernelContext& ctx, Dst&& dst, const Expr& expr, int64_t work) {
  if (work < kInlineEvalElements) {
    dst = expr;
  } else {
    dst.device(ctx.eigen_device()) = expr;
  }
}

template <typename K>
absl::Status RegisterUntyped(KernelRegistry* kernels, absl::string_view op) {
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(kernels->Register(op, kDeviceCpu, dt, MakeKernel<K>));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------
// Reshape

// The shape `requested` (with at most one -1) resolves to for an input of shape `in`. When `in`
// is not fully defined (shape inference) the -1 stays unknown and nothing is checked.
absl::StatusOr<TensorShape> ResolveReshape(const TensorShape& in,
                                           const std::vector<int64_t>& requested) {
  int unknown_index = -1;
  int64_t known_product = 1;
  for (size_t i = 0; i < requested.size(); ++i) {
    int64_t d = requested[i];
    if (d == -1) {
      if (unknown_index >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "only one dimension of the new shape can be -1, got ", DimsString(requested)));
      }
      unknown_index = static_cast<int>(i);
    } else if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid dimension ", d, " in the new shape ", DimsString(requested)));
    } else if (__builtin_mul_overflow(known_product, d, &known_product)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the new shape ", DimsString(requested), " has more than 2^63-1 elements"));
    }
  }
  TensorShape out = TensorShape(absl::Span<const int64_t>(requested));
  const int64_t n = in.num_elements();
  if (n < 0) return out;
  auto mismatch = [&](const std::string& count) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot reshape a tensor of shape ", in.DebugString(), " (", n,
                     " elements) into shape ", DimsString(requested), " (", count, ")"));
  };
  if (unknown_index < 0) {
    if (known_product != n) return mismatch(absl::StrCat(known_product, " elements"));
    return out;
  }
  if (known_product == 0) {
    // 0 * x == n has no single solution.
    return mismatch("the -1 dimension cannot be inferred when another dimension is 0");
  }
  if (n % known_product != 0) {
    return mismatch(absl::StrCat("a multiple of ", known_product, " elements"));
  }
  out.set_dim(unknown_index, n / known_product);
  return out;
}

absl::Status ReshapeShape(InferenceContext* c) {
  if (const Tensor* shape = c->input_value(1)) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> requested, VectorInts(*shape, "shape"));
    SLUICE_ASSIGN_OR_RETURN(TensorShape out, ResolveReshape(c->input_shape(0), requested));
    c->set_output(0, std::move(out));
    return absl::OkStatus();
  }
  const TensorShape& shape_shape = c->input_shape(1);
  if (shape_shape.rank() == 1 && shape_shape.dim(0) >= 0) {
    c->set_output(0, TensorShape(std::vector<int64_t>(shape_shape.dim(0), kUnknownDim)));
  } else {
    c->set_output(0, TensorShape::UnknownRank());
  }
  return absl::OkStatus();
}

class ReshapeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsExpensive() const override { return false; }
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> requested, VectorInts(ctx->input(1), "shape"));
    SLUICE_ASSIGN_OR_RETURN(TensorShape shape, ResolveReshape(x.shape(), requested));
    SLUICE_ASSIGN_OR_RETURN(Tensor y, x.Reshaped(shape));  // Shares x's buffer.
    ctx->set_output(0, std::move(y));
    return absl::OkStatus();
  }
};

absl::Status RegisterReshape(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Reshape")
          .Input("tensor: T")
          .Input("shape: Tshape")
          .Output("output: T")
          .Attr("T: type")
          .Attr("Tshape: {int32, int64} = int32")
          .Doc("The elements of `tensor` in the same order, with shape `shape` (a vector; one "
               "entry may be -1 and is inferred). The output shares the input's buffer.")
          .SetShapeFn(ReshapeShape)));
  return RegisterUntyped<ReshapeOp>(kernels, "Reshape");
}

// ------------------------------------------------------------------------------------------
// Transpose

absl::Status CheckPerm(const std::vector<int64_t>& perm, const TensorShape& x) {
  const int rank = x.rank();
  if (static_cast<int>(perm.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat("transpose permutation ", DimsString(perm),
                                                   " has ", perm.size(), " entries but x has rank ",
                                                   rank, " (shape ", x.DebugString(), ")"));
  }
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p]) {
      return absl::InvalidArgumentError(absl::StrCat("transpose permutation ", DimsString(perm),
                                                     " is not a permutation of 0..", rank - 1));
    }
    seen[p] = true;
  }
  return absl::OkStatus();
}

absl::Status TransposeShape(InferenceContext* c) {
  const TensorShape& x = c->input_shape(0);
  const Tensor* perm_t = c->input_value(1);
  if (perm_t == nullptr) {
    if (x.unknown_rank()) {
      const TensorShape& ps = c->input_shape(1);
      c->set_output(0, ps.rank() == 1 && ps.dim(0) >= 0
                           ? TensorShape(std::vector<int64_t>(ps.dim(0), kUnknownDim))
                           : TensorShape::UnknownRank());
    } else {
      c->set_output(0, TensorShape(std::vector<int64_t>(x.rank(), kUnknownDim)));
    }
    return absl::OkStatus();
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> perm, VectorInts(*perm_t, "perm"));
  if (x.unknown_rank()) {
    TensorShape assumed(std::vector<int64_t>(perm.size(), kUnknownDim));
    SLUICE_RETURN_IF_ERROR(CheckPerm(perm, assumed));
    c->set_output(0, assumed);
    return absl::OkStatus();
  }
  SLUICE_RETURN_IF_ERROR(CheckPerm(perm, x));
  TensorShape out;
  for (int64_t p : perm) out.AddDim(x.dim(p));
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class TransposeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> perm, VectorInts(ctx->input(1), "perm"));
    SLUICE_RETURN_IF_ERROR(CheckPerm(perm, x.shape()));
    bool identity = true;
    for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == static_cast<int64_t>(i);
    if (identity) {  // Includes every rank 0 and rank 1 transpose: forward the buffer.
      ctx->set_output(0, x);
      return absl::OkStatus();
    }
    TensorShape out_shape;
    for (int64_t p : perm) out_shape.AddDim(x.dim(p));
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, out_shape));
    if (y->num_elements() == 0) return absl::OkStatus();
    return SwitchByElementSize(x.dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      return SwitchByRank(x.rank(), [&](auto rank_c) {
        constexpr int N = decltype(rank_c)::value;
        Eigen::array<Eigen::DenseIndex, N> shuffle;
        for (int i = 0; i < N; ++i) shuffle[i] = perm[i];
        EvalExpr(*ctx, y->tensor<S, N>(), x.tensor<S, N>().shuffle(shuffle));
        return absl::OkStatus();
      });
    });
  }
};

absl::Status RegisterTranspose(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Transpose")
          .Input("x: T")
          .Input("perm: Tperm")
          .Output("y: T")
          .Attr("T: type")
          .Attr("Tperm: {int32, int64} = int32")
          .Doc("Permutes the dimensions of `x`: dimension i of y is dimension perm[i] of x.")
          .SetShapeFn(TransposeShape)));
  return RegisterUntyped<TransposeOp>(kernels, "Transpose");
}

// ------------------------------------------------------------------------------------------
// Concat

// Output shape of concatenating `shapes` along `axis` (may be negative). Unknown dims are
// allowed (shape inference); every known-rank shape must agree with the first outside `axis`.
absl::StatusOr<TensorShape> ConcatShapes(const std::vector<TensorShape>& shapes, int64_t axis) {
  int first = -1;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (!shapes[i].unknown_rank()) {
      first = static_cast<int>(i);
      break;
    }
  }
  if (first < 0) return TensorShape::UnknownRank();
  const int rank = shapes[first].rank();
  SLUICE_ASSIGN_OR_RETURN(int ax, CanonicalAxis(axis, rank));
  TensorShape out = shapes[first];
  bool axis_known = true;
  int64_t axis_size = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const TensorShape& s = shapes[i];
    if (s.unknown_rank()) {
      axis_known = false;
      continue;
    }
    if (s.rank() != rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inputs to concatenate must have the same rank: input ", first, " has shape ",
          shapes[first].DebugString(), ", input ", i, " has shape ", s.DebugString()));
    }
    for (int d = 0; d < rank; ++d) {
      if (d == ax) continue;
      int64_t a = out.dim(d), b = s.dim(d);
      if (a >= 0 && b >= 0 && a != b) {
        return absl::InvalidArgumentError(absl::StrCat("inputs to concatenate along axis ", ax,
                                                       " must match in every other dimension: "
                                                       "input ",
                                                       first, " has shape ",
                                                       shapes[first].DebugString(), ", input ", i,
                                                       " has shape ", s.DebugString()));
      }
      if (a < 0) out.set_dim(d, b);
    }
    if (s.dim(ax) < 0) {
      axis_known = false;
    } else {
      axis_size += s.dim(ax);
    }
  }
  out.set_dim(ax, axis_known ? axis_size : kUnknownDim);
  return out;
}

absl::Status ConcatShape(InferenceContext* c) {
  const int n = c->num_inputs() - 1;
  std::vector<TensorShape> shapes;
  for (int i = 0; i < n; ++i) shapes.push_back(c->input_shape(i));
  if (const Tensor* axis_t = c->input_value(n)) {
    SLUICE_ASSIGN_OR_RETURN(int64_t axis, ScalarInt(*axis_t, "axis"));
    SLUICE_ASSIGN_OR_RETURN(TensorShape out, ConcatShapes(shapes, axis));
    c->set_output(0, std::move(out));
    return absl::OkStatus();
  }
  // Axis unknown: only the rank is known.
  for (const TensorShape& s : shapes) {
    if (!s.unknown_rank()) {
      c->set_output(0, TensorShape(std::vector<int64_t>(s.rank(), kUnknownDim)));
      return absl::OkStatus();
    }
  }
  c->set_output(0, TensorShape::UnknownRank());
  return absl::OkStatus();
}

class ConcatOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const int n = ctx->num_inputs() - 1;
    SLUICE_ASSIGN_OR_RETURN(int64_t axis_arg, ScalarInt(ctx->input(n), "axis"));
    std::vector<TensorShape> shapes;
    for (int i = 0; i < n; ++i) shapes.push_back(ctx->input(i).shape());
    SLUICE_ASSIGN_OR_RETURN(TensorShape out_shape, ConcatShapes(shapes, axis_arg));
    if (n == 1) {
      ctx->set_output(0, ctx->input(0));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, out_shape));
    if (y->num_elements() == 0) return absl::OkStatus();
    const int axis = static_cast<int>(axis_arg < 0 ? axis_arg + out_shape.rank() : axis_arg);
    // Every input is a matrix [outer, its own inner]; the output places them side by side.
    const int64_t outer = DimProduct(out_shape, 0, axis);
    const int64_t out_inner = y->num_elements() / outer;
    return SwitchByElementSize(y->dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      TensorMapT<S, 2> out = AsMatrix<S>(*y, outer, out_inner);
      int64_t offset = 0;
      for (int i = 0; i < n; ++i) {
        const Tensor& x = ctx->input(i);
        if (x.num_elements() == 0) continue;
        const int64_t inner = x.num_elements() / outer;
        Eigen::array<Eigen::DenseIndex, 2> offsets = {0, offset};
        Eigen::array<Eigen::DenseIndex, 2> extents = {outer, inner};
        EvalSized(*ctx, out.slice(offsets, extents), AsMatrix<S>(x, outer, inner), outer * inner);
        offset += inner;
      }
      return absl::OkStatus();
    });
  }
};

absl::Status RegisterConcat(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Concat")
          .Input("values: N * T")
          .Input("axis: Tidx")
          .Output("output: T")
          .Attr("N: int >= 1")
          .Attr("T: type")
          .Attr("Tidx: {int32, int64} = int32")
          .Doc("Joins `values` along `axis` (negative counts from the end); every other "
               "dimension must match.")
          .SetShapeFn(ConcatShape)));
  return RegisterUntyped<ConcatOp>(kernels, "Concat");
}

// ------------------------------------------------------------------------------------------
// Split

// Shape of each of `num_split` parts of `value` split along `axis`.
absl::StatusOr<TensorShape> SplitPieceShape(const TensorShape& value, int64_t axis_arg,
                                            int64_t num_split) {
  if (value.unknown_rank()) return TensorShape::UnknownRank();
  SLUICE_ASSIGN_OR_RETURN(int axis, CanonicalAxis(axis_arg, value.rank()));
  TensorShape piece = value;
  const int64_t d = value.dim(axis);
  if (d >= 0) {
    if (d % num_split != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", axis, " of shape ", value.DebugString(), " (size ", d,
                       ") cannot be split into ", num_split, " equal parts"));
    }
    piece.set_dim(axis, d / num_split);
  }
  return piece;
}

absl::Status SplitShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(int64_t num_split, c->GetAttr<int64_t>("num_split"));
  TensorShape piece;
  const TensorShape& value = c->input_shape(1);
  if (const Tensor* axis_t = c->input_value(0)) {
    SLUICE_ASSIGN_OR_RETURN(int64_t axis, ScalarInt(*axis_t, "axis"));
    SLUICE_ASSIGN_OR_RETURN(piece, SplitPieceShape(value, axis, num_split));
  } else if (value.unknown_rank()) {
    piece = TensorShape::UnknownRank();
  } else {
    piece = TensorShape(std::vector<int64_t>(value.rank(), kUnknownDim));
  }
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, piece);
  return absl::OkStatus();
}

class SplitOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& value = ctx->input(1);
    const int num_split = node().num_outputs();
    SLUICE_ASSIGN_OR_RETURN(int64_t axis_arg, ScalarInt(ctx->input(0), "axis"));
    SLUICE_ASSIGN_OR_RETURN(TensorShape piece, SplitPieceShape(value.shape(), axis_arg, num_split));
    const int axis = static_cast<int>(axis_arg < 0 ? axis_arg + value.rank() : axis_arg);
    const int64_t outer = DimProduct(value.shape(), 0, axis);
    const int64_t part = piece.dim(axis);
    const int64_t after = DimProduct(value.shape(), axis + 1, value.rank());
    if (value.num_elements() == 0) {
      for (int i = 0; i < num_split; ++i)
        SLUICE_RETURN_IF_ERROR(ctx->allocate_output(i, piece).status());
      return absl::OkStatus();
    }
    if (outer == 1) {
      // Each part is a contiguous range of the input: share its buffer.
      SLUICE_ASSIGN_OR_RETURN(Tensor rows, value.Reshaped(TensorShape({value.dim(axis), after})));
      for (int i = 0; i < num_split; ++i) {
        SLUICE_ASSIGN_OR_RETURN(Tensor out, rows.Slice(i * part, (i + 1) * part).Reshaped(piece));
        ctx->set_output(i, std::move(out));
      }
      return absl::OkStatus();
    }
    return SwitchByElementSize(value.dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      const int64_t in_inner = value.num_elements() / outer;
      const int64_t inner = part * after;
      TensorMapT<S, 2> in = AsMatrix<S>(value, outer, in_inner);
      for (int i = 0; i < num_split; ++i) {
        SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(i, piece));
        Eigen::array<Eigen::DenseIndex, 2> offsets = {0, i * inner};
        Eigen::array<Eigen::DenseIndex, 2> extents = {outer, inner};
        EvalExpr(*ctx, AsMatrix<S>(*y, outer, inner), in.slice(offsets, extents));
      }
      return absl::OkStatus();
    });
  }
};

absl::Status RegisterSplit(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Split")
          .Input("axis: int32")
          .Input("value: T")
          .Output("output: num_split * T")
          .Attr("num_split: int >= 1")
          .Attr("T: type")
          .Doc("Splits `value` along `axis` into `num_split` equal parts; the dimension must be "
               "divisible by num_split. Parts that are contiguous share the input's buffer.")
          .SetShapeFn(SplitShape)));
  return RegisterUntyped<SplitOp>(kernels, "Split");
}

// ------------------------------------------------------------------------------------------
// Slice

// Resolves begin/size (size -1: to the end) against a fully defined shape into output sizes.
absl::StatusOr<std::vector<int64_t>> ResolveSlice(const TensorShape& x,
                                                  const std::vector<int64_t>& begin,
                                                  const std::vector<int64_t>& size) {
  const int rank = x.rank();
  if (static_cast<int>(begin.size()) != rank || static_cast<int>(size.size()) != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("begin ", DimsString(begin), " and size ", DimsString(size),
                     " must each have ", rank, " entries for an input of shape ", x.DebugString()));
  }
  std::vector<int64_t> out(rank);
  for (int i = 0; i < rank; ++i) {
    const int64_t b = begin[i], dim = x.dim(i);
    if (size[i] < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("size ", size[i], " of dimension ", i, " is invalid (sizes must be >= -1)"));
    }
    if (dim < 0) {  // Shape inference with an unknown dimension.
      out[i] = size[i];
      continue;
    }
    int64_t end = dim;
    if (size[i] != -1 && __builtin_add_overflow(b, size[i], &end)) {
      return absl::InvalidArgumentError(absl::StrCat("slice of dimension ", i, " from ", b,
                                                     " with size ", size[i], " overflows int64"));
    }
    if (b < 0 || b > dim || end > dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("slice range [", b, ", ", end, ") of dimension ", i,
                       " is out of bounds for input shape ", x.DebugString()));
    }
    out[i] = end - b;
  }
  return out;
}

absl::Status SliceShape(InferenceContext* c) {
  const TensorShape& x = c->input_shape(0);
  const Tensor* begin_v = c->input_value(1);
  const Tensor* size_v = c->input_value(2);
  if (begin_v != nullptr && size_v != nullptr && !x.unknown_rank()) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> begin, VectorInts(*begin_v, "begin"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> size, VectorInts(*size_v, "size"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> out, ResolveSlice(x, begin, size));
    c->set_output(0, TensorShape(absl::Span<const int64_t>(out)));
    return absl::OkStatus();
  }
  if (size_v != nullptr) {
    // Sizes other than -1 are the output dims whatever begin is.
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> size, VectorInts(*size_v, "size"));
    for (int64_t& s : size) {
      if (s < 0) s = kUnknownDim;
    }
    c->set_output(0, TensorShape(absl::Span<const int64_t>(size)));
    return absl::OkStatus();
  }
  c->set_output(0, x.unknown_rank() ? TensorShape::UnknownRank()
                                    : TensorShape(std::vector<int64_t>(x.rank(), kUnknownDim)));
  return absl::OkStatus();
}

class SliceOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> begin, VectorInts(ctx->input(1), "begin"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> size, VectorInts(ctx->input(2), "size"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, ResolveSlice(x.shape(), begin, size));
    TensorShape out_shape = TensorShape(absl::Span<const int64_t>(sizes));
    // Only the first dimension cut: the result is a contiguous range and shares the buffer.
    bool rows_only = x.rank() >= 1;
    for (int i = 1; i < x.rank(); ++i) rows_only &= begin[i] == 0 && sizes[i] == x.dim(i);
    if (x.rank() == 0 || out_shape == x.shape()) {
      ctx->set_output(0, x);
      return absl::OkStatus();
    }
    if (rows_only) {
      ctx->set_output(0, x.Slice(begin[0], begin[0] + sizes[0]));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, out_shape));
    if (y->num_elements() == 0) return absl::OkStatus();
    return SwitchByElementSize(x.dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      return SwitchByRank(x.rank(), [&](auto rank_c) {
        constexpr int N = decltype(rank_c)::value;
        Eigen::array<Eigen::DenseIndex, N> offsets, extents;
        for (int i = 0; i < N; ++i) {
          offsets[i] = begin[i];
          extents[i] = sizes[i];
        }
        EvalExpr(*ctx, y->tensor<S, N>(), x.tensor<S, N>().slice(offsets, extents));
        return absl::OkStatus();
      });
    });
  }
};

absl::Status RegisterSlice(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Slice")
          .Input("input: T")
          .Input("begin: Index")
          .Input("size: Index")
          .Output("output: T")
          .Attr("T: type")
          .Attr("Index: {int32, int64} = int32")
          .Doc("The box of `input` starting at `begin` with extent `size` per dimension; a size "
               "of -1 takes the rest of that dimension.")
          .SetShapeFn(SliceShape)));
  return RegisterUntyped<SliceOp>(kernels, "Slice");
}

// ------------------------------------------------------------------------------------------
// Cast

template <typename Src, typename Dst>
void CastFlat(const OpKernelContext& ctx, const Tensor& x, Tensor* y, Src, Dst) {
  if constexpr (std::is_same_v<Dst, bool>) {
    // Spelled out as x != 0 so the meaning does not rest on Eigen's cast.
    EvalExpr(ctx, y->flat<bool>(), x.flat<Src>() != x.flat<Src>().constant(Src(0)));
  } else {
    EvalExpr(ctx, y->flat<Dst>(), x.flat<Src>().template cast<Dst>());
  }
}

class CastOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const DType dst = node().output_type(0);
    if (x.dtype() == dst) {
      ctx->set_output(0, x);
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, x.shape()));
    absl::Status status = absl::OkStatus();
    SLUICE_SWITCH_DTYPE(
        x.dtype(), Src,
        {
          SLUICE_SWITCH_DTYPE(
              dst, Dst, { CastFlat(*ctx, x, y, Src(), Dst()); },
              { status = absl::InvalidArgumentError("Cast: unsupported destination dtype"); });
        },
        { status = absl::InvalidArgumentError("Cast: unsupported source dtype"); });
    return status;
  }
};

absl::Status RegisterCast(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Cast")
          .Input("x: SrcT")
          .Output("y: DstT")
          .Attr("SrcT: type")
          .Attr("DstT: type")
          .Doc("Converts x to DstT. Floating to integer truncates toward zero; to bool gives "
               "x != 0; from bool gives 0 or 1.")
          .SetShapeFn(UnchangedShape)));
  // Neither "T" nor "dtype": KernelDTypeOf gives kInvalid, which this one kernel serves.
  return kernels->Register("Cast", kDeviceCpu, DType::kInvalid, MakeKernel<CastOp>);
}

// ------------------------------------------------------------------------------------------
// Fill, ZerosLike, OnesLike

absl::StatusOr<TensorShape> FillDims(const Tensor& dims_t) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, VectorInts(dims_t, "dims"));
  for (int64_t d : dims) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dims ", DimsString(dims), " has a negative dimension"));
    }
  }
  return TensorShape(absl::Span<const int64_t>(dims));
}

absl::Status CheckScalarValue(const TensorShape& value) {
  if (value.rank() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("value must be a scalar, got shape ", value.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status FillShape(InferenceContext* c) {
  SLUICE_RETURN_IF_ERROR(CheckScalarValue(c->input_shape(1)));
  if (const Tensor* dims = c->input_value(0)) {
    SLUICE_ASSIGN_OR_RETURN(TensorShape out, FillDims(*dims));
    c->set_output(0, std::move(out));
    return absl::OkStatus();
  }
  const TensorShape& ds = c->input_shape(0);
  c->set_output(0, ds.rank() == 1 && ds.dim(0) >= 0
                       ? TensorShape(std::vector<int64_t>(ds.dim(0), kUnknownDim))
                       : TensorShape::UnknownRank());
  return absl::OkStatus();
}

template <typename T>
class FillOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(TensorShape shape, FillDims(ctx->input(0)));
    const Tensor& value = ctx->input(1);
    SLUICE_RETURN_IF_ERROR(CheckScalarValue(value.shape()));
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, shape));
    EvalExpr(*ctx, y->flat<T>(), y->flat<T>().constant(value.scalar<T>()));
    return absl::OkStatus();
  }
};

template <typename T>
class ZerosLikeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, ctx->input(0).shape()));
    EvalExpr(*ctx, y->flat<T>(), y->flat<T>().constant(T(0)));
    return absl::OkStatus();
  }
};

template <typename T>
class OnesLikeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, ctx->input(0).shape()));
    EvalExpr(*ctx, y->flat<T>(), y->flat<T>().constant(T(1)));
    return absl::OkStatus();
  }
};

absl::Status RegisterFillLike(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Fill")
          .Input("dims: index_type")
          .Input("value: T")
          .Output("output: T")
          .Attr("T: type")
          .Attr("index_type: {int32, int64} = int32")
          .Doc("A tensor of shape `dims` (a vector) with every element equal to the scalar "
               "`value`.")
          .SetShapeFn(FillShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<FillOp, float, double, int32_t, int64_t, bool>(kernels, "Fill")));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("ZerosLike")
                        .Input("x: T")
                        .Output("y: T")
                        .Attr("T: type")
                        .Doc("Zeros (false for bool) with the shape and dtype of x.")
                        .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<ZerosLikeOp, float, double, int32_t, int64_t, bool>(
      kernels, "ZerosLike")));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("OnesLike")
                        .Input("x: T")
                        .Output("y: T")
                        .Attr("T: type")
                        .Doc("Ones (true for bool) with the shape and dtype of x.")
                        .SetShapeFn(UnchangedShape)));
  return RegisterCpuKernels<OnesLikeOp, float, double, int32_t, int64_t, bool>(kernels, "OnesLike");
}

}  // namespace

absl::Status RegisterArrayOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterReshape(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterTranspose(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterConcat(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterSplit(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterSlice(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterCast(ops, kernels));
  SLUICE_RETURN_IF_ERROR(array_internal::RegisterIndexOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(array_internal::RegisterTilePadOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(array_internal::RegisterPartitionOps(ops, kernels));
  return RegisterFillLike(ops, kernels);
}

namespace ops {

Output Reshape(const Scope& scope, Input x, Input shape, SourceLocation loc) {
  return BuildOp(scope, "Reshape", {x, shape}, {}, loc);
}

Output Transpose(const Scope& scope, Input x, Input perm, SourceLocation loc) {
  return BuildOp(scope, "Transpose", {x, perm}, {}, loc);
}

Output Concat(const Scope& scope, const std::vector<Output>& values, Input axis,
              SourceLocation loc) {
  std::vector<Input> inputs(values.begin(), values.end());
  inputs.push_back(axis);
  return BuildOp(scope, "Concat", inputs, {{"N", AttrValue(static_cast<int64_t>(values.size()))}},
                 loc);
}

std::vector<Output> Split(const Scope& scope, Input axis, Input value, int num_split,
                          SourceLocation loc) {
  return AllOutputs(
      BuildNode(scope, "Split", {axis, value}, {{"num_split", AttrValue(num_split)}}, loc));
}

Output Slice(const Scope& scope, Input x, Input begin, Input size, SourceLocation loc) {
  return BuildOp(scope, "Slice", {x, begin, size}, {}, loc);
}

Output Cast(const Scope& scope, Input x, DType dst, SourceLocation loc) {
  return BuildOp(scope, "Cast", {x}, {{"DstT", AttrValue(dst)}}, loc);
}

Output Fill(const Scope& scope, Input dims, Input value, SourceLocation loc) {
  return BuildOp(scope, "Fill", {dims, value}, {}, loc);
}

Output ZerosLike(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "ZerosLike", {x}, {}, loc);
}

Output OnesLike(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "OnesLike", {x}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
