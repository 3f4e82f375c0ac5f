#include "ops/state_ops.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

constexpr char kVariableOp[] = "Variable";

// The ResourceMgr name of the variable a Variable node stands for.
std::string VariableName(const Node& variable_node) {
  absl::StatusOr<std::string> shared = variable_node.GetAttr<std::string>("shared_name");
  return shared.ok() && !shared->empty() ? *shared : variable_node.name();
}

// ------------------------------------------------------------------------------------------
// Variable

absl::Status VariableShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(TensorShape shape, c->GetAttr<TensorShape>("shape"));
  c->set_output(0, std::move(shape));
  return absl::OkStatus();
}

class VariableOp : public OpKernel {
 public:
  explicit VariableOp(const Node& node) : OpKernel(node), name_(VariableName(node)) {
    // Decided once: the graph is final when kernels are made.
    int consumers = 0;
    bool only_refs = true;
    for (const OutEdge& e : node.out_edges()) {
      if (e.is_control()) continue;
      ++consumers;
      only_refs &= e.dst->IsRefInput(e.input_index);
    }
    is_handle_ = consumers > 0 && only_refs;
  }
  bool IsExpensive() const override { return false; }

  absl::Status Compute(OpKernelContext* ctx) override {
    const DType dtype = node().output_type(0);
    if (is_handle_) {
      // Nothing reads a handle's value; an empty tensor does not pin the variable's buffer, so
      // the update it feeds may happen in place.
      ctx->set_output(0, Tensor(dtype, TensorShape({0})));
      return absl::OkStatus();
    }
    std::shared_ptr<Variable> var = ctx->resources()->LookupOrCreateVariable(name_);
    absl::ReaderMutexLock lock(&var->mu);
    if (!var->initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    if (var->value.dtype() != dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", name_, "' holds ", DTypeName(var->value.dtype()),
                       " values but this node reads ", DTypeName(dtype)));
    }
    ctx->set_output(0, var->value);  // Shares the buffer; updates copy while it is held.
    return absl::OkStatus();
  }

 private:
  std::string name_;
  bool is_handle_ = false;
};

absl::Status RegisterVariable(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder(kVariableOp)
          .Output("value: dtype")
          .Attr("dtype: type")
          .Attr("shape: shape")
          .Attr("shared_name: string = \"\"")
          .SetIsStateful()
          .Doc("The current value of the variable named `shared_name` (default: this node's "
               "name) on this device. Fails with FailedPrecondition until it is assigned. A "
               "node whose only consumers are reference (Ref(T)) inputs is a write handle "
               "that outputs an empty tensor instead.")
          .SetShapeFn(VariableShape)));
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kBool}) {
    SLUICE_RETURN_IF_ERROR(kernels->Register(kVariableOp, kDeviceCpu, dt, MakeKernel<VariableOp>));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------
// Assign, AssignAdd, AssignSub

// Base of the kernels that update a variable: resolves it from the Variable node at input 0.
class VariableUpdateOp : public OpKernel {
 public:
  explicit VariableUpdateOp(const Node& node)
      : OpKernel(node),
        name_(VariableName(*node.input(0).node)),
        declared_shape_(node.input(0).node->GetAttr<TensorShape>("shape").value_or(
            TensorShape::UnknownRank())) {}

 protected:
  std::shared_ptr<Variable> Lookup(OpKernelContext* ctx) const {
    // Input 0 only names the variable: drop it so it does not pin any buffer.
    ctx->release_input(0);
    return ctx->resources()->LookupOrCreateVariable(name_);
  }

  const std::string name_;
  const TensorShape declared_shape_;
};

absl::Status AssignShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(bool validate, c->GetAttr<bool>("validate_shape"));
  if (!validate) {
    c->set_output(0, c->input_shape(1));
    return absl::OkStatus();
  }
  TensorShape merged;
  if (!c->input_shape(0).MergeWith(c->input_shape(1), &merged).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot assign a value of shape ", c->input_shape(1).DebugString(),
                     " to a variable of shape ", c->input_shape(0).DebugString()));
  }
  c->set_output(0, std::move(merged));
  return absl::OkStatus();
}

absl::Status UpdateShape(InferenceContext* c) {
  TensorShape merged;
  if (!c->input_shape(0).MergeWith(c->input_shape(1), &merged).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot update a variable of shape ", c->input_shape(0).DebugString(),
                     " with a value of shape ", c->input_shape(1).DebugString()));
  }
  c->set_output(0, std::move(merged));
  return absl::OkStatus();
}

