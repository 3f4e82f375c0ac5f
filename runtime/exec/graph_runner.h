// GraphRunner: runs steps of a graph that is partitioned over several devices. It owns one
// Executor per partition and, for each step, starts them all with one shared Rendezvous (by
// default a fresh LocalRendezvous per step) and one step-wide CancellationManager: the first
// partition that fails cancels the others and aborts the rendezvous, so no receiver is left
// waiting, and the step reports that first error. Fetched tensors are gathered from the
// partitions that own them; feeds go to the partitions that own the fed nodes.
//
// Threads: a partition with expensive work that needs no received tensor starts on its device's
// arena; the others start on the calling thread (which, in Run, then runs the first partition
// itself, helping on its device). A tensor sent to a receiver that is already waiting continues
// the receiving partition on the sending thread when all it unblocks is cheap (estimated from
// shapes), else on the receiving device's arena. So chains of small ops across devices need no
// thread hand-off, while expensive work runs in parallel on each device's threads.
//
// A caller may pass its own Rendezvous in RunArgs (one that also reaches other processes); the
// distributed worker runs each partition it was sent on a plain Executor instead.
//
// Thread-safety: RunAsync/Run may be called concurrently (each step has its own state). The
// devices must outlive the runner.
//
//   SLUICE_ASSIGN_OR_RETURN(Placement placement, PlaceGraph(*graph, device_names));
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<GraphRunner> runner,
//                    GraphRunner::Create(*graph, placement, devices, feeds, fetches, targets));
//   GraphRunner::RunArgs args;
//   args.step_id = 7;
//   args.feed_values = {x};
//   std::vector<Tensor> out;
//   SLUICE_RETURN_IF_ERROR(runner->Run(std::move(args), &out));
#ifndef SLUICE_RUNTIME_EXEC_GRAPH_RUNNER_H_
#define SLUICE_RUNTIME_EXEC_GRAPH_RUNNER_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/rendezvous.h"

namespace sluice {

class GraphRunner {
 public:
  // One partition: its graph, its device, and the feeds and fetches it owns (endpoints of
  // `graph`).
  struct Unit {
    std::shared_ptr<const Graph> graph;
    CpuDevice* device = nullptr;
    std::vector<Endpoint> feeds;
    std::vector<Endpoint> fetches;
  };
  // Where the caller's i-th feed goes or i-th fetch comes from: unit and position in its
  // feeds/fetches. unit -1: a feed nothing needs (its value is ignored).
  struct Slot {
    int unit = -1;
    int index = -1;
  };

  // Prunes `graph` to what `fetches` and `targets` need given `feeds`, partitions it by
  // `placement`, and prepares an executor per partition on devices[device index].
  static absl::StatusOr<std::unique_ptr<GraphRunner>> Create(
      const Graph& graph, const Placement& placement, const std::vector<CpuDevice*>& devices,
      const std::vector<Endpoint>& feeds, const std::vector<Endpoint>& fetches,
      const std::vector<const Node*>& targets);

  struct RunArgs {
    int64_t step_id = 0;
    std::vector<Tensor> feed_values;  // Parallel to the feeds.
    // Cancelling it cancels the step, which then fails with its reason. May be null.
    CancellationManager* cancellation = nullptr;
    // The step's rendezvous; null: the runner makes a LocalRendezvous for the step.
    Rendezvous* rendezvous = nullptr;
    // Every partition's nodes record what they did here (see StepArgs::trace); may be null.
    StepTrace* trace = nullptr;
  };
  using DoneCallback = std::function<void(absl::Status, std::vector<Tensor>)>;
  // Starts every partition (the first on the calling thread, the others on their devices) and
  // calls `done` once all have finished, with the fetched tensors in fetch order.
  void RunAsync(RunArgs args, DoneCallback done);
  // Blocking wrapper.
  absl::Status Run(RunArgs args, std::vector<Tensor>* fetched);

  int num_partitions() const { return static_cast<int>(units_.size()); }
  const Unit& unit(int i) const { return units_[i]; }
  // The partitioning Create made.
  const PartitionedGraph* partitioned_graph() const { return partitioned_.get(); }

 private:
  struct Step;
  // How a tensor sent to a waiting receiver continues: on the sending thread when everything it
  // unblocks is cheap, else on the receiving device.
  struct Delivery {
    CpuDevice* device = nullptr;
    bool inline_ok = true;
  };
  GraphRunner() = default;
  absl::Status Prepare();
  void Launch(RunArgs args, DoneCallback done, bool caller_runs_first);
  StepArgs UnitArgs(Step* step, int64_t step_id, std::vector<Tensor> feeds) const;
  void Deliver(const std::string& key, std::function<void()> deliver) const;
  void UnitDone(Step* step, int unit, absl::Status status, std::vector<Tensor> outputs) const;

  std::unique_ptr<PartitionedGraph> partitioned_;
  std::vector<Unit> units_;
  std::vector<Slot> feed_slots_;
  std::vector<Slot> fetch_slots_;
  std::vector<std::vector<int>> unit_fetch_positions_;  // Unit -> fetch order index per fetch.
  std::vector<std::unique_ptr<Executor>> executors_;
  std::vector<bool> heavy_start_;  // Per unit: expensive work runnable before any receive.
  // By "send_device;recv_device;tensor_name" of every local _Recv.
  absl::flat_hash_map<std::string, Delivery> deliveries_;
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_EXEC_GRAPH_RUNNER_H_
