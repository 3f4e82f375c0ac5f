#include "ops/gradients.h"

#include <deque>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/gradient_registry.h"
#include "ops/array_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/register.h"

namespace sluice {
namespace {

absl::Status CheckInGraph(const Scope& scope, const Output& o, absl::string_view what, size_t i) {
  if (!o.valid()) {
    return absl::InvalidArgumentError(absl::StrCat("AddGradients: ", what, "[", i, "] is invalid"));
  }
  if (scope.graph()->FindNode(o.node()->name()) != o.node()) {
    return absl::InvalidArgumentError(absl::StrCat("AddGradients: ", what, "[", i, "] ", o.name(),
                                                   " is not in the scope's graph"));
  }
  return absl::OkStatus();
}

absl::Status CheckGradient(const Output& grad, const Output& of, absl::string_view context) {
  if (grad.dtype() != of.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": gradient ", grad.name(), " has dtype ", DTypeName(grad.dtype()),
                     " but ", of.name(), " has dtype ", DTypeName(of.dtype())));
  }
  if (!grad.shape().IsCompatibleWith(of.shape())) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": gradient ", grad.name(), " has shape ", grad.shape().DebugString(),
                     " but ", of.name(), " has shape ", of.shape().DebugString()));
  }
  return absl::OkStatus();
}

// The sum of the gradients reaching one output, or an invalid Output when none does.
Output SumGradients(const Scope& scope, const std::vector<Output>& grads) {
  if (grads.empty()) return Output();
  if (grads.size() == 1) return grads[0];
  return ops::AddN(scope, grads);
}