class AssignOp : public VariableUpdateOp {
 public:
  explicit AssignOp(const Node& node)
      : VariableUpdateOp(node),
        validate_shape_(Attr<bool>("validate_shape")),
        initializes_(Attr<bool>("initializes")) {}
  bool IsExpensive() const override { return false; }

  absl::Status Compute(OpKernelContext* ctx) override {
    std::shared_ptr<Variable> var = Lookup(ctx);
    const Tensor& value = ctx->input(1);
    if (validate_shape_ && !declared_shape_.IsCompatibleWith(value.shape())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot assign a value of shape ", value.shape().DebugString(),
                       " to variable '", name_, "' of shape ", declared_shape_.DebugString()));
    }
    absl::MutexLock lock(&var->mu);
    // Sharing the value's buffer is safe: whoever updates the variable later copies first
    // unless the variable holds the only reference.
    var->value = value;
    var->initialized = true;
    if (initializes_) ++var->initializations;
    ctx->set_output(0, value);
    return absl::OkStatus();
  }

 private:
  const bool validate_shape_;
  const bool initializes_;
};

template <typename T, bool kAdd>
class AssignUpdateOp : public VariableUpdateOp {
 public:
  using VariableUpdateOp::VariableUpdateOp;

  absl::Status Compute(OpKernelContext* ctx) override {
    std::shared_ptr<Variable> var = Lookup(ctx);
    const Tensor& delta = ctx->input(1);
    absl::MutexLock lock(&var->mu);
    if (!var->initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    Tensor& value = var->value;
    if (value.dtype() != delta.dtype()) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", name_, "' holds ", DTypeName(value.dtype()),
                       " values, the update is ", DTypeName(delta.dtype())));
    }
    if (value.shape() != delta.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot update variable '", name_, "' of shape ", value.shape().DebugString(),
          " with a value of shape ", delta.shape().DebugString()));
    }
    // Copy-on-write: update in place only when nobody else holds the buffer.
    Tensor target = value.RefCountIsOne() ? value : Tensor(value.dtype(), value.shape());
    if (kAdd) {
      EvalExpr(*ctx, target.flat<T>(), value.flat<T>() + delta.flat<T>());
    } else {
      EvalExpr(*ctx, target.flat<T>(), value.flat<T>() - delta.flat<T>());
    }
    value = std::move(target);
    ctx->set_output(0, value);
    return absl::OkStatus();
  }
};

template <typename T>
using AssignAddOp = AssignUpdateOp<T, true>;
template <typename T>
using AssignSubOp = AssignUpdateOp<T, false>;

template <template <typename> class K>
absl::Status RegisterNumericUpdate(KernelRegistry* kernels, absl::string_view op) {
  SLUICE_RETURN_IF_ERROR(
      kernels->Register(op, kDeviceCpu, DType::kFloat32, MakeVariableUpdateKernel<K<float>>));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register(op, kDeviceCpu, DType::kFloat64, MakeVariableUpdateKernel<K<double>>));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register(op, kDeviceCpu, DType::kInt32, MakeVariableUpdateKernel<K<int32_t>>));
  return kernels->Register(op, kDeviceCpu, DType::kInt64, MakeVariableUpdateKernel<K<int64_t>>);
}

absl::Status RegisterAssigns(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Assign")
          .Input("ref: Ref(T)")
          .Input("value: T")
          .Output("output: T")
          .Attr("T: type")
          .Attr("validate_shape: bool = true")
          .Attr("initializes: bool = false")
          .SetIsStateful()
          .Doc("Sets the variable that `ref` (a Variable node) names to `value` and outputs it. "
               "With validate_shape the value must match the variable's declared shape. With "
               "initializes (an initializer, a checkpoint restore) the variable starts over: "
               "state kept beside it, such as a parameter server's clocks, is reset.")
          .SetShapeFn(AssignShape)));
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kBool}) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("Assign", kDeviceCpu, dt, MakeVariableUpdateKernel<AssignOp>));
  }
  for (const char* op : {"AssignAdd", "AssignSub"}) {
    const bool add = std::string(op) == "AssignAdd";
    SLUICE_RETURN_IF_ERROR(ops->Register(
        OpDefBuilder(op)
            .Input("ref: Ref(T)")
            .Input("value: T")
            .Output("output: T")
            .Attr("T: {float32, float64, int32, int64}")
            .SetIsStateful()
            .Doc(add ? "Adds `value` to the initialised variable that `ref` names; outputs the "
                       "new value."
                     : "Subtracts `value` from the initialised variable that `ref` names; "
                       "outputs the new value.")
            .SetShapeFn(UpdateShape)));
  }
  SLUICE_RETURN_IF_ERROR(RegisterNumericUpdate<AssignAddOp>(kernels, "AssignAdd"));
  return RegisterNumericUpdate<AssignSubOp>(kernels, "AssignSub");
}

