// Coordinator: the master's side of running one step across workers, and of noticing lost ones.
//
// HeartbeatMonitor pings every worker's control service (all at once) at a fixed interval; a
// worker that answers no heartbeat for `timeout` (5 s by default), or answers with a new
// incarnation (it restarted), is reported lost. StepCoordinator runs one step's partitions (one
// RunGraph each, in parallel) and fails the step as soon as one partition fails or one involved
// worker is lost: it aborts the step on every other worker (which fails their pending receives and
// frees the step's tensors) and cancels the outstanding RPCs, so the step ends within the heartbeat
// timeout with an Unavailable error naming the lost job/task/address and the step.
// Thread-safe.
//
//   HeartbeatMonitor monitor({.interval = absl::Milliseconds(200)});
//   monitor.Watch(worker0);
//   StepCoordinator coord(&monitor);
//   SLUICE_ASSIGN_OR_RETURN(auto results, coord.Run(step_id, {{worker0, req0}, {worker1, req1}}));
#ifndef SLUICE_DISTRIBUTED_COORDINATOR_H_
#define SLUICE_DISTRIBUTED_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/protocol.grpc.pb.h"

namespace sluice {

// How to reach one task is a proto::PeerAddress (task_prefix "/job:worker/task:0",
// control_address, data_address), the message the master also sends workers about their peers.
proto::PeerAddress MakePeerAddress(std::string task_prefix, std::string control_address,
                                   std::string data_address);
// "/job:worker/task:0 at host:port": how errors name a task.
std::string PeerName(const proto::PeerAddress& peer);

struct HeartbeatOptions {
  absl::Duration interval = absl::Milliseconds(500);
  absl::Duration timeout = absl::Seconds(5);
};

class HeartbeatMonitor {
 public:
  // Called (on the monitor's thread) with the lost task and why.
  using LostCallback = std::function<void(const proto::PeerAddress&, const absl::Status&)>;

  explicit HeartbeatMonitor(HeartbeatOptions options = {});
  ~HeartbeatMonitor();

  void Watch(const proto::PeerAddress& worker);
  // Returns an id for RemoveListener.
  int64_t AddListener(LostCallback callback);
  void RemoveListener(int64_t id);
  // The incarnation last seen (0 before the first answer).
  uint64_t incarnation(const std::string& task_prefix) const;
  // Non-OK when the task is currently considered lost.
  absl::Status health(const std::string& task_prefix) const;
  proto::Control::Stub* stub(const std::string& task_prefix);
  // Records the incarnation a task reported outside a heartbeat (say, when registering a
  // graph). A new one is a restart: listeners hear of it now, as the next heartbeat would
  // otherwise report it, failing whatever ran on the new incarnation meanwhile.
  void NoteIncarnation(const std::string& task_prefix, uint64_t incarnation);
  // Heartbeat rounds completed (every watched worker pinged at once, each with the interval
  // as its deadline).
  int64_t rounds() const;

 private:
  // How to reach one task; fixed once watched.
  struct Watched {
    proto::PeerAddress ref;
    std::unique_ptr<proto::Control::Stub> stub;  // RunGraph, RegisterGraph, AbortStep.
    // On a connection of its own: a heartbeat never queues behind a large RunGraph message.
    std::unique_ptr<proto::Control::Stub> heartbeat_stub;
  };
  // What the heartbeats have learnt of one task.
  struct Liveness {
    absl::Time last_ok;
    uint64_t incarnation = 0;  // 0 before the first answer.
    absl::Status health;
  };
  void Loop();

  const HeartbeatOptions options_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::shared_ptr<const Watched>> watched_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Liveness> liveness_ ABSL_GUARDED_BY(mu_);  // By task prefix.
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, LostCallback> listeners_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class StepCoordinator {
 public:
  explicit StepCoordinator(HeartbeatMonitor* monitor) : monitor_(monitor) {}

  struct Partition {
    proto::PeerAddress worker;
    proto::RunGraphRequest request;
  };
  // Runs every partition of `step_id`; returns their responses in order, or the first error.
  absl::StatusOr<std::vector<proto::RunGraphResponse>> Run(int64_t step_id,
                                                           std::vector<Partition> partitions);
  // Aborts a step from outside (e.g. a client cancelled it).
  void Abort(int64_t step_id, const absl::Status& reason);

 private:
  struct StepState;
  // `lost_task`, when set, is the task whose loss failed the step: workers drop their links to it.
  void FailStep(const std::shared_ptr<StepState>& step, const absl::Status& status,
                const std::string& lost_task = "");

  HeartbeatMonitor* monitor_;
  absl::Mutex mu_;
  std::map<int64_t, std::shared_ptr<StepState>> steps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_COORDINATOR_H_
