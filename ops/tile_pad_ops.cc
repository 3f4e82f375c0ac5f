// Tile and Pad, with the helper ops their gradients use.
//
// Both copy whole rows (the last dimension) with memcpy, so one kernel serves every dtype and
// rank: a row-major walk over the other dimensions maps each row of one tensor to its row in
// the other. A scalar is treated as a tensor of shape [1].

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/array_ops.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

constexpr DType kAllTypes[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64,
                               DType::kBool};

// dims, with a scalar's empty dims read as [1].
std::vector<int64_t> RowDims(const TensorShape& s) {
  return s.rank() == 0 ? std::vector<int64_t>{1} : s.dims();
}

// Calls f(row, coords) for every row of `dims` (coords: indices in dims[0 .. rank-2]) in
// row-major order.
template <typename F>
void ForEachRow(const std::vector<int64_t>& dims, F&& f) {
  const int lead = static_cast<int>(dims.size()) - 1;
  int64_t rows = 1;
  for (int i = 0; i < lead; ++i) rows *= dims[i];
  std::vector<int64_t> coords(lead, 0);
  for (int64_t row = 0; row < rows; ++row) {
    f(row, coords);
    for (int i = lead - 1; i >= 0; --i) {
      if (++coords[i] < dims[i]) break;
      coords[i] = 0;
    }
  }
}

// The row number of `coords` (shifted by `offset`, modulo `mod` when given) in `dims`.
int64_t RowOf(const std::vector<int64_t>& coords, const std::vector<int64_t>& dims,
              const std::vector<int64_t>* offset, bool modulo) {
  int64_t row = 0;
  for (size_t i = 0; i < coords.size(); ++i) {
    int64_t c = coords[i] + (offset ? (*offset)[i] : 0);
    if (modulo) c %= dims[i];
    row = row * dims[i] + c;
  }
  return row;
}

// ------------------------------------------------------------------------------------------
// Tile

absl::StatusOr<std::vector<int64_t>> Multiples(const Tensor& t, int rank) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> m, TensorToInt64s(t, "multiples"));
  if (t.rank() != 1 || static_cast<int>(m.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat("multiples must be a vector of ", rank,
                                                   " entries (one per dimension of ",
                                                   "the input), got ", DimsString(m)));
  }
  for (int64_t v : m) {
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("multiples ", DimsString(m), " has a negative entry"));
    }
  }
  return m;
}

absl::Status TileShape(InferenceContext* c) {
  const TensorShape& x = c->input_shape(0);
  const Tensor* m_v = c->input_value(1);
  if (x.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  TensorShape out = x;
  if (m_v == nullptr) {
    for (int i = 0; i < x.rank(); ++i) out.set_dim(i, kUnknownDim);
  } else {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> m, Multiples(*m_v, x.rank()));
    for (int i = 0; i < x.rank(); ++i) out.set_dim(i, x.dim(i) < 0 ? kUnknownDim : x.dim(i) * m[i]);
  }
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class TileOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> m, Multiples(ctx->input(1), x.rank()));
    TensorShape out_shape = x.shape();
    for (int i = 0; i < x.rank(); ++i) {
      int64_t d = 0;
      if (__builtin_mul_overflow(x.dim(i), m[i], &d)) {
        return absl::InvalidArgumentError(absl::StrCat("tiling ", x.shape().DebugString(), " by ",
                                                       DimsString(m), " overflows int64"));
      }
      out_shape.set_dim(i, d);
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    if (out->num_elements() == 0) return absl::OkStatus();
    const std::vector<int64_t> in_dims = RowDims(x.shape()), out_dims = RowDims(out_shape);
    const size_t row_bytes = in_dims.back() * DTypeSize(x.dtype());
    const int64_t copies = out_dims.back() / in_dims.back();
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    ForEachRow(out_dims, [&](int64_t row, const std::vector<int64_t>& coords) {
      const char* from = src + RowOf(coords, in_dims, nullptr, true) * row_bytes;
      char* to = dst + row * row_bytes * copies;
      for (int64_t k = 0; k < copies; ++k) std::memcpy(to + k * row_bytes, from, row_bytes);
    });
    return absl::OkStatus();
  }
};

