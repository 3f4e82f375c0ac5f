#include "distributed/pipeline_builder.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/gradients.h"
#include "ops/math_ops.h"

namespace sluice {
namespace pipeline {
namespace {

// Which nodes the pipeline copies per micro-batch, and what crosses between stages.
struct Cut {
  std::vector<int> stage_of;                      // Node id -> stage, or -1.
  std::vector<bool> copied;                       // Depends on a batch input and leads to a target.
  std::vector<std::vector<const Node*>> nodes;    // Per stage, its copied nodes in id order.
  std::vector<std::vector<Endpoint>> boundary;    // Per stage s, its outputs stage s + 1 reads.
  std::vector<std::vector<Endpoint>> batch_used;  // Per stage, the batch inputs it reads.
};

int IndexOf(const std::vector<Endpoint>& list, const Endpoint& e) {
  auto it = std::find(list.begin(), list.end(), e);
  return it == list.end() ? -1 : static_cast<int>(it - list.begin());
}

absl::StatusOr<Cut> CutStages(const Graph& g, const std::vector<StageSpec>& stages,
                              const std::vector<Endpoint>& batch,
                              const std::vector<Output>& targets) {
  const int n = g.num_nodes(), p = static_cast<int>(stages.size());
  if (p == 0) return absl::InvalidArgumentError("a pipeline needs at least one stage");
  if (batch.empty()) return absl::InvalidArgumentError("a pipeline needs at least one batch input");
  Cut cut;
  cut.stage_of.assign(n, -1);
  for (int s = 0; s < p; ++s) {
    if (stages[s].device.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("pipeline stage ", s, " has no device"));
    }
    for (const Node* node : stages[s].nodes) {
      int& of = cut.stage_of[node->id()];
      if (of >= 0 && of != s) {
        return absl::InvalidArgumentError(
            absl::StrCat(node->DebugName(), " is in pipeline stages ", of, " and ", s));
      }
      of = s;
    }
  }
  std::vector<bool> depends(n, false), leads(n, false);
  for (int id = 0; id < n; ++id) {  // Ids are a topological order.
    for (const Endpoint& in : g.node(id)->inputs()) {
      if (depends[in.node->id()] || IndexOf(batch, in) >= 0) depends[id] = true;
    }
  }
  std::vector<const Node*> stack;
  for (const Output& t : targets) stack.push_back(t.node());
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (leads[node->id()]) continue;
    leads[node->id()] = true;
    for (const Endpoint& in : node->inputs()) stack.push_back(in.node);
    for (const Node* c : node->control_inputs()) stack.push_back(c);
  }
  cut.copied.assign(n, false);
  cut.nodes.resize(p);
  cut.boundary.resize(p);
  cut.batch_used.resize(p);
  for (int id = 0; id < n; ++id) {
    if (!depends[id] || !leads[id]) continue;
    const Node* node = g.node(id);
    const int s = cut.stage_of[id];
    if (s < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(node->DebugName(), " depends on a batch input and leads to ",
                       targets[0].name(), " but was built outside every pipeline stage"));
    }
    cut.copied[id] = true;
    cut.nodes[s].push_back(node);
    for (const Endpoint& in : node->inputs()) {
      if (IndexOf(batch, in) >= 0) {
        if (IndexOf(cut.batch_used[s], in) < 0) cut.batch_used[s].push_back(in);
        continue;
      }
      if (!cut.copied[in.node->id()]) continue;
      const int u = cut.stage_of[in.node->id()];
      if (u != s && u != s - 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            node->DebugName(), " in pipeline stage ", s, " reads ", in.DebugString(), " of stage ",
            u, ": a stage may read only its own nodes, the previous stage's and batch inputs"));
      }
      if (u == s - 1 && IndexOf(cut.boundary[u], in) < 0) cut.boundary[u].push_back(in);
    }
  }
  for (int s = 0; s < p; ++s) {
    if (cut.nodes[s].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pipeline stage ", s, " has no node that depends on a batch input and leads to ",
          targets[0].name()));
    }
  }
  return cut;
}

