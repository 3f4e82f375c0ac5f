// Pipeline execution: turns a model built as p stages into the graph that runs a batch as m
// micro-batches under a schedule (GPipe, 1F1B, interleaved 1F1B or the user's own), verified by
// pipeline::Simulate before any node is added.
//
// The user builds the model once, each stage's nodes on its device (StageSpec: the nodes built
// for stage s, e.g. everything added between two graph sizes; Python: `with
// sl.pipeline.stage(s, device=...)`). BuildTraining then adds, for each micro-batch i:
//   - the batch inputs split along dimension 0 into m equal micro-batches (a batch that does
//     not divide is refused when shapes are known, else by the Split node at run time);
//   - F(s, i): a copy of stage s's batch-dependent nodes on the stage's device, reading the
//     previous stage's copy for micro-batch i (so every transfer between stages is its own
//     edge, its rendezvous key naming the micro-batch: "pipeline/mb3/...");
//   - B(s, i): the backward of stage s for micro-batch i (ops/gradients.h with the stage's
//     outputs as ys and the next stage's input gradients as grad_ys; the last stage seeds its
//     loss with 1/m), accumulating each variable's gradient in schedule order.
// Shared nodes (variables, constants, anything not depending on the batch) are not copied.
// On each worker the actions run strictly in the schedule's order: a Timestamp node starts
// each action (after the previous action's end and the action's inputs from other workers)
// and another ends it (after every node of the action); both are fetchable (`timing`), so a
// run measures each worker's busy time, bubble and the activations each stage held.
// The averaged gradients are the mean of the micro-batch gradients: with a loss that is a mean
// over its micro-batch and equal micro-batches, exactly the whole batch's gradient.
//
// Limits (checked, with errors naming the node): every node that depends on a batch input and
// leads to the loss (outputs) lies in a stage; a stage reads only its own nodes, the previous
// stage's, batch inputs and shared nodes (no skip connections across stages); the loss is a
// scalar in the last stage.
//
// Thread-compatible like Scope.
//
//   pipeline::TrainingSpec spec{.stages = {{"/job:worker/task:0", s0}, {".../task:1", s1}},
//                               .batch_inputs = {x, y}, .loss = loss, .variables = {w0, w1}};
//   SLUICE_ASSIGN_OR_RETURN(spec.schedule, pipeline::OneFOneB(2, 4));
//   SLUICE_ASSIGN_OR_RETURN(pipeline::Built p, pipeline::BuildTraining(root, spec));
//   const Node* train = opt.ApplyGradients(root, p.grads_and_vars);
#ifndef SLUICE_DISTRIBUTED_PIPELINE_BUILDER_H_
#define SLUICE_DISTRIBUTED_PIPELINE_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distributed/pipeline_schedule.h"
#include "graph/scope.h"

namespace sluice {
namespace pipeline {

// One stage as the user built it.
struct StageSpec {
  std::string device;
  std::vector<const Node*> nodes;
};

// For a node of a pipelined step, its pipeline's name scope and stage: ("pipeline", 1) for an
// action's start "pipeline/mb3/stage1_start/Timestamp"; nullopt for every other node. The
// master names the stages a lost task ran with it.
std::optional<std::pair<std::string, int>> PipelineStageOf(absl::string_view node_name);

// The nodes of `graph` with ids from `first_id` on: what was built since graph.num_nodes() was
// `first_id` (how a C++ user collects a stage).
std::vector<const Node*> NodesSince(const Graph& graph, int first_id);

// One action's two Timestamp nodes on its worker.
struct TimedAction {
  Action action;
  int worker = 0;
  Output start, end;
};

struct Built {
  Output loss;                                            // Training: mean of micro_losses.
  std::vector<Output> micro_losses;                       // Training: per micro-batch.
  std::vector<std::pair<Output, Output>> grads_and_vars;  // Training: (gradient or invalid, var).
  std::vector<Output> outputs;  // Inference: each output, micro-batches concatenated in order.
  std::vector<TimedAction> timing;
  std::vector<int64_t> activation_bytes;  // Per stage, one micro-batch's; -1 when unknown.
  Report predicted;                       // Training: the verifier's report.
};

struct TrainingSpec {
  std::vector<StageSpec> stages;     // Stage s at index s.
  std::vector<Output> batch_inputs;  // Split along dimension 0.
  Output loss;                       // Scalar, in the last stage.
  std::vector<Output> variables;     // Those to differentiate (trainable).
  Schedule schedule;                 // Its stages and micro-batches fix p and m.
  // Verifier costs; activation_bytes {0} (the default) is replaced by the graph's estimate.
  Costs costs;
};

// Verifies spec.schedule (Simulate: FailedPrecondition naming the cycle of a deadlock,
// ResourceExhausted over the memory budget) and only then adds the pipelined step under
// scope's name scope, which must be new (e.g. root.NewSubScope("pipeline")): micro-batch i's
// copy of node "dense/MatMul" is "<scope>/mb<i>/dense/MatMul". InvalidArgument for a model the
// pipeline cannot cut (naming the node). Without activation sizes in spec.costs, the memory
// budget is checked against the copies' shapes once they exist (FailedPrecondition when those
// are not fully defined); a refused pipeline returns no train step, so it never runs.
absl::StatusOr<Built> BuildTraining(const Scope& scope, const TrainingSpec& spec);

// Forward only: `outputs` (tensors of any stage) computed per micro-batch and concatenated
// along dimension 0 on their stage's device. Each worker runs its stages' forwards
// micro-batch by micro-batch.
absl::StatusOr<Built> BuildInference(const Scope& scope, const std::vector<StageSpec>& stages,
                                     const std::vector<Output>& batch_inputs,
                                     const std::vector<Output>& outputs, int num_micro_batches);

}  // namespace pipeline
}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_PIPELINE_BUILDER_H_