// The gradient of Tile: `grad` summed over the copies, back to `input_shape` (given, since a
// multiple of 0 leaves no trace of the input's size in the gradient).
class TileGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> m, Multiples(ctx->input(1), grad.rank()));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                            TensorToInt64s(ctx->input(2), "input_shape"));
    const TensorShape in_shape{absl::Span<const int64_t>(dims)};
    bool tiling = in_shape.rank() == grad.rank();
    for (int i = 0; tiling && i < grad.rank(); ++i) {
      tiling = in_shape.dim(i) >= 0 && in_shape.dim(i) * m[i] == grad.dim(i);
    }
    if (!tiling) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TileGrad: gradient of shape ", grad.shape().DebugString(), " is not input shape ",
          in_shape.DebugString(), " tiled by ", DimsString(m)));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, in_shape));
    std::memset(out->raw_data(), 0, out->TotalBytes());
    if (grad.num_elements() == 0) return absl::OkStatus();
    const std::vector<int64_t> in_dims = RowDims(in_shape), g_dims = RowDims(grad.shape());
    return SwitchNumeric(grad.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const int64_t in_last = in_dims.back(), g_last = g_dims.back();
      ForEachRow(g_dims, [&](int64_t row, const std::vector<int64_t>& coords) {
        T* to = out->data<T>() + RowOf(coords, in_dims, nullptr, true) * in_last;
        const T* from = grad.data<T>() + row * g_last;
        for (int64_t j = 0; j < g_last; ++j) to[j % in_last] += from[j];
      });
      return absl::OkStatus();
    });
  }
};

// ------------------------------------------------------------------------------------------
// Pad

// paddings [rank, 2] as (before, after) vectors, checked.
absl::Status ReadPaddings(const Tensor& t, int rank, std::vector<int64_t>* before,
                          std::vector<int64_t>* after) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> v, IndexValues(t, "paddings"));
  if (t.rank() != 2 || t.dim(0) != rank || t.dim(1) != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("paddings must have shape [", rank, ", 2] (before and after for each ",
                     "dimension of the input), got ", t.shape().DebugString()));
  }
  before->assign(rank, 0);
  after->assign(rank, 0);
  for (int i = 0; i < rank; ++i) {
    (*before)[i] = v[2 * i];
    (*after)[i] = v[2 * i + 1];
    if (v[2 * i] < 0 || v[2 * i + 1] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("paddings of dimension ", i,
                                                     " must be non-negative, got [", v[2 * i], ", ",
                                                     v[2 * i + 1], "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status PadShape(InferenceContext* c) {
  const TensorShape& x = c->input_shape(0);
  const Tensor* p_v = c->input_value(1);
  if (x.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  TensorShape out = x;
  if (p_v == nullptr) {
    for (int i = 0; i < x.rank(); ++i) out.set_dim(i, kUnknownDim);
  } else {
    std::vector<int64_t> before, after;
    SLUICE_RETURN_IF_ERROR(ReadPaddings(*p_v, x.rank(), &before, &after));
    for (int i = 0; i < x.rank(); ++i) {
      out.set_dim(i, x.dim(i) < 0 ? kUnknownDim : x.dim(i) + before[i] + after[i]);
    }
  }
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class PadOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& value = ctx->input(2);
    if (value.num_elements() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("constant_values must be a scalar, got shape ",
                                                     value.shape().DebugString()));
    }
    std::vector<int64_t> before, after;
    SLUICE_RETURN_IF_ERROR(ReadPaddings(ctx->input(1), x.rank(), &before, &after));
    TensorShape out_shape = x.shape();
    for (int i = 0; i < x.rank(); ++i) {
      int64_t d = 0;
      if (__builtin_add_overflow(x.dim(i), before[i], &d) ||
          __builtin_add_overflow(d, after[i], &d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("padding dimension ", i, " of ", x.shape().DebugString(), " overflows"));
      }
      out_shape.set_dim(i, d);
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    const size_t size = DTypeSize(x.dtype());
    char* dst = static_cast<char*>(out->raw_data());
    for (int64_t i = 0; i < out->num_elements(); ++i) {
      std::memcpy(dst + i * size, value.raw_data(), size);
    }
    if (x.num_elements() == 0) return absl::OkStatus();
    const std::vector<int64_t> in_dims = RowDims(x.shape()), out_dims = RowDims(out_shape);
    const int64_t in_last = in_dims.back(), out_last = out_dims.back();
    const int64_t shift = x.rank() == 0 ? 0 : before.back();
    const char* src = static_cast<const char*>(x.raw_data());
    ForEachRow(in_dims, [&](int64_t row, const std::vector<int64_t>& coords) {
      const int64_t out_row = RowOf(coords, out_dims, &before, false);
      std::memcpy(dst + (out_row * out_last + shift) * size, src + row * in_last * size,
                  in_last * size);
    });
    return absl::OkStatus();
  }
};

// The gradient of Pad: the box of `grad` that the input occupied.
class PadGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    std::vector<int64_t> before, after;
    SLUICE_RETURN_IF_ERROR(ReadPaddings(ctx->input(1), grad.rank(), &before, &after));
    TensorShape in_shape = grad.shape();
    for (int i = 0; i < grad.rank(); ++i) {
      const int64_t d = grad.dim(i) - before[i] - after[i];
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat("PadGrad: gradient of shape ",
                                                       grad.shape().DebugString(),
                                                       " is smaller than its paddings"));
      }
      in_shape.set_dim(i, d);
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, in_shape));
    if (out->num_elements() == 0) return absl::OkStatus();
    const size_t size = DTypeSize(grad.dtype());
    const std::vector<int64_t> in_dims = RowDims(in_shape), g_dims = RowDims(grad.shape());
    const int64_t in_last = in_dims.back(), g_last = g_dims.back();
    const int64_t shift = grad.rank() == 0 ? 0 : before.back();
    const char* src = static_cast<const char*>(grad.raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    ForEachRow(in_dims, [&](int64_t row, const std::vector<int64_t>& coords) {
      const int64_t g_row = RowOf(coords, g_dims, &before, false);
      std::memcpy(dst + row * in_last * size, src + (g_row * g_last + shift) * size,
                  in_last * size);
    });
    return absl::OkStatus();
  }
};

