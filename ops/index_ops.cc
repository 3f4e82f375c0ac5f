// Indexing ops: take elements of a tensor by index, or add values into a tensor by index.
//
// Every kernel here moves whole contiguous slices: a tensor is viewed as [outer, n, inner]
// around the indexed dimension, so gathering or scattering one index copies (or adds) `inner`
// consecutive elements. Indices are checked before anything is written: an index out of range
// is an InvalidArgument error naming its position and value, never a read or write outside the
// buffer.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
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

// The shape [d_0 .. d_{axis-1}] + `middle` + [d_{axis+1} ..] of `s` (unknown rank stays unknown).
TensorShape ReplaceDim(const TensorShape& s, int axis, const TensorShape& middle) {
  if (s.unknown_rank() || middle.unknown_rank()) return TensorShape::UnknownRank();
  TensorShape out;
  for (int i = 0; i < axis; ++i) out.AddDim(s.dim(i));
  for (int64_t d : middle.dims()) out.AddDim(d);
  for (int i = axis + 1; i < s.rank(); ++i) out.AddDim(s.dim(i));
  return out;
}

// InvalidArgument unless every index is in [0, n).
absl::Status CheckIndices(const std::vector<int64_t>& indices, int64_t n, absl::string_view what) {
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "[", i, "] = ", indices[i], " is not in [0, ", n, ")"));
    }
  }
  return absl::OkStatus();
}

// out viewed as [outer, n, inner] gets data viewed as [outer, k, inner] added along the middle
// dimension at rows `indices` (k of them, checked): out[o, indices[j], :] += data[o, j, :].
absl::Status ScatterAddRows(const Tensor& data, const std::vector<int64_t>& indices, int64_t outer,
                            int64_t n, int64_t inner, Tensor* out) {
  std::memset(out->raw_data(), 0, out->TotalBytes());
  const int64_t k = static_cast<int64_t>(indices.size());
  return SwitchNumeric(data.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* src = data.data<T>();
    T* dst = out->data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < k; ++j) {
        const T* from = src + (o * k + j) * inner;
        T* to = dst + (o * n + indices[j]) * inner;
        for (int64_t e = 0; e < inner; ++e) to[e] += from[e];
      }
    }
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------------------------------
// Gather

absl::Status GatherShape(InferenceContext* c) {
  const TensorShape& params = c->input_shape(0);
  const Tensor* axis_v = c->input_value(2);
  if (axis_v == nullptr || params.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axis, TensorToInt64s(*axis_v, "axis"));
  if (axis.size() != 1 || axis_v->rank() != 0) {
    return absl::InvalidArgumentError("axis must be a scalar");
  }
  if (params.rank() == 0) return absl::InvalidArgumentError("params must be at least a vector");
  SLUICE_ASSIGN_OR_RETURN(int a, CanonicalAxis(axis[0], params.rank()));
  c->set_output(0, ReplaceDim(params, a, c->input_shape(1)));
  return absl::OkStatus();
}

class GatherOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& params = ctx->input(0);
    const Tensor& indices_t = ctx->input(1);
    if (params.rank() == 0) return absl::InvalidArgumentError("params must be at least a vector");
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, TensorToInt64s(ctx->input(2), "axis"));
    if (axis_v.size() != 1) return absl::InvalidArgumentError("axis must be a scalar");
    SLUICE_ASSIGN_OR_RETURN(int axis, CanonicalAxis(axis_v[0], params.rank()));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> indices, IndexValues(indices_t, "indices"));
    const int64_t n = params.dim(axis);
    SLUICE_RETURN_IF_ERROR(CheckIndices(indices, n, "indices"));
    SLUICE_ASSIGN_OR_RETURN(
        Tensor * out, ctx->allocate_output(0, ReplaceDim(params.shape(), axis, indices_t.shape())));
    const int64_t outer = DimProduct(params.shape(), 0, axis);
    const size_t slice_bytes =
        DimProduct(params.shape(), axis + 1, params.rank()) * DTypeSize(params.dtype());
    const char* src = static_cast<const char*>(params.raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    if (slice_bytes == 0 || indices.empty() || outer == 0) return absl::OkStatus();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t index : indices) {
        std::memcpy(dst, src + (o * n + index) * slice_bytes, slice_bytes);
        dst += slice_bytes;
      }
    }
    return absl::OkStatus();
  }
};

