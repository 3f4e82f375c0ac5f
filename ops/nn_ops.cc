// Neural-network kernels. Activations are Eigen elementwise functors; the softmax family works
// row by row (a row is the last axis) on Eigen array maps, which keeps each row in cache across
// its max / exp-sum / normalise passes and uses Eigen's vectorised exp. Rows are split across
// the device's thread pool when there is enough work. Every softmax subtracts the row maximum
// first, so exp never overflows.

#include "ops/nn_ops.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

// max(x, 0), vectorised.
template <typename T>
struct ReluFunctor {
  T operator()(const T& x) const { return x < T(0) ? T(0) : x; }
  template <typename Packet>
  Packet packetOp(const Packet& x) const {
    return Eigen::internal::pmax(x, Eigen::internal::pset1<Packet>(T(0)));
  }
};

}  // namespace
}  // namespace sluice

namespace Eigen {
namespace internal {
template <typename T>
struct functor_traits<sluice::ReluFunctor<T>> {
  enum { Cost = NumTraits<T>::AddCost, PacketAccess = packet_traits<T>::HasMax };
};
}  // namespace internal
}  // namespace Eigen

namespace sluice {
namespace {

template <typename T>
using ReluOp = UnaryElementwiseOp<T, ReluFunctor<T>>;
template <typename T>
using SigmoidOp = UnaryElementwiseOp<T, Eigen::internal::scalar_logistic_op<T>>;
template <typename T>
using TanhOp = UnaryElementwiseOp<T, Eigen::internal::scalar_tanh_op<T>>;

absl::Status RegisterActivations(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("Relu")
                                           .Input("features: T")
                                           .Output("activations: T")
                                           .Attr("T: {float32, float64, int32, int64}")
                                           .Doc("max(features, 0) elementwise.")
                                           .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ReluOp, float, double, int32_t, int64_t>(kernels, "Relu")));

  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("Sigmoid")
                                           .Input("x: T")
                                           .Output("y: T")
                                           .Attr("T: {float32, float64}")
                                           .Doc("1 / (1 + exp(-x)) elementwise.")
                                           .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<SigmoidOp, float, double>(kernels, "Sigmoid")));

  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("Tanh")
                                           .Input("x: T")
                                           .Output("y: T")
                                           .Attr("T: {float32, float64}")
                                           .Doc("Hyperbolic tangent elementwise.")
                                           .SetShapeFn(UnchangedShape)));
  return RegisterCpuKernels<TanhOp, float, double>(kernels, "Tanh");
}

// ---------------------------------------------------------------------------------------------
// Row-wise helpers.

template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Row = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

// Runs fn(begin, end) over rows [0, rows), split across the intra-op pool when the work is
// large enough to pay for it. `bytes_per_element` counts loads plus stores.
void ForEachRowRange(const OpKernelContext& ctx, int64_t rows, int64_t cols,
                     double bytes_per_element, double cycles_per_element,
                     const std::function<void(Eigen::Index, Eigen::Index)>& fn) {
  if (rows * cols < kInlineEvalElements || ctx.eigen_device().numThreads() <= 1) {
    fn(0, rows);
    return;
  }
  const double c = static_cast<double>(cols);
  ctx.eigen_device().parallelFor(
      rows,
      Eigen::TensorOpCost(bytes_per_element * c / 2, bytes_per_element * c / 2,
                          cycles_per_element * c),
      fn);
}

// Cost of one exp in cycles, roughly, for the pool's cost model.
constexpr double kExpCycles = 20;