// Adds the pipelined nodes: per micro-batch copies, backward passes, the per-worker order.
class Builder {
 public:
  Builder(const Scope& scope, const std::vector<StageSpec>& stages,
          const std::vector<Endpoint>& batch, Cut cut, int m, std::vector<int> worker_of_stage)
      : scope_(scope),
        stages_(stages),
        batch_(batch),
        cut_(std::move(cut)),
        m_(m),
        worker_of_stage_(std::move(worker_of_stage)),
        copies_(m),
        received_(stages.size(), std::vector<std::vector<Output>>(m)),
        input_grads_(stages.size(), std::vector<std::vector<Output>>(m)) {
    int workers = 0;
    for (int w : worker_of_stage_) workers = std::max(workers, w + 1);
    last_end_.assign(workers, nullptr);
  }

  absl::Status Forward(int s, int i, std::vector<TimedAction>* timing) {
    const Scope dev = scope_.WithDevice(stages_[s].device);
    const Scope mb = dev.NewSubScope(absl::StrCat("mb", i));
    const int first = scope_.graph()->num_nodes();
    std::vector<const Node*> after;  // What the action's start waits for.
    if (s > 0) {
      for (size_t k = 0; k < cut_.boundary[s - 1].size(); ++k) {
        const Endpoint& e = cut_.boundary[s - 1][k];
        // StopGradient: the stage's backward ends at its inputs (their gradients go back to
        // the previous stage's backward), it never reaches into the previous stage.
        Output in = ops::StopGradient(mb.WithOpName(absl::StrCat("stage", s, "_input", k)),
                                      Output(copies_[i].at(e.node), e.index));
        received_[s][i].push_back(in);
        after.push_back(in.node());
      }
    }
    const Node* start = Start(s, mb, after);
    for (const Node* node : cut_.nodes[s]) {
      std::vector<Input> inputs;
      bool entry = true;  // Reads nothing of its own action: ordered after `start` explicitly.
      for (const Endpoint& in : node->inputs()) {
        if (IndexOf(batch_, in) >= 0) {
          SLUICE_ASSIGN_OR_RETURN(std::vector<Output> pieces, Pieces(s, in));
          inputs.emplace_back(pieces[i]);
        } else if (!cut_.copied[in.node->id()]) {
          inputs.emplace_back(Output(in.node, in.index));
        } else if (cut_.stage_of[in.node->id()] == s) {
          inputs.emplace_back(Output(copies_[i].at(in.node), in.index));
          entry = false;
        } else {
          inputs.emplace_back(received_[s][i][IndexOf(cut_.boundary[s - 1], in)]);
        }
      }
      std::vector<const Node*> control;
      for (const Node* c : node->control_inputs()) {
        control.push_back(cut_.copied[c->id()] ? copies_[i].at(c) : c);
      }
      if (entry) control.push_back(start);
      const std::string& where = node->source_location();
      std::string file = where;
      int line = 0;
      if (size_t colon = where.rfind(':');
          colon != std::string::npos && absl::SimpleAtoi(where.substr(colon + 1), &line)) {
        file = where.substr(0, colon);
      }
      const Node* copy = mb.WithOpName(node->name())
                             .WithControlDependencies(control)
                             .AddNode(node->op(), inputs, node->attrs(), {file.c_str(), line});
      if (copy == nullptr) return scope_.status();
      copies_[i][node] = copy;
    }
    return End(s, i, Action::Type::kForward, mb, first, start, timing);
  }