// The dense gradient of Gather: `grad` (shape params[:axis] + indices + params[axis+1:]) added
// into a zero tensor of `params_shape` at the gathered positions.
class GatherGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> indices, IndexValues(ctx->input(1), "indices"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                            TensorToInt64s(ctx->input(2), "params_shape"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, TensorToInt64s(ctx->input(3), "axis"));
    const TensorShape params_shape{absl::Span<const int64_t>(dims)};
    if (axis_v.size() != 1 || params_shape.rank() == 0) {
      return absl::InvalidArgumentError("GatherGrad: axis must be a scalar, params a tensor");
    }
    SLUICE_ASSIGN_OR_RETURN(int axis, CanonicalAxis(axis_v[0], params_shape.rank()));
    const TensorShape expected = ReplaceDim(params_shape, axis, ctx->input(1).shape());
    if (grad.shape() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gradient of shape ", grad.shape().DebugString(), ", expected ", expected.DebugString()));
    }
    const int64_t n = params_shape.dim(axis);
    SLUICE_RETURN_IF_ERROR(CheckIndices(indices, n, "indices"));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, params_shape));
    return ScatterAddRows(grad, indices, DimProduct(params_shape, 0, axis), n,
                          DimProduct(params_shape, axis + 1, params_shape.rank()), out);
  }
};

// ------------------------------------------------------------------------------------------
// UnsortedSegmentSum

absl::Status SegmentSumShape(InferenceContext* c) {
  const TensorShape& data = c->input_shape(0);
  const TensorShape& ids = c->input_shape(1);
  const Tensor* num_v = c->input_value(2);
  if (data.unknown_rank() || ids.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  if (ids.rank() > data.rank()) {
    return absl::InvalidArgumentError(absl::StrCat("segment_ids of shape ", ids.DebugString(),
                                                   " must be a prefix of data's shape ",
                                                   data.DebugString()));
  }
  TensorShape out;
  int64_t num = kUnknownDim;
  if (num_v != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> v, TensorToInt64s(*num_v, "num_segments"));
    if (v.size() == 1) num = v[0];
  }
  out.AddDim(num);
  for (int i = ids.rank(); i < data.rank(); ++i) out.AddDim(data.dim(i));
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class UnsortedSegmentSumOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& data = ctx->input(0);
    const Tensor& ids_t = ctx->input(1);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> num_v,
                            TensorToInt64s(ctx->input(2), "num_segments"));
    if (num_v.size() != 1 || num_v[0] < 0) {
      return absl::InvalidArgumentError("num_segments must be a non-negative scalar");
    }
    bool prefix = ids_t.rank() <= data.rank();
    for (int i = 0; prefix && i < ids_t.rank(); ++i) prefix = ids_t.dim(i) == data.dim(i);
    if (!prefix) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment_ids of shape ", ids_t.shape().DebugString(),
                       " must be a prefix of data's shape ", data.shape().DebugString()));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> ids, IndexValues(ids_t, "segment_ids"));
    SLUICE_RETURN_IF_ERROR(CheckIndices(ids, num_v[0], "segment_ids"));
    TensorShape out_shape({num_v[0]});
    for (int i = ids_t.rank(); i < data.rank(); ++i) out_shape.AddDim(data.dim(i));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    return ScatterAddRows(data, ids, 1, num_v[0],
                          DimProduct(data.shape(), ids_t.rank(), data.rank()), out);
  }
};

// ------------------------------------------------------------------------------------------
// GatherNd, ScatterNd