// ------------------------------------------------------------------------------------------
// ScatterAdd, ScatterSub, ScatterUpdate: row updates of a variable

enum class ScatterKind { kAdd, kSub, kUpdate };

template <typename T, ScatterKind kKind>
class ScatterUpdateOp : public VariableUpdateOp {
 public:
  using VariableUpdateOp::VariableUpdateOp;

  absl::Status Compute(OpKernelContext* ctx) override {
    std::shared_ptr<Variable> var = Lookup(ctx);
    const Tensor& indices_t = ctx->input(1);
    const Tensor& updates = ctx->input(2);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> indices, IndexValues(indices_t, "indices"));
    absl::MutexLock lock(&var->mu);
    if (!var->initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    Tensor& value = var->value;
    if (value.dtype() != updates.dtype()) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", name_, "' holds ", DTypeName(value.dtype()),
                       " values, the updates are ", DTypeName(updates.dtype())));
    }
    if (value.rank() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", name_, "' is a scalar: it has no rows to scatter into"));
    }
    // updates must be indices.shape + value.shape[1:].
    TensorShape expected = indices_t.shape();
    for (int i = 1; i < value.rank(); ++i) expected.AddDim(value.dim(i));
    if (updates.shape() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "updates of shape ", updates.shape().DebugString(), " do not fit indices of shape ",
          indices_t.shape().DebugString(), " into variable '", name_, "' of shape ",
          value.shape().DebugString(), " (expected ", expected.DebugString(), ")"));
    }
    const int64_t rows = value.dim(0);
    for (size_t i = 0; i < indices.size(); ++i) {
      if (indices[i] < 0 || indices[i] >= rows) {
        return absl::InvalidArgumentError(absl::StrCat("indices[", i, "] = ", indices[i],
                                                       " is not a row of variable '", name_,
                                                       "' (rows [0, ", rows, "))"));
      }
    }
    // Copy-on-write, as for AssignAdd: a buffer a reader still holds is never modified.
    if (!value.RefCountIsOne()) value = value.DeepCopy();
    const int64_t row = rows == 0 ? 0 : value.num_elements() / rows;
    T* dst = value.data<T>();
    const T* src = updates.data<T>();
    for (size_t i = 0; i < indices.size(); ++i) {
      T* to = dst + indices[i] * row;
      const T* from = src + i * row;
      for (int64_t e = 0; e < row; ++e) {
        if constexpr (kKind == ScatterKind::kAdd) {
          to[e] += from[e];
        } else if constexpr (kKind == ScatterKind::kSub) {
          to[e] -= from[e];
        } else {
          to[e] = from[e];
        }
      }
    }
    ctx->set_output(0, value);
    return absl::OkStatus();
  }
};

template <typename T>
using ScatterAddOp = ScatterUpdateOp<T, ScatterKind::kAdd>;
template <typename T>
using ScatterSubOp = ScatterUpdateOp<T, ScatterKind::kSub>;
template <typename T>
using ScatterAssignOp = ScatterUpdateOp<T, ScatterKind::kUpdate>;

absl::Status ScatterShape(InferenceContext* c) {
  c->set_output(0, c->input_shape(0));
  return absl::OkStatus();
}

