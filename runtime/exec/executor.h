// Executor: runs a set of nodes of a finalised graph on one device. Created once (kernels are
// built then), run many times, concurrently if wanted: each run has its own pending counts and
// tensor slots. Nodes become ready when their pending count drops to zero; ready nodes run on
// the device's oneTBB arena, the first successor of a finished node inline on the same thread.
// Errors carry the node name and op; the first error cancels the rest of the step.
// Thread-safe: Run/RunAsync may be called concurrently.
//
//   ExecutorParams p{.graph = g.get(), .device = &cpu, .fetches = {{loss, 0}}};
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Executor> exec, Executor::Create(p));
//   StepArgs args;
//   std::vector<Tensor> outputs;
//   SLUICE_RETURN_IF_ERROR(exec->Run(args, &outputs));
#ifndef SLUICE_RUNTIME_EXEC_EXECUTOR_H_
#define SLUICE_RUNTIME_EXEC_EXECUTOR_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "runtime/exec/device.h"
#include "runtime/exec/step_trace.h"
#include "runtime/kernel/cancellation.h"

namespace sluice {

class Rendezvous;

struct ExecutorParams {
  const Graph* graph = nullptr;
  CpuDevice* device = nullptr;
  // Outputs whose values the caller supplies; their nodes do not run.
  std::vector<Endpoint> feeds;
  // Outputs returned by Run, in this order.
  std::vector<Endpoint> fetches;
  // Nodes that must run although nothing fetched depends on them.
  std::vector<const Node*> targets;
  // When non-empty, run exactly these nodes (a partition) instead of pruning for the fetches.
  std::vector<const Node*> nodes;
};

struct StepArgs {
  int64_t step_id = 0;
  std::vector<Tensor> feed_values;  // Parallel to ExecutorParams::feeds.
  CancellationManager* cancellation = nullptr;
  Rendezvous* rendezvous = nullptr;
  // Kernel outputs are charged to it (a session's memory on a worker); may be null.
  std::shared_ptr<MemoryBudget> budget;
  // When set, every node that runs records its NodeExecStats here (see step_trace.h).
  StepTrace* trace = nullptr;
};

class Executor {
 public:
  static absl::StatusOr<std::unique_ptr<Executor>> Create(const ExecutorParams& params);
  virtual ~Executor() = default;

  // Runs one step; `done` receives the status and the fetched tensors.
  using DoneCallback = std::function<void(absl::Status, std::vector<Tensor>)>;
  virtual void RunAsync(StepArgs args, DoneCallback done) = 0;
  // Blocking wrapper: spins briefly, then sleeps until the step ends.
  virtual absl::Status Run(StepArgs args, std::vector<Tensor>* fetched) = 0;

  virtual int num_nodes() const = 0;
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_EXEC_EXECUTOR_H_