// The flat slice numbers that the index tuples (last dimension of `indices`) name in `shape`,
// with the elements per slice; InvalidArgument naming the first tuple out of range.
absl::Status NdSlices(const Tensor& indices_t, const TensorShape& shape,
                      std::vector<int64_t>* slices, int64_t* slice_elems) {
  if (indices_t.rank() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("indices must be at least a vector, got shape ",
                                                   indices_t.shape().DebugString()));
  }
  const int depth = static_cast<int>(indices_t.dim(indices_t.rank() - 1));
  if (depth > shape.rank()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "index tuples of length ", depth, " cannot index a tensor of shape ", shape.DebugString()));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> flat, IndexValues(indices_t, "indices"));
  const int64_t count = depth == 0 ? indices_t.num_elements() : flat.size() / depth;
  *slice_elems = DimProduct(shape, depth, shape.rank());
  slices->assign(depth == 0 ? DimProduct(indices_t.shape(), 0, indices_t.rank() - 1) : count, 0);
  for (int64_t i = 0; depth > 0 && i < count; ++i) {
    int64_t slice = 0;
    for (int d = 0; d < depth; ++d) {
      const int64_t v = flat[i * depth + d];
      if (v < 0 || v >= shape.dim(d)) {
        std::vector<int64_t> tuple(flat.begin() + i * depth, flat.begin() + (i + 1) * depth);
        return absl::InvalidArgumentError(absl::StrCat("index ", DimsString(tuple), " (tuple ", i,
                                                       ") is out of bounds for shape ",
                                                       shape.DebugString()));
      }
      slice = slice * shape.dim(d) + v;
    }
    (*slices)[i] = slice;
  }
  return absl::OkStatus();
}

absl::Status GatherNdShape(InferenceContext* c) {
  const TensorShape& params = c->input_shape(0);
  const TensorShape& indices = c->input_shape(1);
  if (params.unknown_rank() || indices.unknown_rank() || indices.rank() == 0 ||
      indices.dim(indices.rank() - 1) < 0) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  const int64_t depth = indices.dim(indices.rank() - 1);
  if (depth > params.rank()) {
    return absl::InvalidArgumentError(absl::StrCat("index tuples of length ", depth,
                                                   " cannot index a tensor of shape ",
                                                   params.DebugString()));
  }
  TensorShape out;
  for (int i = 0; i + 1 < indices.rank(); ++i) out.AddDim(indices.dim(i));
  for (int i = static_cast<int>(depth); i < params.rank(); ++i) out.AddDim(params.dim(i));
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class GatherNdOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& params = ctx->input(0);
    const Tensor& indices = ctx->input(1);
    std::vector<int64_t> slices;
    int64_t slice_elems = 0;
    SLUICE_RETURN_IF_ERROR(NdSlices(indices, params.shape(), &slices, &slice_elems));
    TensorShape out_shape;
    for (int i = 0; i + 1 < indices.rank(); ++i) out_shape.AddDim(indices.dim(i));
    const int depth = static_cast<int>(indices.dim(indices.rank() - 1));
    for (int i = depth; i < params.rank(); ++i) out_shape.AddDim(params.dim(i));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    const size_t bytes = slice_elems * DTypeSize(params.dtype());
    if (bytes == 0) return absl::OkStatus();
    char* dst = static_cast<char*>(out->raw_data());
    for (int64_t s : slices) {
      std::memcpy(dst, static_cast<const char*>(params.raw_data()) + s * bytes, bytes);
      dst += bytes;
    }
    return absl::OkStatus();
  }
};

class ScatterNdOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& indices = ctx->input(0);
    const Tensor& updates = ctx->input(1);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, TensorToInt64s(ctx->input(2), "shape"));
    for (int64_t d : dims) {
      if (d < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("shape ", DimsString(dims), " has a negative dimension"));
    }
    const TensorShape shape{absl::Span<const int64_t>(dims)};
    std::vector<int64_t> slices;
    int64_t slice_elems = 0;
    SLUICE_RETURN_IF_ERROR(NdSlices(indices, shape, &slices, &slice_elems));
    TensorShape expected;
    for (int i = 0; i + 1 < indices.rank(); ++i) expected.AddDim(indices.dim(i));
    for (int i = static_cast<int>(indices.dim(indices.rank() - 1)); i < shape.rank(); ++i) {
      expected.AddDim(shape.dim(i));
    }
    if (updates.shape() != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("updates of shape ", updates.shape().DebugString(), " do not match ",
                       expected.DebugString(), " (indices ", indices.shape().DebugString(),
                       " into shape ", shape.DebugString(), ")"));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, shape));
    return ScatterAddRows(updates, slices, 1,
                          shape.num_elements() / std::max<int64_t>(slice_elems, 1), slice_elems,
                          out);
  }
};

absl::Status ScatterNdShape(InferenceContext* c) { return OutputShapeFromInput(c, 2, 0); }

// ------------------------------------------------------------------------------------------
// OneHot

absl::Status OneHotShape(InferenceContext* c) {
  const TensorShape& indices = c->input_shape(0);
  SLUICE_ASSIGN_OR_RETURN(int64_t axis, c->GetAttr<int64_t>("axis"));
  if (indices.unknown_rank()) {
    c->set_output(0, TensorShape::UnknownRank());
    return absl::OkStatus();
  }
  if (axis < -1 || axis > indices.rank()) {
    return absl::InvalidArgumentError(absl::StrCat("axis ", axis, " is out of range for indices ",
                                                   "of rank ", indices.rank(), " (expected -1 to ",
                                                   indices.rank(), ")"));
  }
  int64_t depth = kUnknownDim;
  if (const Tensor* d = c->input_value(1)) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> v, TensorToInt64s(*d, "depth"));
    if (v.size() == 1) depth = v[0];
  }
  TensorShape out = indices;
  out.InsertDim(axis == -1 ? indices.rank() : static_cast<int>(axis), depth);
  c->set_output(0, std::move(out));
  return absl::OkStatus();
}

class OneHotOp : public OpKernel {
 public:
  explicit OneHotOp(const Node& node) : OpKernel(node), axis_(Attr<int64_t>("axis")) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& indices_t = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> depth_v, TensorToInt64s(ctx->input(1), "depth"));
    if (depth_v.size() != 1 || depth_v[0] < 0) {
      return absl::InvalidArgumentError("depth must be a non-negative scalar");
    }
    const Tensor& on = ctx->input(2);
    const Tensor& off = ctx->input(3);
    if (on.num_elements() != 1 || off.num_elements() != 1) {
      return absl::InvalidArgumentError("on_value and off_value must be scalars");
    }
    if (axis_ < -1 || axis_ > indices_t.rank()) {
      return absl::InvalidArgumentError(absl::StrCat("axis ", axis_, " is out of range for ",
                                                     "indices of rank ", indices_t.rank()));
    }
    const int axis = axis_ == -1 ? indices_t.rank() : static_cast<int>(axis_);
    const int64_t depth = depth_v[0];
    TensorShape out_shape = indices_t.shape();
    out_shape.InsertDim(axis, depth);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> indices, IndexValues(indices_t, "indices"));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, out_shape));
    // indices viewed as [outer, inner] around the new axis; out as [outer, depth, inner].
    const int64_t outer = DimProduct(indices_t.shape(), 0, axis);
    const int64_t inner = DimProduct(indices_t.shape(), axis, indices_t.rank());
    const size_t size = DTypeSize(on.dtype());
    char* dst = static_cast<char*>(out->raw_data());
    for (int64_t i = 0; i < out->num_elements(); ++i) {
      std::memcpy(dst + i * size, off.raw_data(), size);
    }
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t index = indices[o * inner + j];
        if (index < 0 || index >= depth) continue;  // TF's rule: a row of off_value.
        std::memcpy(dst + ((o * depth + index) * inner + j) * size, on.raw_data(), size);
      }
    }
    return absl::OkStatus();
  }

 private:
  const int64_t axis_;
};