absl::Status RegisterScatters(OpRegistry* ops, KernelRegistry* kernels) {
  for (const char* op : {"ScatterAdd", "ScatterSub", "ScatterUpdate"}) {
    const std::string verb = std::string(op) == "ScatterAdd"   ? "Adds updates[i, ...] to"
                             : std::string(op) == "ScatterSub" ? "Subtracts updates[i, ...] from"
                                                               : "Sets to updates[i, ...]";
    SLUICE_RETURN_IF_ERROR(ops->Register(
        OpDefBuilder(op)
            .Input("ref: Ref(T)")
            .Input("indices: Tindices")
            .Input("updates: T")
            .Output("output: T")
            .Attr("T: {float32, float64, int32, int64}")
            .Attr("Tindices: {int32, int64} = int32")
            .SetIsStateful()
            .Doc(absl::StrCat(verb,
                              " row indices[i] of the initialised variable that `ref` "
                              "names (updates: indices.shape + the variable's row shape); "
                              "outputs the new value. Repeated indices apply in order."))
            .SetShapeFn(ScatterShape)));
  }
  SLUICE_RETURN_IF_ERROR(RegisterNumericUpdate<ScatterAddOp>(kernels, "ScatterAdd"));
  SLUICE_RETURN_IF_ERROR(RegisterNumericUpdate<ScatterSubOp>(kernels, "ScatterSub"));
  return RegisterNumericUpdate<ScatterAssignOp>(kernels, "ScatterUpdate");
}

// A write handle for the variable behind `var`: a Variable node of the same name, dtype and
// shape that feeds only Assign-family ops (see the header).
Output WriteHandle(const Scope& scope, const Output& var, SourceLocation loc) {
  if (!var.valid() || var.node()->op() != kVariableOp) return var;  // The kernel reports it.
  const Node& v = *var.node();
  Scope hs = scope.NewSubScope(absl::StrCat(v.name(), "_ref"));
  if (!v.requested_device().empty()) hs = hs.WithDevice(v.requested_device());
  AttrMap attrs = {{"dtype", AttrValue(var.dtype())}, {"shared_name", AttrValue(VariableName(v))}};
  absl::StatusOr<TensorShape> shape = v.GetAttr<TensorShape>("shape");
  attrs["shape"] = AttrValue(shape.ok() ? *shape : TensorShape::UnknownRank());
  return ops::BuildOp(hs, kVariableOp, {}, std::move(attrs), loc);
}

}  // namespace

absl::Status CheckRefInput(const Node& node) {
  const Node* src = node.input(0).node;
  if (src->op() != kVariableOp) {
    return absl::InvalidArgumentError(absl::StrCat(
        node.DebugName(), ": input 0 ('ref') must come from a Variable node, but comes from ",
        src->DebugName()));
  }
  return absl::OkStatus();
}

std::string VariableNameOf(const Node& variable_node) { return VariableName(variable_node); }

absl::Status RegisterStateOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterVariable(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterAssigns(ops, kernels));
  return RegisterScatters(ops, kernels);
}

namespace ops {

Output Variable(const Scope& scope, TensorShape shape, DType dtype, SourceLocation loc) {
  return BuildOp(scope, kVariableOp, {},
                 {{"shape", AttrValue(std::move(shape))}, {"dtype", AttrValue(dtype)}}, loc);
}

Output Assign(const Scope& scope, Output var, Input value, SourceLocation loc) {
  return BuildOp(scope, "Assign", {WriteHandle(scope, var, loc), value}, {}, loc);
}

Output AssignAdd(const Scope& scope, Output var, Input value, SourceLocation loc) {
  return BuildOp(scope, "AssignAdd", {WriteHandle(scope, var, loc), value}, {}, loc);
}

Output AssignSub(const Scope& scope, Output var, Input value, SourceLocation loc) {
  return BuildOp(scope, "AssignSub", {WriteHandle(scope, var, loc), value}, {}, loc);
}

Output ScatterAdd(const Scope& scope, Output var, Input indices, Input updates,
                  SourceLocation loc) {
  return BuildOp(scope, "ScatterAdd", {WriteHandle(scope, var, loc), indices, updates}, {}, loc);
}

Output ScatterSub(const Scope& scope, Output var, Input indices, Input updates,
                  SourceLocation loc) {
  return BuildOp(scope, "ScatterSub", {WriteHandle(scope, var, loc), indices, updates}, {}, loc);
}

Output ScatterUpdate(const Scope& scope, Output var, Input indices, Input updates,
                     SourceLocation loc) {
  return BuildOp(scope, "ScatterUpdate", {WriteHandle(scope, var, loc), indices, updates}, {}, loc);
}

Output VariableRef(const Scope& scope, Output var, SourceLocation loc) {
  return WriteHandle(scope, var, loc);
}

}  // namespace ops
}  // namespace sluice