absl::Status CheckSoftmaxRank(const TensorShape& s, absl::string_view op) {
  if (!s.unknown_rank() && s.rank() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " requires logits of rank >= 1, got shape ", s.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status SoftmaxShape(InferenceContext* c) {
  SLUICE_RETURN_IF_ERROR(CheckSoftmaxRank(c->input_shape(0), "Softmax"));
  return UnchangedShape(c);
}

absl::Status LogSoftmaxShape(InferenceContext* c) {
  SLUICE_RETURN_IF_ERROR(CheckSoftmaxRank(c->input_shape(0), "LogSoftmax"));
  return UnchangedShape(c);
}

// Softmax (kLog false) or LogSoftmax (kLog true) over the last axis.
template <typename T, bool kLog>
class SoftmaxOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& logits = ctx->input(0);
    SLUICE_RETURN_IF_ERROR(CheckSoftmaxRank(logits.shape(), kLog ? "LogSoftmax" : "Softmax"));
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ForwardInputOrAllocateOutput(ctx, 0, 0, logits.shape()));
    const int64_t cols = logits.dim(logits.rank() - 1);
    if (logits.num_elements() == 0) return absl::OkStatus();
    const int64_t rows = logits.num_elements() / cols;
    const T* x = logits.data<T>();
    T* y = out->data<T>();
    // Element i of a row is read before it is written, so `out` may share `logits`' buffer.
    auto rows_fn = [=](Eigen::Index b, Eigen::Index e) {
      for (Eigen::Index i = b; i < e; ++i) {
        ConstRow<T> xr(x + i * cols, cols);
        Row<T> yr(y + i * cols, cols);
        const T max = xr.maxCoeff();
        if constexpr (kLog) {
          yr = xr - max;
          yr -= std::log(yr.exp().sum());
        } else {
          yr = (xr - max).exp();
          yr /= yr.sum();
        }
      }
    };
    ForEachRowRange(*ctx, rows, cols, 3 * sizeof(T), kExpCycles, rows_fn);
    return absl::OkStatus();
  }
};

template <typename T>
using SoftmaxKernel = SoftmaxOp<T, false>;
template <typename T>
using LogSoftmaxKernel = SoftmaxOp<T, true>;

absl::Status RegisterSoftmax(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Softmax")
          .Input("logits: T")
          .Output("softmax: T")
          .Attr("T: {float32, float64}")
          .Doc("exp(logits) / sum(exp(logits)) over the last axis, computed as "
               "exp(logits - max) / sum(exp(logits - max)) so large logits do not overflow.")
          .SetShapeFn(SoftmaxShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<SoftmaxKernel, float, double>(kernels, "Softmax")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("LogSoftmax")
          .Input("logits: T")
          .Output("logsoftmax: T")
          .Attr("T: {float32, float64}")
          .Doc("logits - log(sum(exp(logits))) over the last axis, shifted by the row maximum "
               "so large logits do not overflow.")
          .SetShapeFn(LogSoftmaxShape)));
  return RegisterCpuKernels<LogSoftmaxKernel, float, double>(kernels, "LogSoftmax");
}

// ---------------------------------------------------------------------------------------------
// SoftmaxCrossEntropyWithLogits: dense labels.

std::string ShapeMismatch(const TensorShape& features, const TensorShape& labels) {
  return absl::StrCat("features and labels must have the same shape: features ",
                      features.DebugString(), " vs labels ", labels.DebugString());
}