// ------------------------------------------------------------------------------------------
// InTopK

absl::Status InTopKShape(InferenceContext* c) {
  const TensorShape& p = c->input_shape(0);
  if (!p.unknown_rank() && p.rank() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("predictions must be a matrix [batch, classes], got shape ", p.DebugString()));
  }
  c->set_output(0, TensorShape({p.unknown_rank() ? kUnknownDim : p.dim(0)}));
  return absl::OkStatus();
}

template <typename T>
class InTopKOp : public OpKernel {
 public:
  explicit InTopKOp(const Node& node) : OpKernel(node), k_(Attr<int64_t>("k")) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& predictions = ctx->input(0);
    SLUICE_RETURN_IF_ERROR(CheckRank(predictions, 2, "predictions"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> targets, IndexValues(ctx->input(1), "targets"));
    const int64_t batch = predictions.dim(0), classes = predictions.dim(1);
    if (ctx->input(1).rank() != 1 || static_cast<int64_t>(targets.size()) != batch) {
      return absl::InvalidArgumentError(absl::StrCat("targets must be a vector of ", batch,
                                                     " class ids, got shape ",
                                                     ctx->input(1).shape().DebugString()));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, TensorShape({batch})));
    const T* p = predictions.data<T>();
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t t = targets[b];
      bool in = false;
      // TensorFlow's rule: a target is in the top k when fewer than k classes score strictly
      // higher (so ties all count as in); an out-of-range target or a non-finite score is not.
      if (t >= 0 && t < classes && std::isfinite(static_cast<double>(p[b * classes + t]))) {
        const T target = p[b * classes + t];
        int64_t higher = 0;
        for (int64_t c = 0; c < classes; ++c) higher += p[b * classes + c] > target;
        in = higher < k_;
      }
      out->data<bool>()[b] = in;
    }
    return absl::OkStatus();
  }

 private:
  const int64_t k_;
};

// ------------------------------------------------------------------------------------------
// Range

// The number of values start, start + delta, ... before limit; InvalidArgument for a zero
// delta, a delta pointing away from limit, or a count past int64 (NaN and infinities too).
absl::StatusOr<int64_t> RangeSize(double start, double limit, double delta) {
  if (delta == 0) return absl::InvalidArgumentError("Range: delta must not be 0");
  if ((delta > 0 && start > limit) || (delta < 0 && start < limit)) {
    return absl::InvalidArgumentError(absl::StrCat("Range: start ", start,
                                                   delta > 0 ? " > limit " : " < limit ", limit,
                                                   " with delta ", delta));
  }
  const double count = std::ceil((limit - start) / delta);
  if (!(count >= 0 && count < 9.0e18)) {
    return absl::InvalidArgumentError(absl::StrCat("Range: start ", start, ", limit ", limit,
                                                   ", delta ", delta, " give too many values"));
  }
  return static_cast<int64_t>(count);
}

absl::StatusOr<double> ScalarValue(const Tensor& t, absl::string_view what) {
  if (t.num_elements() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a scalar, got shape ", t.shape().DebugString()));
  }
  double v = 0;
  SLUICE_RETURN_IF_ERROR(SwitchNumeric(t.dtype(), [&](auto tag) {
    v = static_cast<double>(t.data<typename decltype(tag)::type>()[0]);
    return absl::OkStatus();
  }));
  return v;
}