  // The backward of stage s for micro-batch i; `seed` the gradient of the last stage's loss.
  absl::Status Backward(int s, int i, const Output& loss, const Output& seed,
                        const std::vector<Output>& variables, std::vector<TimedAction>* timing) {
    const Scope dev = scope_.WithDevice(stages_[s].device);
    const Scope mb = dev.NewSubScope(absl::StrCat("mb", i, "_backward"));
    const int first = scope_.graph()->num_nodes();
    std::vector<Output> ys, dys;
    std::vector<const Node*> after;
    if (s + 1 == static_cast<int>(stages_.size())) {
      ys.push_back(Output(copies_[i].at(loss.node()), loss.index()));
      dys.push_back(seed);
    } else {
      for (size_t k = 0; k < cut_.boundary[s].size(); ++k) {
        const Output& dy = input_grads_[s + 1][i][k];
        if (!dy.valid()) continue;  // Not differentiable, or the next stage does not use it.
        const Endpoint& e = cut_.boundary[s][k];
        ys.push_back(Output(copies_[i].at(e.node), e.index));
        dys.push_back(
            ops::Identity(mb.WithOpName(absl::StrCat("stage", s, "_output_grad", k)), dy));
        after.push_back(dys.back().node());
      }
    }
    const Node* start = Start(s, mb, after);
    std::vector<Output> xs;
    for (const Output& in : received_[s][i]) {
      if (IsFloating(in.dtype())) xs.push_back(in);
    }
    const size_t num_inputs = xs.size();
    xs.insert(xs.end(), variables.begin(), variables.end());
    std::vector<Output> grads(xs.size());
    if (!ys.empty()) {
      SLUICE_RETURN_IF_ERROR(
          AddGradients(mb.WithControlDependencies({start}), ys, xs, dys, &grads));
    }
    std::vector<Output>& in_grads = input_grads_[s][i];
    size_t next = 0;
    for (const Output& in : received_[s][i]) {
      in_grads.push_back(IsFloating(in.dtype()) ? grads[next++] : Output());
    }
    accumulated_.resize(variables.size());
    for (size_t v = 0; v < variables.size(); ++v) {
      const Output& g = grads[num_inputs + v];
      if (!g.valid()) continue;
      Output& acc = accumulated_[v];
      acc = acc.valid() ? ops::Add(mb.NewSubScope("accumulate"), acc, g) : g;
    }
    SLUICE_RETURN_IF_ERROR(scope_.status());
    return End(s, i, Action::Type::kBackward, mb, first, start, timing);
  }

  const Node* copy(int i, const Node* node) const { return copies_[i].at(node); }
  const std::vector<Output>& accumulated() const { return accumulated_; }

 private:
  // The action's start: after the worker's previous action and the inputs in `after`.
  const Node* Start(int s, const Scope& mb, std::vector<const Node*> after) {
    if (const Node* prev = last_end_[worker_of_stage_[s]]) after.push_back(prev);
    Output t = ops::Timestamp(
        mb.NewSubScope(absl::StrCat("stage", s, "_start")).WithControlDependencies(after));
    return t.node();
  }

  // The action's end: after every node it added (those no node of it consumes suffice).
  absl::Status End(int s, int i, Action::Type type, const Scope& mb, int first, const Node* start,
                   std::vector<TimedAction>* timing) {
    SLUICE_RETURN_IF_ERROR(scope_.status());
    const Graph& g = *scope_.graph();
    std::vector<const Node*> sinks;
    for (int id = first; id < g.num_nodes(); ++id) {
      if (g.node(id)->out_edges().empty()) sinks.push_back(g.node(id));
    }
    Output end = ops::Timestamp(
        mb.NewSubScope(absl::StrCat("stage", s, "_end")).WithControlDependencies(sinks));
    SLUICE_RETURN_IF_ERROR(scope_.status());
    last_end_[worker_of_stage_[s]] = end.node();
    timing->push_back(TimedAction{Action{s, type, i}, worker_of_stage_[s], Output(start, 0), end});
    return absl::OkStatus();
  }

  // Batch input `in` split into m micro-batches on stage s's device (made once per stage).
  absl::StatusOr<std::vector<Output>> Pieces(int s, const Endpoint& in) {
    std::vector<Output>& pieces = pieces_[{s, in.node->id(), in.index}];
    if (pieces.empty()) {
      const Scope dev = scope_.WithDevice(stages_[s].device);
      pieces = ops::Split(dev.NewSubScope(absl::StrCat(in.node->name(), "_micro_batches")), 0,
                          Output(in.node, in.index), m_);
      SLUICE_RETURN_IF_ERROR(scope_.status());
    }
    return pieces;
  }

