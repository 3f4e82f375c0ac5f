#include "ops/optimizers.h"

#include <deque>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "ops/base_ops.h"
#include "ops/gradients.h"
#include "ops/math_ops.h"
#include "ops/state_ops.h"
#include "ops/training_ops.h"
#include "ops/variables.h"

namespace sluice {
namespace ops {
namespace {

Output OpInputOf(const Node& n, int i) { return Output(n.input(i).node, n.input(i).index); }

absl::Status CheckVariable(const Output& var) {
  if (!var.valid() || var.node()->op() != "Variable") {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer: ", var.valid() ? var.name() : "<invalid output>",
                     " is not the output of a Variable node"));
  }
  if (!var.shape().IsFullyDefined()) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer: variable '", var.node()->name(),
                                                   "' has shape ", var.shape().DebugString(),
                                                   ", which is not fully defined"));
  }
  return absl::OkStatus();
}

// Every node the given nodes depend on (data and control inputs), themselves included.
std::vector<bool> Ancestors(const Graph& g, const std::vector<const Node*>& roots) {
  std::vector<bool> seen(g.num_nodes(), false);
  std::deque<const Node*> queue;
  for (const Node* n : roots) {
    if (!seen[n->id()]) queue.push_back(n);
    seen[n->id()] = true;
  }
  auto visit = [&](const Node* n) {
    if (!seen[n->id()]) {
      seen[n->id()] = true;
      queue.push_back(n);
    }
  };
  while (!queue.empty()) {
    const Node* n = queue.front();
    queue.pop_front();
    for (const Endpoint& in : n->inputs()) visit(in.node);
    for (const Node* c : n->control_inputs()) visit(c);
  }
  return seen;
}

}  // namespace

Scope OnDeviceOf(const Scope& scope, const Output& var) {
  return var.valid() ? scope.WithDevice(var.node()->requested_device()) : scope;
}

absl::StatusOr<std::vector<Output>> Optimizer::ComputeGradients(
    const Scope& scope, Output loss, const std::vector<Output>& var_list) {
  SLUICE_RETURN_IF_ERROR(scope.status());
  for (const Output& v : var_list) SLUICE_RETURN_IF_ERROR(CheckVariable(v));
  std::vector<Output> grads;
  SLUICE_RETURN_IF_ERROR(AddGradients(scope.NewSubScope("gradients"), {loss}, var_list, &grads));
  return grads;
}

absl::StatusOr<const Node*> Optimizer::ApplyGradients(
    const Scope& scope, const std::vector<std::pair<Output, Output>>& grads_and_vars) {
  SLUICE_RETURN_IF_ERROR(scope.status());
  std::vector<std::pair<Output, Output>> pairs;
  for (const auto& [grad, var] : grads_and_vars) {
    SLUICE_RETURN_IF_ERROR(CheckVariable(var));
    if (grad.valid()) pairs.emplace_back(grad, var);
  }
  if (pairs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": no gradient for any variable (the loss depends on none of them)"));
  }
  const Scope s = scope.NewSubScope(name_);
  // Updates, slots and non-slot state go on their variable's device whatever device the caller's
  // scope asks for (TF1's colocate_with): an update reads and writes the variable in place, and
  // on a cluster the variable's task (a parameter server) is where that can happen.
  SLUICE_RETURN_IF_ERROR(Prepare(OnDeviceOf(s, pairs[0].second), pairs[0].second.dtype()));

  // Readers of each variable that the step runs anyway: ancestors of the gradients.
  std::vector<const Node*> grad_nodes;
  for (const auto& p : pairs) grad_nodes.push_back(p.first.node());
  const std::vector<bool> needed = Ancestors(*scope.graph(), grad_nodes);

  std::vector<const Node*> updates;
  for (const auto& [grad, var] : pairs) {
    std::vector<const Node*> readers;
    for (const OutEdge& e : var.node()->out_edges()) {
      if (!e.is_control() && e.dst->id() < static_cast<int>(needed.size()) && needed[e.dst->id()]) {
        readers.push_back(e.dst);
      }
    }
    const Scope on_var = OnDeviceOf(s, var);
    const Node* update = ApplyDense(on_var, on_var.WithControlDependencies(readers), grad, var);
    SLUICE_RETURN_IF_ERROR(s.status());
    if (update == nullptr) return absl::InternalError(absl::StrCat(name_, ": no update built"));
    updates.push_back(update);
  }
  std::vector<const Node*> deps = Finish(s, updates);
  SLUICE_RETURN_IF_ERROR(s.status());
  const Node* train = NoOp(scope.WithControlDependencies(deps));
  SLUICE_RETURN_IF_ERROR(scope.status());
  return train;
}

