// DynamicPartition and DynamicStitch (TensorFlow's names and meaning): route the rows of a
// tensor into several outputs by a partition number per row, and merge rows back by index.
// Together they split a batch of ids over the shards of a partitioned variable so that each
// shard gathers only its own rows (nn.embedding_lookup over a PartitionedVariable).
//
// A row is the slice of `data` under one element of `partitions` (or of `indices`): its shape
// is data.shape[partitions.rank:]. Every partition number and index is checked before
// anything is written.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/array_ops.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

constexpr DType kAllTypes[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64,
                               DType::kBool};

template <typename K>
absl::Status RegisterForAllTypes(KernelRegistry* kernels, absl::string_view op) {
  for (DType dt : kAllTypes) {
    SLUICE_RETURN_IF_ERROR(kernels->Register(op, kDeviceCpu, dt, MakeKernel<K>));
  }
  return absl::OkStatus();
}

// The shape of one row: `data` without its first `prefix` dimensions, or UnknownRank.
TensorShape RowShape(const TensorShape& data, int prefix) {
  if (data.unknown_rank() || prefix < 0 || data.rank() < prefix) return TensorShape::UnknownRank();
  TensorShape row;
  for (int i = prefix; i < data.rank(); ++i) row.AddDim(data.dim(i));
  return row;
}

// [-1] + row (unknown rank stays unknown).
TensorShape RowsOf(const TensorShape& row) {
  if (row.unknown_rank()) return TensorShape::UnknownRank();
  TensorShape out({-1});
  for (int64_t d : row.dims()) out.AddDim(d);
  return out;
}

// InvalidArgument unless `prefix`'s dimensions open `data`'s.
absl::Status CheckPrefix(const TensorShape& prefix, const TensorShape& data,
                         absl::string_view prefix_name, absl::string_view data_name) {
  bool ok = data.rank() >= prefix.rank();
  for (int i = 0; ok && i < prefix.rank(); ++i) ok = prefix.dim(i) == data.dim(i);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(prefix_name, "'s shape ", prefix.DebugString(),
                                                 " must open ", data_name, "'s shape ",
                                                 data.DebugString()));
}

absl::Status DynamicPartitionShape(InferenceContext* c) {
  const TensorShape rows = RowsOf(RowShape(
      c->input_shape(0), c->input_shape(1).unknown_rank() ? -1 : c->input_shape(1).rank()));
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, rows);
  return absl::OkStatus();
}

class DynamicPartitionOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& data = ctx->input(0);
    const Tensor& partitions_t = ctx->input(1);
    const int n = node().num_outputs();
    SLUICE_RETURN_IF_ERROR(CheckPrefix(partitions_t.shape(), data.shape(), "partitions", "data"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> partitions,
                            IndexValues(partitions_t, "partitions"));
    std::vector<int64_t> counts(n, 0);
    for (size_t i = 0; i < partitions.size(); ++i) {
      if (partitions[i] < 0 || partitions[i] >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat("partitions[", i, "] = ", partitions[i], " is not in [0, ", n, ")"));
      }
      ++counts[partitions[i]];
    }
    const TensorShape row = RowShape(data.shape(), partitions_t.rank());
    const size_t row_bytes = row.num_elements() * DTypeSize(data.dtype());
    std::vector<char*> next(n);
    for (int p = 0; p < n; ++p) {
      TensorShape shape({counts[p]});
      for (int64_t d : row.dims()) shape.AddDim(d);
      SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(p, shape));
      next[p] = static_cast<char*>(out->raw_data());
    }
    if (row_bytes == 0) return absl::OkStatus();
    const char* src = static_cast<const char*>(data.raw_data());
    for (int64_t p : partitions) {
      std::memcpy(next[p], src, row_bytes);
      next[p] += row_bytes;
      src += row_bytes;
    }
    return absl::OkStatus();
  }
};

// The gradient of DynamicPartition for `data`: each partition's gradient rows go back to the
// positions its rows came from.
class DynamicPartitionGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& partitions_t = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> data_dims,
                            TensorToInt64s(ctx->input(1), "data_shape"));
    const int n = ctx->num_inputs() - 2;
    const TensorShape data_shape{absl::MakeConstSpan(data_dims)};
    SLUICE_RETURN_IF_ERROR(data_shape.CheckedNumElements().status());
    SLUICE_RETURN_IF_ERROR(CheckPrefix(partitions_t.shape(), data_shape, "partitions", "data"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> partitions,
                            IndexValues(partitions_t, "partitions"));
    const TensorShape row = RowShape(data_shape, partitions_t.rank());
    std::vector<int64_t> counts(n, 0);
    for (int64_t p : partitions) {
      if (p < 0 || p >= n) return absl::InvalidArgumentError("partitions out of range");
      ++counts[p];
    }
    std::vector<const char*> next(n);
    for (int p = 0; p < n; ++p) {
      const Tensor& g = ctx->input(2 + p);
      TensorShape want({counts[p]});
      for (int64_t d : row.dims()) want.AddDim(d);
      if (g.shape() != want) {
        return absl::InvalidArgumentError(absl::StrCat("the gradient of partition ", p,
                                                       " has shape ", g.shape().DebugString(),
                                                       ", expected ", want.DebugString()));
      }
      next[p] = static_cast<const char*>(g.raw_data());
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, data_shape));
    const size_t row_bytes = row.num_elements() * DTypeSize(out->dtype());
    if (row_bytes == 0) return absl::OkStatus();
    char* dst = static_cast<char*>(out->raw_data());
    for (int64_t p : partitions) {
      std::memcpy(dst, next[p], row_bytes);
      next[p] += row_bytes;
      dst += row_bytes;
    }
    return absl::OkStatus();
  }
};

