// Session: runs a finalised graph in this process. Each Run names feeds, fetches and targets;
// the session prunes the graph to what they need and caches the prepared executor per
// (feeds, fetches, targets) signature, so repeated runs only execute. Variables live on the
// session's device and persist across runs. Thread-safe: Run may be called concurrently.
//
// With SessionOptions::num_devices > 1 the session hosts that many virtual CPU devices
// ("/job:localhost/task:0/device:cpu:N", job and task taken from DeviceOptions::name). It places
// the whole graph once at creation (graph/placer.h: device requests, colocation, automatic
// balancing), so a variable lives on the same device for every signature, and per signature
// partitions the pruned graph and runs the partitions together (runtime/exec/graph_runner.h). With
// one device, device requests are ignored.
//
//   SLUICE_ASSIGN_OR_RETURN(auto session, Session::Create(graph));
//   std::vector<Tensor> out;
//   SLUICE_RETURN_IF_ERROR(session->Run({{"x", x_value}}, {"logits"}, {}, &out));
//   SLUICE_RETURN_IF_ERROR(session->Run({{x, x_value}}, {logits}, &out));   // with DSL handles
#ifndef SLUICE_RUNTIME_SESSION_SESSION_H_
#define SLUICE_RUNTIME_SESSION_SESSION_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/placer.h"
#include "graph/scope.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"
#include "runtime/kernel/cancellation.h"

namespace sluice {

struct SessionOptions {
  DeviceOptions device;  // Of every device; with several, `name` gives their job and task.
  int num_devices = 1;
  PlacerOptions placement;  // Used when num_devices > 1.
};

class GraphRunner;

struct RunOptions {
  // Cancel this to abort the run; it then fails with the cancellation's reason.
  CancellationManager* cancellation = nullptr;
  // When set, every node that runs records what it did here (runtime/exec/step_trace.h).
  StepTrace* trace = nullptr;
};

class Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Create(std::shared_ptr<const Graph> graph,
                                                         const SessionOptions& options = {});
  ~Session();

  // Feeds and fetches are "node" or "node:index"; targets are node names.
  absl::Status Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                   const std::vector<std::string>& fetches, const std::vector<std::string>& targets,
                   std::vector<Tensor>* outputs, const RunOptions& options = {});
  // The same with DSL handles.
  absl::Status Run(const std::vector<std::pair<Output, Tensor>>& feeds,
                   const std::vector<Output>& fetches, std::vector<Tensor>* outputs,
                   const std::vector<Output>& targets = {}, const RunOptions& options = {});

  const Graph& graph() const { return *graph_; }
  // Prepared executors, one per distinct (feeds, fetches, targets) signature run so far.
  int num_cached_executors() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(executors_.size() + runners_.size());
  }
  CpuDevice* device() { return devices_[0].get(); }
  int num_devices() const { return static_cast<int>(devices_.size()); }
  CpuDevice* device(int i) { return devices_[i].get(); }
  // Where every node runs; null with a single device.
  const Placement* placement() const { return placement_.get(); }

 private:
  Session(std::shared_ptr<const Graph> graph, std::vector<std::unique_ptr<CpuDevice>> devices,
          std::unique_ptr<Placement> placement);
  absl::StatusOr<GraphRunner*> GetOrCreateRunner(const std::vector<Endpoint>& feeds,
                                                 const std::vector<Endpoint>& fetches,
                                                 const std::vector<const Node*>& targets);
  absl::StatusOr<Executor*> GetOrCreateExecutor(const std::vector<Endpoint>& feeds,
                                                const std::vector<Endpoint>& fetches,
                                                const std::vector<const Node*>& targets);
  absl::Status RunEndpoints(const std::vector<Endpoint>& feeds, std::vector<Tensor> feed_values,
                            const std::vector<Endpoint>& fetches,
                            const std::vector<const Node*>& targets, std::vector<Tensor>* outputs,
                            const RunOptions& options);

  std::shared_ptr<const Graph> graph_;
  std::vector<std::unique_ptr<CpuDevice>> devices_;
  std::unique_ptr<Placement> placement_;  // Set with several devices.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Executor>> executors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<GraphRunner>> runners_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> next_step_id_{1};
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_SESSION_SESSION_H_
