#include "ops/base_ops.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

// Const: the tensor in attribute "value".
class ConstOp : public OpKernel {
 public:
  explicit ConstOp(const Node& node)
      : OpKernel(node), value_(*node.attrs().find("value")->second.get_if<Tensor>()) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    ctx->set_output(0, value_);
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return false; }

 private:
  Tensor value_;
};

absl::StatusOr<std::unique_ptr<OpKernel>> MakeConst(const Node& node) {
  SLUICE_ASSIGN_OR_RETURN(Tensor value, node.GetAttr<Tensor>("value"));
  SLUICE_ASSIGN_OR_RETURN(DType dtype, node.GetAttr<DType>("dtype"));
  if (value.dtype() != dtype) {
    return absl::InvalidArgumentError(absl::StrCat(node.DebugName(), ": value has dtype ",
                                                   DTypeName(value.dtype()),
                                                   " but attribute dtype is ", DTypeName(dtype)));
  }
  return std::unique_ptr<OpKernel>(new ConstOp(node));
}

// Placeholder: runs only when the caller did not feed it, which is an error.
class PlaceholderOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    return absl::InvalidArgumentError(absl::StrCat(
        "placeholder '", node().name(), "' must be fed a value of dtype ",
        DTypeName(node().output_type(0)), " and shape ", node().output_shape(0).DebugString()));
  }
  bool IsExpensive() const override { return false; }
};

class IdentityOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    ctx->set_output(0, ctx->release_input(0));
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return false; }
};

class NoOpOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override { return absl::OkStatus(); }
  bool IsExpensive() const override { return false; }
};

class TimestampOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    ctx->set_output(0, Tensor::Scalar<double>(std::chrono::duration<double>(now).count()));
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return false; }
};

class SleepOp : public OpKernel {
 public:
  explicit SleepOp(const Node& node)
      : OpKernel(node), micros_(*node.GetAttr<int64_t>("microseconds")) {}
  absl::Status Compute(OpKernelContext* ctx) override {
    std::this_thread::sleep_for(std::chrono::microseconds(micros_));
    ctx->set_output(0, ctx->release_input(0));
    return absl::OkStatus();
  }

 private:
  int64_t micros_;
};

absl::StatusOr<std::unique_ptr<OpKernel>> MakeSleep(const Node& node) {
  SLUICE_ASSIGN_OR_RETURN(int64_t micros, node.GetAttr<int64_t>("microseconds"));
  if (micros < 0 || micros > 3'600'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.DebugName(), ": microseconds must be in [0, 3600000000], got ", micros));
  }
  return std::unique_ptr<OpKernel>(new SleepOp(node));
}

}  // namespace

absl::Status RegisterBaseOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("Const")
                        .Output("output: dtype")
                        .Attr("value: tensor")
                        .Attr("dtype: type")
                        .Doc("A constant tensor, the value of attribute `value`.")
                        .SetShapeFn([](InferenceContext* c) -> absl::Status {
                          SLUICE_ASSIGN_OR_RETURN(Tensor value, c->GetAttr<Tensor>("value"));
                          c->set_output(0, value.shape());
                          return absl::OkStatus();
                        })));
  SLUICE_RETURN_IF_ERROR(kernels->Register("Const", kDeviceCpu, DType::kInvalid, MakeConst));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Placeholder")
          .Output("output: dtype")
          .Attr("dtype: type")
          .Attr("shape: shape = <unknown>")
          .Doc("A value the caller must feed at run time; `shape` may be partially known.")
          .SetShapeFn([](InferenceContext* c) -> absl::Status {
            SLUICE_ASSIGN_OR_RETURN(TensorShape shape, c->GetAttr<TensorShape>("shape"));
            c->set_output(0, shape);
            return absl::OkStatus();
          })));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("Placeholder", kDeviceCpu, DType::kInvalid, MakeKernel<PlaceholderOp>));

  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder("Identity")
                                           .Input("input: T")
                                           .Output("output: T")
                                           .Attr("T: type")
                                           .Doc("Forwards its input unchanged, without a copy.")
                                           .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("Identity", kDeviceCpu, DType::kInvalid, MakeKernel<IdentityOp>));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("NoOp").Doc("Does nothing; groups control dependencies as a target.")));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("NoOp", kDeviceCpu, DType::kInvalid, MakeKernel<NoOpOp>));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Timestamp")
          .Output("ts: float64")
          .SetIsStateful()
          .Doc("The wall-clock time the node ran, in seconds since the Unix epoch (system clock; "
               "comparable across processes of one host, and across hosts as far as their clocks "
               "agree).")
          .SetShapeFn(ScalarShape)));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("Timestamp", kDeviceCpu, DType::kInvalid, MakeKernel<TimestampOp>));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Sleep")
          .Input("input: T")
          .Output("output: T")
          .Attr("T: type")
          .Attr("microseconds: int")
          .Attr("gradient_microseconds: int = 0")
          .SetIsStateful()
          .Doc("Forwards its input after waiting `microseconds` (the thread sleeps: no core is "
               "used). Its gradient waits `gradient_microseconds`. An op of known duration for "
               "benchmarks and tests.")
          .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(kernels->Register("Sleep", kDeviceCpu, DType::kInvalid, MakeSleep));
  return absl::OkStatus();
}

namespace ops {

Output Const(const Scope& scope, const Tensor& value, SourceLocation loc) {
  return BuildOp(scope, "Const", {},
                 {{"value", AttrValue(value)}, {"dtype", AttrValue(value.dtype())}}, loc);
}

Output Placeholder(const Scope& scope, DType dtype, TensorShape shape, SourceLocation loc) {
  return BuildOp(scope, "Placeholder", {},
                 {{"dtype", AttrValue(dtype)}, {"shape", AttrValue(std::move(shape))}}, loc);
}

Output Identity(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Identity", {x}, {}, loc);
}

const Node* NoOp(const Scope& scope, SourceLocation loc) {
  return BuildNode(scope, "NoOp", {}, {}, loc);
}

Output Timestamp(const Scope& scope, SourceLocation loc) {
  return BuildOp(scope, "Timestamp", {}, {}, loc);
}

Output Sleep(const Scope& scope, Input x, int64_t microseconds, int64_t gradient_microseconds,
             SourceLocation loc) {
  return BuildOp(scope, "Sleep", {x},
                 {{"microseconds", AttrValue(microseconds)},
                  {"gradient_microseconds", AttrValue(gradient_microseconds)}},
                 loc);
}

}  // namespace ops
}  // namespace sluice