  const Scope& scope_;
  const std::vector<StageSpec>& stages_;
  const std::vector<Endpoint>& batch_;
  Cut cut_;
  const int m_;
  std::vector<int> worker_of_stage_;
  std::vector<absl::flat_hash_map<const Node*, const Node*>> copies_;  // Per micro-batch.
  std::vector<std::vector<std::vector<Output>>> received_;     // [s][i][k]: boundary[s-1][k].
  std::vector<std::vector<std::vector<Output>>> input_grads_;  // [s][i][k]: its gradient.
  std::vector<Output> accumulated_;                            // Per variable.
  std::vector<const Node*> last_end_;                          // Per worker.
  absl::flat_hash_map<std::tuple<int, int, int>, std::vector<Output>> pieces_;  // (s, node, out)
};

std::vector<Endpoint> Endpoints(const std::vector<Output>& outputs) {
  std::vector<Endpoint> out;
  for (const Output& o : outputs) out.push_back(o.endpoint());
  return out;
}

// One micro-batch's bytes of what stage s's forward produces, or -1 when a shape is unknown.
int64_t ActivationBytes(const Builder& b, const std::vector<const Node*>& nodes) {
  int64_t bytes = 0;
  for (const Node* node : nodes) {
    const Node* copy = b.copy(0, node);
    for (int o = 0; o < copy->num_outputs(); ++o) {
      const TensorShape& shape = copy->output_shape(o);
      if (!shape.IsFullyDefined()) return -1;
      bytes += shape.num_elements() * static_cast<int64_t>(DTypeSize(copy->output_type(o)));
    }
  }
  return bytes;
}

absl::Status CheckOutputs(const Graph& g, const std::vector<Output>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Output& o = outputs[i];
    if (!o.valid() || g.FindNode(o.node()->name()) != o.node()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pipeline output ", i, " is not a tensor of the graph"));
    }
  }
  return absl::OkStatus();
}

// The order to build actions in: each worker's order, interleaved so that every action is
// built after the actions it reads (a schedule that passed Simulate always completes).
absl::StatusOr<std::vector<Action>> BuildOrder(const Schedule& schedule) {
  const int p = schedule.num_stages, m = schedule.num_micro_batches;
  std::vector<std::vector<bool>> fwd(p, std::vector<bool>(m)), bwd(p, std::vector<bool>(m));
  std::vector<size_t> next(schedule.num_workers(), 0);
  std::vector<Action> order;
  bool progress = true;
  while (progress) {
    progress = false;
    for (int w = 0; w < schedule.num_workers(); ++w) {
      while (next[w] < schedule.actions[w].size()) {
        const Action& a = schedule.actions[w][next[w]];
        const bool ready = a.type == Action::Type::kForward
                               ? (a.stage == 0 || fwd[a.stage - 1][a.micro_batch])
                               : fwd[a.stage][a.micro_batch] &&
                                     (a.stage + 1 == p || bwd[a.stage + 1][a.micro_batch]);
        if (!ready) break;
        (a.type == Action::Type::kForward ? fwd : bwd)[a.stage][a.micro_batch] = true;
        order.push_back(a);
        ++next[w];
        progress = true;
      }
    }
  }
  if (order.size() != static_cast<size_t>(2 * p * m)) {
    return absl::InternalError("the verified schedule did not order all of its actions");
  }
  return order;
}

}  // namespace

std::optional<std::pair<std::string, int>> PipelineStageOf(absl::string_view node_name) {
  constexpr absl::string_view kSuffix = "_start/Timestamp";
  if (!absl::ConsumeSuffix(&node_name, kSuffix)) return std::nullopt;
  const size_t at = node_name.rfind("/stage");
  int stage = 0;
  if (at == absl::string_view::npos ||
      !absl::SimpleAtoi(node_name.substr(at + strlen("/stage")), &stage)) {
    return std::nullopt;
  }
  node_name = node_name.substr(0, at);
  absl::ConsumeSuffix(&node_name, "_backward");
  const size_t mb = node_name.rfind("/mb");
  int micro_batch = 0;
  if (mb == absl::string_view::npos ||
      !absl::SimpleAtoi(node_name.substr(mb + strlen("/mb")), &micro_batch)) {
    return std::nullopt;
  }
  return std::make_pair(std::string(node_name.substr(0, mb)), stage);
}