absl::Status PadGradShape(InferenceContext* c) {
  const TensorShape& g = c->input_shape(0);
  const Tensor* p_v = c->input_value(1);
  if (g.unknown_rank() || p_v == nullptr) {
    c->set_output(0, g.unknown_rank() ? TensorShape::UnknownRank()
                                      : TensorShape(std::vector<int64_t>(g.rank(), kUnknownDim)));
    return absl::OkStatus();
  }
  std::vector<int64_t> before, after;
  SLUICE_RETURN_IF_ERROR(ReadPaddings(*p_v, g.rank(), &before, &after));
  TensorShape out = g;
  for (int i = 0; i < g.rank(); ++i) {
    out.set_dim(i, g.dim(i) < 0 ? kUnknownDim : g.dim(i) - before[i] - after[i]);
  }
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

absl::Status TileGradShape(InferenceContext* c) { return OutputShapeFromInput(c, 2, 0); }

}  // namespace

namespace array_internal {

absl::Status RegisterTilePadOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("Tile")
                        .Input("input: T")
                        .Input("multiples: Tmultiples")
                        .Output("output: T")
                        .Attr("T: type")
                        .Attr("Tmultiples: {int32, int64} = int32")
                        .Doc("`input` repeated multiples[i] times along each dimension i.")
                        .SetShapeFn(TileShape)));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("TileGrad")
                        .Input("grad: T")
                        .Input("multiples: Tmultiples")
                        .Input("input_shape: int64")
                        .Output("output: T")
                        .Attr("T: {float32, float64, int32, int64}")
                        .Attr("Tmultiples: {int32, int64} = int32")
                        .Doc("The gradient of Tile: `grad` summed over the tiled copies, back "
                             "to `input_shape`.")
                        .SetShapeFn(TileGradShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Pad")
          .Input("input: T")
          .Input("paddings: Tpaddings")
          .Input("constant_values: T")
          .Output("output: T")
          .Attr("T: type")
          .Attr("Tpaddings: {int32, int64} = int32")
          .Doc("`input` with paddings[i][0] elements before and paddings[i][1] after it along "
               "each dimension i, all equal to `constant_values`.")
          .SetShapeFn(PadShape)));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("PadGrad")
                        .Input("grad: T")
                        .Input("paddings: Tpaddings")
                        .Output("output: T")
                        .Attr("T: type")
                        .Attr("Tpaddings: {int32, int64} = int32")
                        .Doc("The gradient of Pad: the part of `grad` the unpadded input occupied.")
                        .SetShapeFn(PadGradShape)));
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(kernels->Register("Tile", kDeviceCpu, dt, MakeKernel<TileOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("Pad", kDeviceCpu, dt, MakeKernel<PadOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("PadGrad", kDeviceCpu, dt, MakeKernel<PadGradOp>));
  }
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64}) {
    SLUICE_RETURN_IF_ERROR(kernels->Register("TileGrad", kDeviceCpu, dt, MakeKernel<TileGradOp>));
  }
  return absl::OkStatus();
}

}  // namespace array_internal

namespace ops {

Output Tile(const Scope& scope, Input x, Input multiples, SourceLocation loc) {
  return BuildOp(scope, "Tile", {x, multiples}, {}, loc);
}
Output TileGrad(const Scope& scope, Input grad, Input multiples, Input input_shape,
                SourceLocation loc) {
  return BuildOp(scope, "TileGrad", {grad, multiples, input_shape}, {}, loc);
}
Output Pad(const Scope& scope, Input x, Input paddings, Input constant_values, SourceLocation loc) {
  return BuildOp(scope, "Pad", {x, paddings, constant_values}, {}, loc);
}
Output PadGrad(const Scope& scope, Input grad, Input paddings, SourceLocation loc) {
  return BuildOp(scope, "PadGrad", {grad, paddings}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
