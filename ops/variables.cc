#include "ops/variables.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/math_ops.h"
#include "ops/random_ops.h"
#include "ops/register.h"
#include "ops/state_ops.h"

namespace sluice {
namespace ops {
namespace {

constexpr char kInitializerSuffix[] = "/Initializer";

// Adds a node with exactly this name (no scope prefix), recording errors in the scope.
const Node* AddNamedNode(const Scope& scope, std::string name, std::string op,
                         std::vector<Endpoint> inputs, AttrMap attrs, const std::string& device,
                         SourceLocation loc) {
  if (!scope.ok()) return nullptr;
  NodeSpec spec;
  spec.name = std::move(name);
  spec.op = std::move(op);
  spec.inputs = std::move(inputs);
  spec.attrs = std::move(attrs);
  spec.device = device;
  spec.source_location = loc.ToString();
  absl::StatusOr<Node*> node = scope.graph()->AddNode(std::move(spec));
  if (!node.ok()) {
    scope.UpdateStatus(node.status());
    return nullptr;
  }
  return *node;
}

// The value as an Output: constants become a Const node named "<var>/initial_value".
Output InitialValue(const Scope& scope, const std::string& var_name, const Input& value,
                    SourceLocation loc) {
  if (!value.is_constant()) return value.output();
  return SingleOutput(AddNamedNode(
      scope, absl::StrCat(var_name, "/initial_value"), "Const", {},
      {{"value", AttrValue(value.value())}, {"dtype", AttrValue(value.value().dtype())}}, "", loc));
}

// Creates the initializer of `var` from `value`.
Output AttachInitializer(const Scope& scope, Output var, Output value, SourceLocation loc) {
  if (!var.valid() || !value.valid()) return Output();
  const Node& v = *var.node();
  const std::string init_name = absl::StrCat(v.name(), kInitializerSuffix);
  const Node* handle = AddNamedNode(scope, absl::StrCat(init_name, "/ref"), "Variable", {},
                                    {{"dtype", AttrValue(var.dtype())},
                                     {"shape", AttrValue(var.shape())},
                                     {"shared_name", AttrValue(VariableNameOf(v))}},
                                    v.requested_device(), loc);
  if (handle == nullptr) return Output();
  const Node* assign =
      AddNamedNode(scope, init_name, "Assign", {Endpoint{handle, 0}, value.endpoint()},
                   {{"initializes", AttrValue(true)}}, v.requested_device(), loc);
  return assign == nullptr ? Output() : var;
}

}  // namespace

Output VariableWithInit(const Scope& scope, Input initial_value, SourceLocation loc) {
  if (!scope.ok()) return Output();
  const DType dtype =
      initial_value.is_constant() ? initial_value.value().dtype() : initial_value.output().dtype();
  const TensorShape shape =
      initial_value.is_constant() ? initial_value.value().shape() : initial_value.output().shape();
  if (!initial_value.is_constant() && !initial_value.output().valid()) return Output();
  Output var = Variable(scope, shape, dtype, loc);
  if (!var.valid()) return Output();
  return AttachInitializer(scope, var, InitialValue(scope, var.node()->name(), initial_value, loc),
                           loc);
}

Output VariableWithInitNamed(const Scope& scope, const std::string& name, Input initial_value,
                             SourceLocation loc) {
  if (!scope.ok()) return Output();
  if (!initial_value.is_constant() && !initial_value.output().valid()) return Output();
  const DType dtype =
      initial_value.is_constant() ? initial_value.value().dtype() : initial_value.output().dtype();
  const TensorShape shape =
      initial_value.is_constant() ? initial_value.value().shape() : initial_value.output().shape();
  Output var = SingleOutput(AddNamedNode(scope, name, "Variable", {},
                                         {{"dtype", AttrValue(dtype)}, {"shape", AttrValue(shape)}},
                                         "", loc));
  if (!var.valid()) return Output();
  return AttachInitializer(scope, var, InitialValue(scope, name, initial_value, loc), loc);
}

const Node* InitializerOf(const Scope& scope, const Output& var) {
  if (!var.valid()) return nullptr;
  const Node* n = scope.graph()->FindNode(absl::StrCat(var.node()->name(), kInitializerSuffix));
  return n != nullptr && n->op() == "Assign" ? n : nullptr;
}

std::vector<const Node*> AllInitializers(const Scope& scope) {
  std::vector<const Node*> out;
  const Graph& g = *scope.graph();
  for (int id = 0; id < g.num_nodes(); ++id) {
    const Node* n = g.node(id);
    if (n->op() != "Assign" || !absl::EndsWith(n->name(), kInitializerSuffix)) continue;
    const Node* handle = n->input(0).node;
    if (handle->op() == "Variable" && handle->name() == absl::StrCat(n->name(), "/ref")) {
      out.push_back(n);
    }
  }
  return out;
}

const Node* GlobalVariablesInitializer(const Scope& scope, SourceLocation loc) {
  return NoOp(scope.WithControlDependencies(AllInitializers(scope)), loc);
}

Output Zeros(const Scope& scope, const TensorShape& shape, DType dtype, SourceLocation loc) {
  return Constant(scope, shape, dtype, 0.0, loc);
}

Output Constant(const Scope& scope, const TensorShape& shape, DType dtype, double value,
                SourceLocation loc) {
  Tensor v(dtype, TensorShape());
  SLUICE_SWITCH_DTYPE(dtype, T, { *v.data<T>() = static_cast<T>(value); }, {});
  return Fill(scope, Tensor::FromVector<int64_t>(shape.dims()), v, loc);
}

Output RandomNormalInit(const Scope& scope, const TensorShape& shape, DType dtype, double stddev,
                        int64_t seed, SourceLocation loc) {
  Output r = RandomNormal(scope, Tensor::FromVector<int64_t>(shape.dims()), dtype, seed, loc);
  return Mul(scope, r, stddev, loc);
}

Output GlorotUniform(const Scope& scope, const TensorShape& shape, DType dtype, int64_t seed,
                     SourceLocation loc) {
  const double fan_in = shape.rank() > 0 ? shape.dim(0) : 1;
  const double fan_out = shape.rank() > 0 ? shape.dim(shape.rank() - 1) : 1;
  const double limit = std::sqrt(6.0 / (fan_in + fan_out));
  Output u = RandomUniform(scope, Tensor::FromVector<int64_t>(shape.dims()), dtype, seed, loc);
  return Sub(scope, Mul(scope, u, 2 * limit, loc), limit, loc);
}

}  // namespace ops
}  // namespace sluice