absl::Status CheckRankOf(const TensorShape& s, int rank, absl::string_view op,
                         absl::string_view what) {
  if (!s.unknown_rank() && s.rank() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " requires rank-", rank, " ", what, ", got shape ", s.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status XentShape(InferenceContext* c) {
  constexpr char kOp[] = "SoftmaxCrossEntropyWithLogits";
  const TensorShape& features = c->input_shape(0);
  const TensorShape& labels = c->input_shape(1);
  SLUICE_RETURN_IF_ERROR(CheckRankOf(features, 2, kOp, "features"));
  SLUICE_RETURN_IF_ERROR(CheckRankOf(labels, 2, kOp, "labels"));
  TensorShape merged;
  if (!features.MergeWith(labels, &merged).ok()) {
    return InferenceContext::Error(ShapeMismatch(features, labels));
  }
  if (merged.unknown_rank()) merged = TensorShape({kUnknownDim, kUnknownDim});
  c->set_output(0, TensorShape({merged.dim(0)}));
  c->set_output(1, merged);
  return absl::OkStatus();
}

template <typename T>
class SoftmaxXentOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  absl::Status Compute(OpKernelContext* ctx) override {
    constexpr char kOp[] = "SoftmaxCrossEntropyWithLogits";
    const Tensor& features = ctx->input(0);
    const Tensor& labels = ctx->input(1);
    SLUICE_RETURN_IF_ERROR(CheckRankOf(features.shape(), 2, kOp, "features"));
    SLUICE_RETURN_IF_ERROR(CheckRankOf(labels.shape(), 2, kOp, "labels"));
    if (features.shape() != labels.shape()) {
      return absl::InvalidArgumentError(ShapeMismatch(features.shape(), labels.shape()));
    }
    const int64_t batch = features.dim(0), classes = features.dim(1);
    SLUICE_ASSIGN_OR_RETURN(Tensor * loss, ctx->allocate_output(0, TensorShape({batch})));
    SLUICE_ASSIGN_OR_RETURN(Tensor * backprop, ctx->allocate_output(1, features.shape()));
    if (classes == 0) {
      // No classes: the loss is undefined (as in TensorFlow); backprop is empty.
      loss->flat<T>().setConstant(std::numeric_limits<T>::quiet_NaN());
      return absl::OkStatus();
    }
    const T* x = features.data<T>();
    const T* l = labels.data<T>();
    T* lp = loss->data<T>();
    T* bp = backprop->data<T>();
    auto rows_fn = [=](Eigen::Index b, Eigen::Index e) {
      for (Eigen::Index i = b; i < e; ++i) {
        ConstRow<T> xr(x + i * classes, classes);
        ConstRow<T> lr(l + i * classes, classes);
        Row<T> br(bp + i * classes, classes);
        const T max = xr.maxCoeff();
        br = (xr - max).exp();
        const T sum = br.sum();
        const T log_sum = std::log(sum);
        // -sum(labels * log_softmax), with log_softmax = (x - max) - log_sum.
        lp[i] = (lr * (log_sum - (xr - max))).sum();
        br = br / sum - lr;
      }
    };
    ForEachRowRange(*ctx, batch, classes, 3 * sizeof(T), kExpCycles + 4, rows_fn);
    return absl::OkStatus();
  }
};

// ---------------------------------------------------------------------------------------------
// SparseSoftmaxCrossEntropyWithLogits: labels are class indices.

absl::Status SparseXentShapes(const TensorShape& features, const TensorShape& labels) {
  constexpr char kOp[] = "SparseSoftmaxCrossEntropyWithLogits";
  SLUICE_RETURN_IF_ERROR(CheckRankOf(features, 2, kOp, "features"));
  SLUICE_RETURN_IF_ERROR(CheckRankOf(labels, 1, kOp, "labels"));
  if (!features.unknown_rank() && !labels.unknown_rank() && features.dim(0) != kUnknownDim &&
      labels.dim(0) != kUnknownDim && features.dim(0) != labels.dim(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels must have one entry per row of features: features ",
                     features.DebugString(), " vs labels ", labels.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status SparseXentShape(InferenceContext* c) {
  const TensorShape& features = c->input_shape(0);
  const TensorShape& labels = c->input_shape(1);
  SLUICE_RETURN_IF_ERROR(SparseXentShapes(features, labels));
  int64_t batch = kUnknownDim, classes = kUnknownDim;
  if (!features.unknown_rank()) {
    batch = features.dim(0);
    classes = features.dim(1);
  }
  if (batch == kUnknownDim && !labels.unknown_rank()) batch = labels.dim(0);
  c->set_output(0, TensorShape({batch}));
  c->set_output(1, TensorShape({batch, classes}));
  return absl::OkStatus();
}

template <typename T>
class SparseSoftmaxXentOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& features = ctx->input(0);
    const Tensor& labels_in = ctx->input(1);
    SLUICE_RETURN_IF_ERROR(SparseXentShapes(features.shape(), labels_in.shape()));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> labels, TensorToInt64s(labels_in, "labels"));
    const int64_t batch = features.dim(0), classes = features.dim(1);
    for (int64_t i = 0; i < batch; ++i) {
      if (labels[i] < 0 || labels[i] >= classes) {
        return absl::InvalidArgumentError(
            absl::StrCat("label value ", labels[i], " at index ", i,
                         " is outside the valid range of classes [0, ", classes, ")"));
      }
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * loss, ctx->allocate_output(0, TensorShape({batch})));
    SLUICE_ASSIGN_OR_RETURN(Tensor * backprop, ctx->allocate_output(1, features.shape()));
    const T* x = features.data<T>();
    const int64_t* lab = labels.data();
    T* lp = loss->data<T>();
    T* bp = backprop->data<T>();
    auto rows_fn = [=](Eigen::Index b, Eigen::Index e) {
      for (Eigen::Index i = b; i < e; ++i) {
        ConstRow<T> xr(x + i * classes, classes);
        Row<T> br(bp + i * classes, classes);
        const T max = xr.maxCoeff();
        br = (xr - max).exp();
        const T sum = br.sum();
        lp[i] = std::log(sum) - (xr[lab[i]] - max);
        br /= sum;
        br[lab[i]] -= T(1);
      }
    };
    ForEachRowRange(*ctx, batch, classes, 2 * sizeof(T), kExpCycles + 2, rows_fn);
    return absl::OkStatus();
  }
};

absl::Status RegisterCrossEntropy(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("SoftmaxCrossEntropyWithLogits")
          .Input("features: T")
          .Input("labels: T")
          .Output("loss: T")
          .Output("backprop: T")
          .Attr("T: {float32, float64}")
          .Doc("Cross-entropy between softmax(features) and the label distribution, per row: "
               "loss[i] = -sum_j labels[i,j] * log_softmax(features)[i,j]; backprop = "
               "softmax(features) - labels (the gradient of loss with respect to features). "
               "features and labels are [batch, classes]; each labels row should sum to 1.")
          .SetShapeFn(XentShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<SoftmaxXentOp, float, double>(kernels, "SoftmaxCrossEntropyWithLogits")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("SparseSoftmaxCrossEntropyWithLogits")
          .Input("features: T")
          .Input("labels: Tlabels")
          .Output("loss: T")
          .Output("backprop: T")
          .Attr("T: {float32, float64}")
          .Attr("Tlabels: {int32, int64} = int64")
          .Doc("SoftmaxCrossEntropyWithLogits with one-hot labels given as class indices: "
               "features [batch, classes], labels [batch] in [0, classes); loss[i] = "
               "-log_softmax(features)[i, labels[i]]; backprop = softmax(features) - "
               "one_hot(labels). A label outside [0, classes) is an error.")
          .SetShapeFn(SparseXentShape)));
  return RegisterCpuKernels<SparseSoftmaxXentOp, float, double>(
      kernels, "SparseSoftmaxCrossEntropyWithLogits");
}

}  // namespace