absl::Status RangeShape(InferenceContext* c) {
  const Tensor* start = c->input_value(0);
  const Tensor* limit = c->input_value(1);
  const Tensor* delta = c->input_value(2);
  if (start == nullptr || limit == nullptr || delta == nullptr) {
    c->set_output(0, TensorShape({kUnknownDim}));
    return absl::OkStatus();
  }
  SLUICE_ASSIGN_OR_RETURN(double s, ScalarValue(*start, "start"));
  SLUICE_ASSIGN_OR_RETURN(double l, ScalarValue(*limit, "limit"));
  SLUICE_ASSIGN_OR_RETURN(double d, ScalarValue(*delta, "delta"));
  SLUICE_ASSIGN_OR_RETURN(int64_t n, RangeSize(s, l, d));
  c->set_output(0, TensorShape({n}));
  return absl::OkStatus();
}

template <typename T>
class RangeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(double start, ScalarValue(ctx->input(0), "start"));
    SLUICE_ASSIGN_OR_RETURN(double limit, ScalarValue(ctx->input(1), "limit"));
    SLUICE_ASSIGN_OR_RETURN(double delta, ScalarValue(ctx->input(2), "delta"));
    SLUICE_ASSIGN_OR_RETURN(int64_t n, RangeSize(start, limit, delta));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, TensorShape({n})));
    const T first = ctx->input(0).data<T>()[0];
    const T step = ctx->input(2).data<T>()[0];
    T* y = out->data<T>();
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(first + static_cast<T>(i) * step);
    return absl::OkStatus();
  }
};

}  // namespace

namespace array_internal {

absl::Status RegisterIndexOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Gather")
          .Input("params: T")
          .Input("indices: Tindices")
          .Input("axis: Taxis")
          .Output("output: T")
          .Attr("T: type")
          .Attr("Tindices: {int32, int64} = int32")
          .Attr("Taxis: {int32, int64} = int32")
          .Doc("Slices of `params` along `axis` at `indices` (any shape): the output's shape is "
               "params.shape[:axis] + indices.shape + params.shape[axis+1:]. An index outside "
               "[0, params.shape[axis]) is an error.")
          .SetShapeFn(GatherShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("GatherGrad")
          .Input("grad: T")
          .Input("indices: Tindices")
          .Input("params_shape: int64")
          .Input("axis: Taxis")
          .Output("output: T")
          .Attr("T: {float32, float64, int32, int64}")
          .Attr("Tindices: {int32, int64} = int32")
          .Attr("Taxis: {int32, int64} = int32")
          .Doc("The gradient of Gather: `grad` added into zeros of `params_shape` at the "
               "gathered positions (repeated indices add up).")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 2, 0); })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("UnsortedSegmentSum")
          .Input("data: T")
          .Input("segment_ids: Tindices")
          .Input("num_segments: Tnum")
          .Output("output: T")
          .Attr("T: {float32, float64, int32, int64}")
          .Attr("Tindices: {int32, int64} = int32")
          .Attr("Tnum: {int32, int64} = int32")
          .Doc("output[i] = sum of data[j...] over the j... with segment_ids[j...] == i; "
               "segment_ids' shape is a prefix of data's; an id outside [0, num_segments) is an "
               "error.")
          .SetShapeFn(SegmentSumShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("GatherNd")
          .Input("params: T")
          .Input("indices: Tindices")
          .Output("output: T")
          .Attr("T: type")
          .Attr("Tindices: {int32, int64} = int32")
          .Doc("The slices of `params` named by the index tuples in the last dimension of "
               "`indices`: shape indices.shape[:-1] + params.shape[K:], K the tuple length.")
          .SetShapeFn(GatherNdShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ScatterNd")
          .Input("indices: Tindices")
          .Input("updates: T")
          .Input("shape: Tshape")
          .Output("output: T")
          .Attr("T: {float32, float64, int32, int64}")
          .Attr("Tindices: {int32, int64} = int32")
          .Attr("Tshape: {int32, int64} = int64")
          .Doc("Zeros of `shape` with `updates` added at the slices the index tuples name "
               "(repeated tuples add up): the inverse of GatherNd.")
          .SetShapeFn(ScatterNdShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("OneHot")
          .Input("indices: TI")
          .Input("depth: int32")
          .Input("on_value: T")
          .Input("off_value: T")
          .Output("output: T")
          .Attr("T: type")
          .Attr("TI: {int32, int64} = int64")
          .Attr("axis: int = -1")
          .Doc("A new dimension of size `depth` at `axis` (-1: last) holding on_value at each "
               "index and off_value elsewhere; an index outside [0, depth) gives all off_value.")
          .SetShapeFn(OneHotShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("InTopK")
          .Input("predictions: T")
          .Input("targets: Tindices")
          .Output("precision: bool")
          .Attr("T: {float32, float64}")
          .Attr("Tindices: {int32, int64} = int32")
          .Attr("k: int")
          .Doc("Whether each row's target class is among its k highest predictions (fewer than "
               "k classes score strictly higher, so ties count as in).")
          .SetShapeFn(InTopKShape)));
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(kernels->Register("Gather", kDeviceCpu, dt, MakeKernel<GatherOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("GatherNd", kDeviceCpu, dt, MakeKernel<GatherNdOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("OneHot", kDeviceCpu, dt, MakeKernel<OneHotOp>));
  }
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64}) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("GatherGrad", kDeviceCpu, dt, MakeKernel<GatherGradOp>));
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("UnsortedSegmentSum", kDeviceCpu, dt, MakeKernel<UnsortedSegmentSumOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("ScatterNd", kDeviceCpu, dt, MakeKernel<ScatterNdOp>));
  }
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Range")
          .Input("start: T")
          .Input("limit: T")
          .Input("delta: T")
          .Output("output: T")
          .Attr("T: {float32, float64, int32, int64} = int32")
          .Doc("start, start + delta, ... up to but not including limit (TensorFlow's Range); "
               "a zero delta, or one pointing away from limit, is an error.")
          .SetShapeFn(RangeShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<RangeOp, float, double, int32_t, int64_t>(kernels, "Range")));
  return RegisterCpuKernels<InTopKOp, float, double>(kernels, "InTopK");
}

}  // namespace array_internal