absl::StatusOr<const Node*> Optimizer::Minimize(const Scope& scope, Output loss,
                                                const std::vector<Output>& var_list) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<Output> grads, ComputeGradients(scope, loss, var_list));
  std::vector<std::pair<Output, Output>> pairs;
  for (size_t i = 0; i < var_list.size(); ++i) pairs.emplace_back(grads[i], var_list[i]);
  return ApplyGradients(scope, pairs);
}

Output Optimizer::CreateSlot(const Scope& scope, const Output& var, const std::string& slot,
                             double value) {
  const std::string name = absl::StrCat(VariableNameOf(*var.node()), "/", slot);
  const Scope s = OnDeviceOf(scope, var);
  Output v = VariableWithInitNamed(s, name, Constant(s, var.shape(), var.dtype(), value));
  if (v.valid()) created_.push_back(v);
  return v;
}

Output Optimizer::CreateNonSlot(const Scope& scope, const std::string& suffix, DType dtype,
                                double value) {
  Tensor t(dtype, TensorShape());
  SLUICE_SWITCH_DTYPE(dtype, T, { *t.data<T>() = static_cast<T>(value); }, {});
  Output v = VariableWithInitNamed(scope, absl::StrCat(name(), "/", suffix), t);
  if (v.valid()) created_.push_back(v);
  return v;
}

// True when `o` is a Const holding the integer 0 (a Gather axis).
bool IsConstZero(const Output& o) {
  if (!o.valid() || o.node()->op() != "Const") return false;
  absl::StatusOr<Tensor> t = o.node()->GetAttr<Tensor>("value");
  if (!t.ok() || t->num_elements() != 1) return false;
  if (t->dtype() == DType::kInt32) return t->data<int32_t>()[0] == 0;
  if (t->dtype() == DType::kInt64) return t->data<int64_t>()[0] == 0;
  return false;
}

// The gradient of rows gathered from `var` (embedding_lookup), read by nothing else: its
// (indices, rows), so an update can touch only those rows instead of densifying the gradient
// into a tensor of var's shape. The GatherGrad node is then left unused, and steps prune it.
std::optional<std::pair<Output, Output>> GatheredRows(const Output& grad, const Output& var) {
  const Node& gg = *grad.node();
  if (gg.op() == "GatherGrad" && gg.out_edges().empty() && IsConstZero(OpInputOf(gg, 3)) &&
      OpInputOf(gg, 0).dtype() == var.dtype()) {
    return std::make_pair(OpInputOf(gg, 1), OpInputOf(gg, 0));
  }
  return std::nullopt;
}