absl::Status RegisterNnOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterActivations(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterSoftmax(ops, kernels));
  SLUICE_RETURN_IF_ERROR(nn_internal::RegisterConvOps(ops, kernels));
  return RegisterCrossEntropy(ops, kernels);
}

namespace ops {

Output Relu(const Scope& scope, Input features, SourceLocation loc) {
  return BuildOp(scope, "Relu", {features}, {}, loc);
}
Output Sigmoid(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Sigmoid", {x}, {}, loc);
}
Output Tanh(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Tanh", {x}, {}, loc);
}
Output Softmax(const Scope& scope, Input logits, SourceLocation loc) {
  return BuildOp(scope, "Softmax", {logits}, {}, loc);
}
Output LogSoftmax(const Scope& scope, Input logits, SourceLocation loc) {
  return BuildOp(scope, "LogSoftmax", {logits}, {}, loc);
}
std::vector<Output> SoftmaxCrossEntropyWithLogits(const Scope& scope, Input features, Input labels,
                                                  SourceLocation loc) {
  return AllOutputs(BuildNode(scope, "SoftmaxCrossEntropyWithLogits", {features, labels}, {}, loc));
}
std::vector<Output> SparseSoftmaxCrossEntropyWithLogits(const Scope& scope, Input features,
                                                        Input labels, SourceLocation loc) {
  return AllOutputs(
      BuildNode(scope, "SparseSoftmaxCrossEntropyWithLogits", {features, labels}, {}, loc));
}

}  // namespace ops
}  // namespace sluice