std::vector<const Node*> NodesSince(const Graph& graph, int first_id) {
  std::vector<const Node*> nodes;
  for (int id = std::max(first_id, 0); id < graph.num_nodes(); ++id)
    nodes.push_back(graph.node(id));
  return nodes;
}

absl::StatusOr<Built> BuildTraining(const Scope& scope, const TrainingSpec& spec) {
  SLUICE_RETURN_IF_ERROR(scope.status());
  const Schedule& schedule = spec.schedule;
  SLUICE_RETURN_IF_ERROR(schedule.Validate());
  const int p = static_cast<int>(spec.stages.size()), m = schedule.num_micro_batches;
  if (schedule.num_stages != p) {
    return absl::InvalidArgumentError(
        absl::StrCat("the schedule has ", schedule.num_stages, " stages but the model ", p));
  }
  // One device per worker of the schedule, and different workers on different devices.
  std::vector<std::string> worker_device(schedule.num_workers());
  for (int s = 0; s < p; ++s) {
    std::string& d = worker_device[schedule.worker_of_stage[s]];
    if (d.empty()) d = spec.stages[s].device;
    if (d != spec.stages[s].device) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the schedule runs stage ", s, " on worker ", schedule.worker_of_stage[s],
          " with another stage on ", d, ", but stage ", s, " is on ", spec.stages[s].device));
    }
  }
  for (int w = 0; w < schedule.num_workers(); ++w) {
    for (int v = 0; v < w; ++v) {
      if (worker_device[v] == worker_device[w]) {
        return absl::InvalidArgumentError(
            absl::StrCat("the schedule's workers ", v, " and ", w, " are both ", worker_device[w]));
      }
    }
  }
  if (!spec.loss.valid() || spec.loss.node()->output_shape(spec.loss.index()).rank() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a pipeline's loss must be a scalar; ", spec.loss.valid() ? spec.loss.name() : "(invalid)",
        " has shape ",
        spec.loss.valid() ? spec.loss.node()->output_shape(spec.loss.index()).DebugString() : "?"));
  }
  if (spec.variables.empty()) return absl::InvalidArgumentError("a pipeline needs variables");
  SLUICE_RETURN_IF_ERROR(CheckOutputs(*scope.graph(), {spec.loss}));
  SLUICE_RETURN_IF_ERROR(CheckOutputs(*scope.graph(), spec.variables));
  SLUICE_RETURN_IF_ERROR(CheckOutputs(*scope.graph(), spec.batch_inputs));
  const std::vector<Endpoint> batch = Endpoints(spec.batch_inputs);
  // A cut that succeeds has the loss in the last stage: every stage leads to it, and a stage
  // reads only the one before it.
  SLUICE_ASSIGN_OR_RETURN(Cut cut, CutStages(*scope.graph(), spec.stages, batch, {spec.loss}));
  // Verify before adding anything. Activation sizes come from the graph when the user gave
  // none: a dry run is not possible here, so estimate from the stage's own output shapes.
  Costs costs = spec.costs;
  SLUICE_ASSIGN_OR_RETURN(Report predicted, Simulate(schedule, costs));
  SLUICE_ASSIGN_OR_RETURN(std::vector<Action> order, BuildOrder(schedule));

  const Scope& root = scope;
  Builder b(root, spec.stages, batch, cut, m, schedule.worker_of_stage);
  Built built;
  Output seed = ops::Const(root.WithDevice(spec.stages[p - 1].device).WithOpName("loss_seed"),
                           Tensor::Scalar<float>(1.0f / static_cast<float>(m)));
  if (spec.loss.dtype() != DType::kFloat32) {
    seed = ops::Cast(root.WithDevice(spec.stages[p - 1].device), seed, spec.loss.dtype());
  }
  for (const Action& a : order) {
    SLUICE_RETURN_IF_ERROR(
        a.type == Action::Type::kForward
            ? b.Forward(a.stage, a.micro_batch, &built.timing)
            : b.Backward(a.stage, a.micro_batch, spec.loss, seed, spec.variables, &built.timing));
  }
  for (int s = 0; s < p; ++s) built.activation_bytes.push_back(ActivationBytes(b, cut.nodes[s]));
  const Scope last = root.WithDevice(spec.stages[p - 1].device);
  for (int i = 0; i < m; ++i) {
    built.micro_losses.push_back(Output(b.copy(i, spec.loss.node()), spec.loss.index()));
  }
  built.loss = ops::Mul(last.WithOpName("loss"), ops::AddN(last, built.micro_losses), seed);
  for (size_t v = 0; v < spec.variables.size(); ++v) {
    const Output& g = v < b.accumulated().size() ? b.accumulated()[v] : Output();
    built.grads_and_vars.emplace_back(g, spec.variables[v]);
  }
  // The prediction again, now with the graph's activation sizes where the user gave none.
  const bool user_sizes = costs.activation_bytes.size() != 1 || costs.activation_bytes[0] != 0;
  for (int s = 0; s < p && !user_sizes && costs.memory_budget.has_value(); ++s) {
    if (built.activation_bytes[s] < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot check the pipeline's memory budget: the shapes of stage ", s,
                       "'s activations are not fully defined; give their bytes per micro-batch"));
    }
  }
  if (!user_sizes && std::all_of(built.activation_bytes.begin(), built.activation_bytes.end(),
                                 [](int64_t v) { return v >= 0; })) {
    costs.activation_bytes = built.activation_bytes;
    SLUICE_ASSIGN_OR_RETURN(predicted, Simulate(schedule, costs));
  }
  built.predicted = std::move(predicted);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return built;
}