const Node* GradientDescentOptimizer::ApplyDense(const Scope& slot_scope, const Scope& update_scope,
                                                 const Output& grad, const Output& var) {
  // Only the gathered rows: var[indices[i]] -= lr * rows[i].
  if (auto rows = GatheredRows(grad, var)) {
    Output step =
        Mul(update_scope, rows->second, Constant(update_scope, TensorShape(), var.dtype(), lr_));
    Output updated = ScatterSub(update_scope, var, rows->first, step);
    return updated.valid() ? updated.node() : nullptr;
  }
  // A gradient that is a MatMul nothing else reads folds into the update: one GEMM
  // accumulating into the variable. The MatMul node is left unused, so steps prune it.
  const Node& g = *grad.node();
  if (g.op() == "MatMul" && g.out_edges().empty() && var.shape().rank() == 2) {
    absl::StatusOr<bool> ta = g.GetAttr<bool>("transpose_a");
    absl::StatusOr<bool> tb = g.GetAttr<bool>("transpose_b");
    if (ta.ok() && tb.ok()) {
      return ApplyGradientDescentMatMul(update_scope, var, lr_, OpInputOf(g, 0), OpInputOf(g, 1),
                                        *ta, *tb);
    }
  }
  return ApplyGradientDescent(update_scope, var, lr_, grad);
}

const Node* MomentumOptimizer::ApplyDense(const Scope& slot_scope, const Scope& update_scope,
                                          const Output& grad, const Output& var) {
  Output accum = CreateSlot(slot_scope, var, name(), 0.0);
  if (auto rows = GatheredRows(grad, var)) {
    return SparseApplyMomentum(
        update_scope, var, accum, Constant(update_scope, TensorShape(), var.dtype(), lr_),
        rows->second, rows->first, Constant(update_scope, TensorShape(), var.dtype(), momentum_),
        use_nesterov_);
  }
  return ApplyMomentum(update_scope, var, accum, lr_, grad, momentum_, use_nesterov_);
}

const Node* AdagradOptimizer::ApplyDense(const Scope& slot_scope, const Scope& update_scope,
                                         const Output& grad, const Output& var) {
  Output accum = CreateSlot(slot_scope, var, name(), initial_);
  if (auto rows = GatheredRows(grad, var)) {
    return SparseApplyAdagrad(update_scope, var, accum,
                              Constant(update_scope, TensorShape(), var.dtype(), lr_), rows->second,
                              rows->first);
  }
  return ApplyAdagrad(update_scope, var, accum, lr_, grad);
}

absl::Status AdamOptimizer::Prepare(const Scope& scope, DType dtype) {
  beta1_power_ = CreateNonSlot(scope, "beta1_power", dtype, beta1_);
  beta2_power_ = CreateNonSlot(scope, "beta2_power", dtype, beta2_);
  return scope.status();
}

const Node* AdamOptimizer::ApplyDense(const Scope& slot_scope, const Scope& update_scope,
                                      const Output& grad, const Output& var) {
  Output m = CreateSlot(slot_scope, var, absl::StrCat(name(), "_m"), 0.0);
  Output v = CreateSlot(slot_scope, var, absl::StrCat(name(), "_v"), 0.0);
  if (!beta1_power_.valid() || !beta2_power_.valid()) return nullptr;
  // The hyper-parameters follow the variable's dtype; the powers are of the first variable's.
  Output b1p = beta1_power_, b2p = beta2_power_;
  if (b1p.dtype() != var.dtype()) {
    update_scope.UpdateStatus(absl::InvalidArgumentError(
        absl::StrCat(name(), ": all variables must have one dtype, got ", DTypeName(b1p.dtype()),
                     " and ", DTypeName(var.dtype()), " (variable '", var.node()->name(), "')")));
    return nullptr;
  }
  return ApplyAdam(update_scope, var, m, v, b1p, b2p, lr_, beta1_, beta2_, epsilon_, grad);
}

std::vector<const Node*> AdamOptimizer::Finish(const Scope& scope,
                                               const std::vector<const Node*>& updates) {
  const Scope after = OnDeviceOf(scope, beta1_power_).WithControlDependencies(updates);
  Output a1 = Assign(after, beta1_power_, Mul(after, beta1_power_, beta1_));
  Output a2 = Assign(after, beta2_power_, Mul(after, beta2_power_, beta2_));
  if (!a1.valid() || !a2.valid()) return {};
  return {a1.node(), a2.node()};
}

}  // namespace ops
}  // namespace sluice