absl::Status Build(const Scope& scope, const std::vector<Output>& ys, const std::vector<Output>& xs,
                   const std::vector<Output>& grad_ys_in, std::vector<Output>* grad_xs,
                   const GradientOptions& options) {
  SLUICE_RETURN_IF_ERROR(scope.status());
  if (grad_xs == nullptr) return absl::InvalidArgumentError("AddGradients: grad_xs is null");
  if (!grad_ys_in.empty() && grad_ys_in.size() != ys.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddGradients: ", ys.size(), " ys but ", grad_ys_in.size(), " grad_ys"));
  }
  for (size_t i = 0; i < ys.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(CheckInGraph(scope, ys[i], "ys", i));
    if (!IsFloating(ys[i].dtype())) {
      return absl::InvalidArgumentError(absl::StrCat("AddGradients: cannot differentiate ",
                                                     ys[i].name(), " of dtype ",
                                                     DTypeName(ys[i].dtype())));
    }
    if (!grad_ys_in.empty()) {
      SLUICE_RETURN_IF_ERROR(CheckInGraph(scope, grad_ys_in[i], "grad_ys", i));
      SLUICE_RETURN_IF_ERROR(CheckGradient(grad_ys_in[i], ys[i], "AddGradients"));
    }
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(CheckInGraph(scope, xs[i], "xs", i));
    if (!IsFloating(xs[i].dtype())) {
      return absl::InvalidArgumentError(
          absl::StrCat("AddGradients: cannot differentiate with respect to ", xs[i].name(),
                       " of dtype ", DTypeName(xs[i].dtype())));
    }
  }
  const Graph& g = *scope.graph();
  const int n = g.num_nodes();  // Nodes added below are not visited.

  // Nodes on a path from some x to some y along data edges: reachable backwards from ys and
  // forwards from xs. Node ids are a topological order, so visiting them in decreasing order
  // sees every consumer of a node before the node.
  std::vector<bool> to_ys(n, false), relevant(n, false);
  std::deque<const Node*> queue;
  for (const Output& y : ys) {
    if (!to_ys[y.node()->id()]) queue.push_back(y.node());
    to_ys[y.node()->id()] = true;
  }
  while (!queue.empty()) {
    const Node* node = queue.front();
    queue.pop_front();
    for (const Endpoint& in : node->inputs()) {
      if (!to_ys[in.node->id()]) {
        to_ys[in.node->id()] = true;
        queue.push_back(in.node);
      }
    }
  }
  for (const Output& x : xs) {
    const int id = x.node()->id();
    if (to_ys[id] && !relevant[id]) queue.push_back(x.node());
    relevant[id] = to_ys[id];
  }
  while (!queue.empty()) {
    const Node* node = queue.front();
    queue.pop_front();
    for (const OutEdge& e : node->out_edges()) {
      const int id = e.dst->id();
      if (e.is_control() || id >= n || !to_ys[id] || relevant[id]) continue;
      relevant[id] = true;
      queue.push_back(e.dst);
    }
  }

  // Pending gradients per node output, and the x endpoints wanted.
  std::vector<std::vector<std::vector<Output>>> pending(n);
  auto pending_of = [&](const Node* node, int index) -> std::vector<Output>& {
    auto& per_node = pending[node->id()];
    if (per_node.empty()) per_node.resize(node->num_outputs());
    return per_node[index];
  };
  for (size_t i = 0; i < ys.size(); ++i) {
    Output seed =
        grad_ys_in.empty()
            ? ops::OnesLike(scope.NewSubScope(absl::StrCat(ys[i].node()->name(), "_grad")), ys[i])
            : grad_ys_in[i];
    if (!seed.valid()) return scope.status();
    pending_of(ys[i].node(), ys[i].index()).push_back(seed);
  }
  std::vector<Output> x_grads(xs.size());
  const GradientRegistry& registry = *GradientRegistry::Global();

  for (int id = n - 1; id >= 0; --id) {
    if (!relevant[id]) continue;
    const Node* node = g.node(id);
    Scope gs = scope.NewSubScope(absl::StrCat(node->name(), "_grad"));
    if (!node->requested_device().empty()) gs = gs.WithDevice(node->requested_device());
    std::vector<Output> summed(node->num_outputs());
    bool any = false;
    if (!pending[id].empty()) {
      for (int o = 0; o < node->num_outputs(); ++o) {
        summed[o] = SumGradients(gs, pending[id][o]);
        if (!scope.ok()) return scope.status();
        any |= summed[o].valid();
      }
      pending[id].clear();
    }
    for (size_t i = 0; i < xs.size(); ++i) {
      if (xs[i].node() == node) x_grads[i] = summed[xs[i].index()];
    }
    if (!any) continue;
    // Only go further back when some input lies on a path from an x.
    bool wanted = false;
    for (const Endpoint& in : node->inputs()) wanted |= relevant[in.node->id()];
    if (!wanted) continue;

    const std::string context = absl::StrCat("AddGradients: ", node->DebugName());
    absl::StatusOr<const GradFn*> fn = registry.LookUp(node->op());
    if (!fn.ok()) return AnnotateStatus(fn.status(), context);
    if (*fn == nullptr) continue;  // NoGradient.
    std::vector<Output> dx;
    absl::Status s = (**fn)(gs, *node, summed, &dx);
    if (s.ok()) s = scope.status();
    if (!s.ok()) return AnnotateStatus(s, context);
    if (static_cast<int>(dx.size()) != node->num_inputs()) {
      return absl::InternalError(absl::StrCat(context, ": the gradient function returned ",
                                              dx.size(), " gradients for ", node->num_inputs(),
                                              " inputs"));
    }
    for (int i = 0; i < node->num_inputs(); ++i) {
      const Endpoint& in = node->input(i);
      if (!dx[i].valid() || !relevant[in.node->id()] ||
          !IsFloating(in.node->output_type(in.index))) {
        continue;
      }
      SLUICE_RETURN_IF_ERROR(
          CheckGradient(dx[i], Output(in.node, in.index), absl::StrCat(context, ", input ", i)));
      pending_of(in.node, in.index).push_back(dx[i]);
    }
  }

  grad_xs->assign(xs.size(), Output());
  for (size_t i = 0; i < xs.size(); ++i) {
    if (x_grads[i].valid()) {
      (*grad_xs)[i] = x_grads[i];
    } else if (options.unconnected == GradientOptions::Unconnected::kZero) {
      (*grad_xs)[i] = ops::ZerosLike(scope, xs[i]);
    }
  }
  return scope.status();
}

}  // namespace

absl::Status AddGradients(const Scope& scope, const std::vector<Output>& ys,
                          const std::vector<Output>& xs, const std::vector<Output>& grad_ys,
                          std::vector<Output>* grad_xs, const GradientOptions& options) {
  absl::Status s = Build(scope, ys, xs, grad_ys, grad_xs, options);
  scope.UpdateStatus(s);
  return s;
}

absl::Status AddGradients(const Scope& scope, const std::vector<Output>& ys,
                          const std::vector<Output>& xs, std::vector<Output>* grad_xs) {
  return AddGradients(scope, ys, xs, {}, grad_xs);
}

}  // namespace sluice