absl::StatusOr<Built> BuildInference(const Scope& scope, const std::vector<StageSpec>& stages,
                                     const std::vector<Output>& batch_inputs,
                                     const std::vector<Output>& outputs, int num_micro_batches) {
  SLUICE_RETURN_IF_ERROR(scope.status());
  const int p = static_cast<int>(stages.size()), m = num_micro_batches;
  if (m < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pipeline needs at least one micro-batch, got ", m));
  }
  if (outputs.empty()) return absl::InvalidArgumentError("a pipeline needs outputs to compute");
  SLUICE_RETURN_IF_ERROR(CheckOutputs(*scope.graph(), outputs));
  SLUICE_RETURN_IF_ERROR(CheckOutputs(*scope.graph(), batch_inputs));
  const std::vector<Endpoint> batch = Endpoints(batch_inputs);
  SLUICE_ASSIGN_OR_RETURN(Cut cut, CutStages(*scope.graph(), stages, batch, outputs));
  for (const Output& o : outputs) {
    if (!cut.copied[o.node()->id()]) {
      return absl::InvalidArgumentError(
          absl::StrCat("pipeline output ", o.name(), " does not depend on a batch input"));
    }
  }
  // Workers are the stages' distinct devices; each runs its stages micro-batch by micro-batch.
  std::vector<std::string> devices;
  std::vector<int> worker_of_stage;
  for (const StageSpec& st : stages) {
    auto it = std::find(devices.begin(), devices.end(), st.device);
    worker_of_stage.push_back(static_cast<int>(it - devices.begin()));
    if (it == devices.end()) devices.push_back(st.device);
  }
  const Scope& root = scope;
  Builder b(root, stages, batch, cut, m, worker_of_stage);
  Built built;
  for (int i = 0; i < m; ++i) {
    for (int s = 0; s < p; ++s) SLUICE_RETURN_IF_ERROR(b.Forward(s, i, &built.timing));
  }
  for (int s = 0; s < p; ++s) built.activation_bytes.push_back(ActivationBytes(b, cut.nodes[s]));
  for (const Output& o : outputs) {
    std::vector<Output> parts;
    for (int i = 0; i < m; ++i) parts.push_back(Output(b.copy(i, o.node()), o.index()));
    const int s = cut.stage_of[o.node()->id()];
    built.outputs.push_back(ops::Concat(
        root.WithDevice(stages[s].device).NewSubScope(absl::StrCat(o.node()->name(), "_output")),
        parts, 0));
  }
  SLUICE_RETURN_IF_ERROR(scope.status());
  return built;
}

}  // namespace pipeline
}  // namespace sluice