namespace ops {

Output Gather(const Scope& scope, Input params, Input indices, Input axis, SourceLocation loc) {
  return BuildOp(scope, "Gather", {params, indices, axis}, {}, loc);
}
Output GatherGrad(const Scope& scope, Input grad, Input indices, Input params_shape, Input axis,
                  SourceLocation loc) {
  return BuildOp(scope, "GatherGrad", {grad, indices, params_shape, axis}, {}, loc);
}
Output UnsortedSegmentSum(const Scope& scope, Input data, Input segment_ids, Input num_segments,
                          SourceLocation loc) {
  return BuildOp(scope, "UnsortedSegmentSum", {data, segment_ids, num_segments}, {}, loc);
}
Output GatherNd(const Scope& scope, Input params, Input indices, SourceLocation loc) {
  return BuildOp(scope, "GatherNd", {params, indices}, {}, loc);
}
Output ScatterNd(const Scope& scope, Input indices, Input updates, Input shape,
                 SourceLocation loc) {
  return BuildOp(scope, "ScatterNd", {indices, updates, shape}, {}, loc);
}
Output OneHot(const Scope& scope, Input indices, Input depth, Input on_value, Input off_value,
              int64_t axis, SourceLocation loc) {
  return BuildOp(scope, "OneHot", {indices, depth, on_value, off_value},
                 {{"axis", AttrValue(axis)}}, loc);
}
Output Range(const Scope& scope, Input start, Input limit, Input delta, SourceLocation loc) {
  return BuildOp(scope, "Range", {start, limit, delta}, {}, loc);
}
Output InTopK(const Scope& scope, Input predictions, Input targets, int64_t k, SourceLocation loc) {
  return BuildOp(scope, "InTopK", {predictions, targets}, {{"k", AttrValue(k)}}, loc);
}

}  // namespace ops
}  // namespace sluice