absl::Status DynamicStitchShape(InferenceContext* c) {
  const int n = c->num_inputs() / 2;
  const TensorShape& indices = c->input_shape(0);
  c->set_output(0,
                RowsOf(RowShape(c->input_shape(n), indices.unknown_rank() ? -1 : indices.rank())));
  return absl::OkStatus();
}

class DynamicStitchOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const int n = ctx->num_inputs() / 2;
    const TensorShape row = RowShape(ctx->input(n).shape(), ctx->input(0).rank());
    if (row.unknown_rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat("indices[0]'s shape ", ctx->input(0).shape().DebugString(),
                       " must open data[0]'s shape ", ctx->input(n).shape().DebugString()));
    }
    std::vector<std::vector<int64_t>> indices(n);
    int64_t rows = 0;
    for (int m = 0; m < n; ++m) {
      const Tensor& data = ctx->input(n + m);
      TensorShape want = ctx->input(m).shape();
      for (int64_t d : row.dims()) want.AddDim(d);
      if (data.shape() != want) {
        return absl::InvalidArgumentError(
            absl::StrCat("data[", m, "] has shape ", data.shape().DebugString(), ", expected ",
                         want.DebugString(), " (indices[", m, "]'s shape + the row shape)"));
      }
      SLUICE_ASSIGN_OR_RETURN(indices[m], IndexValues(ctx->input(m), "indices"));
      for (size_t i = 0; i < indices[m].size(); ++i) {
        const int64_t v = indices[m][i];
        if (v < 0 || v >= (int64_t{1} << 40)) {
          return absl::InvalidArgumentError(
              absl::StrCat("indices[", m, "][", i, "] = ", v, " is negative or too large"));
        }
        rows = std::max(rows, v + 1);
      }
    }
    TensorShape shape({rows});
    for (int64_t d : row.dims()) shape.AddDim(d);
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, shape));
    std::memset(out->raw_data(), 0, out->TotalBytes());
    const size_t row_bytes = row.num_elements() * DTypeSize(out->dtype());
    if (row_bytes == 0) return absl::OkStatus();
    char* dst = static_cast<char*>(out->raw_data());
    for (int m = 0; m < n; ++m) {
      const char* src = static_cast<const char*>(ctx->input(n + m).raw_data());
      for (int64_t v : indices[m]) {
        std::memcpy(dst + v * row_bytes, src, row_bytes);
        src += row_bytes;
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

namespace array_internal {

absl::Status RegisterPartitionOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("DynamicPartition")
          .Input("data: T")
          .Input("partitions: int32")
          .Output("outputs: num_partitions * T")
          .Attr("num_partitions: int >= 1")
          .Attr("T: type")
          .Doc("Output p holds, in order, the rows of `data` whose partition number is p "
               "(`partitions`' shape opens data's; a row is data.shape[partitions.rank:]); a "
               "number outside [0, num_partitions) is an error.")
          .SetShapeFn(DynamicPartitionShape)));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("DynamicPartitionGrad")
          .Input("partitions: int32")
          .Input("data_shape: int64")
          .Input("grads: N * T")
          .Output("output: T")
          .Attr("N: int >= 1")
          .Attr("T: type")
          .Doc("The gradient of DynamicPartition for `data`: grads[p]'s rows back where "
               "partition p's rows came from.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 1, 0); })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("DynamicStitch")
          .Input("indices: N * int32")
          .Input("data: N * T")
          .Output("merged: T")
          .Attr("N: int >= 1")
          .Attr("T: type")
          .Doc("merged[indices[m][i...]] = data[m][i...] (data[m]'s shape is indices[m]'s plus "
               "the row shape); merged has max(indices) + 1 rows, later inputs win where indices "
               "repeat, and rows no index names are zeros.")
          .SetShapeFn(DynamicStitchShape)));
  SLUICE_RETURN_IF_ERROR(RegisterForAllTypes<DynamicPartitionOp>(kernels, "DynamicPartition"));
  SLUICE_RETURN_IF_ERROR(
      RegisterForAllTypes<DynamicPartitionGradOp>(kernels, "DynamicPartitionGrad"));
  return RegisterForAllTypes<DynamicStitchOp>(kernels, "DynamicStitch");
}

}  // namespace array_internal

namespace ops {

std::vector<Output> DynamicPartition(const Scope& scope, Input data, Input partitions,
                                     int num_partitions, SourceLocation loc) {
  return AllOutputs(BuildNode(scope, "DynamicPartition", {data, partitions},
                              {{"num_partitions", AttrValue(num_partitions)}}, loc));
}

Output DynamicPartitionGrad(const Scope& scope, Input partitions, Input data_shape,
                            const std::vector<Output>& grads, SourceLocation loc) {
  std::vector<Input> inputs = {partitions, data_shape};
  for (const Output& g : grads) inputs.push_back(g);
  return BuildOp(scope, "DynamicPartitionGrad", inputs,
                 {{"N", AttrValue(static_cast<int64_t>(grads.size()))}}, loc);
}

Output DynamicStitch(const Scope& scope, const std::vector<Output>& indices,
                     const std::vector<Output>& data, SourceLocation loc) {
  std::vector<Input> inputs;
  for (const Output& i : indices) inputs.push_back(i);
  for (const Output& d : data) inputs.push_back(d);
  return BuildOp(scope, "DynamicStitch", inputs,
                 {{"N", AttrValue(static_cast<int64_t>(data.size()))}}, loc);
}

}  // namespace ops
}  // namespace sluice
