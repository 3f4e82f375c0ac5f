// Coordinator: the master's side of running one step across workers, and of noticing lost ones.
//
// HeartbeatMonitor pings every worker's control service at a fixed interval, each ping with its
// own answer deadline and at most one in flight per worker, so neither a slow link (an answer
// that takes longer than the interval) nor a hung worker delays anyone's next ping. A worker
// that answers no heartbeat for `timeout` (5 s by default), or answers with a new incarnation
// (it restarted), is reported lost; a lost worker is still pinged, and its next answer with the
// same incarnation makes it healthy again. StepCoordinator runs one step's partitions (one
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
#include "distributed/metrics.h"
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
  // How long one ping may take to be answered: above the links' round trip, whatever the
  // interval (an RTT above it must not look like a dead worker).
  absl::Duration deadline = absl::Seconds(2);
  // Optional, outliving the monitor: answered heartbeats' round trips per task
  // ("sluice_heartbeat_seconds", declared by the server).
  Metrics* metrics = nullptr;
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
  // The stub for RunGraph, RegisterGraph and AbortStep calls to the task (null if not watched);
  // hold it for the call (it keeps the task's channels alive). A task that answers again after
  // failing to is given fresh channels (calls made while it was down leave a channel in gRPC's
  // reconnect backoff, which fails calls at once for seconds after the task is back).
  std::shared_ptr<proto::Control::Stub> stub(const std::string& task_prefix);
  // Records the incarnation a task reported outside a heartbeat (say, when registering a
  // graph). A new one is a restart: listeners hear of it now, as the next heartbeat would
  // otherwise report it, failing whatever ran on the new incarnation meanwhile.
  void NoteIncarnation(const std::string& task_prefix, uint64_t incarnation);
  // Heartbeat rounds started (every watched worker without a ping in flight pinged).
  int64_t rounds() const;
  // Heartbeats a task has answered so far.
  int64_t answers(const std::string& task_prefix) const;
  // True when the last heartbeat to the task was answered (it listens now).
  bool answering(const std::string& task_prefix) const;
  // How to reach the task: its watched address, with the data address its heartbeats advertise
  // once it has answered one (so a cluster spec needs only control addresses).
  proto::PeerAddress peer(const std::string& task_prefix) const;
  // Waits until every task in `task_prefixes` has answered at least one heartbeat: a master
  // may start before its workers. Calls progress(line) after a grace of up to a second and
  // then every `progress_every` while it waits, naming the tasks still missing and why; after
  // `timeout`, Unavailable naming them. A task that answers as another job/task than watched never
  // counts as answered.
  absl::Status AwaitFirstAnswers(const std::vector<std::string>& task_prefixes,
                                 absl::Duration timeout, absl::Duration progress_every,
                                 const std::function<void(const std::string&)>& progress);

 private:
  // How to reach one task; fixed once watched.
  struct Watched {
    proto::PeerAddress ref;
    std::shared_ptr<grpc::Channel> heartbeat_channel;
    std::shared_ptr<proto::Control::Stub> stub;  // RunGraph, RegisterGraph, AbortStep.
    // On a connection of its own: a heartbeat never queues behind a large RunGraph message.
    std::unique_ptr<proto::Control::Stub> heartbeat_stub;
  };
  // What the heartbeats have learnt of one task.
  struct Liveness {
    absl::Time last_ok;
    uint64_t incarnation = 0;  // 0 before the first answer.
    absl::Status health;
    bool in_flight = false;  // A ping is out (at most one per task).
    int64_t answers = 0;
    std::string last_error;    // Of the last ping that failed.
    bool last_failed = false;  // The last ping failed (the task may be down or restarting).
    std::string data_address;  // From the last answer's identity.
  };
  struct Ping;
  void Loop();
  // `reconnecting`: the task's last ping failed; this one waits (up to its deadline) for the
  // channel to connect, which under gRPC's `poll` engine only progresses while a call waits.
  void Send(const std::shared_ptr<const Watched>& w, bool reconnecting) ABSL_LOCKS_EXCLUDED(mu_);
  void OnAnswer(const Ping& ping) ABSL_LOCKS_EXCLUDED(mu_);
  void Report(const std::vector<std::pair<proto::PeerAddress, absl::Status>>& lost)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The watched tasks of `task_prefixes` that have not answered yet, described for a person.
  std::vector<std::string> MissingLocked(const std::vector<std::string>& task_prefixes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves out what is ready to be freed (see answered_).
  void TakeFreeable(std::vector<std::shared_ptr<Ping>>* pings,
                    std::vector<std::shared_ptr<const Watched>>* watched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const HeartbeatOptions options_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  static std::shared_ptr<const Watched> Connect(const proto::PeerAddress& worker);

  std::map<std::string, std::shared_ptr<const Watched>> watched_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Liveness> liveness_ ABSL_GUARDED_BY(mu_);  // By task prefix.
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, LostCallback> listeners_ ABSL_GUARDED_BY(mu_);
  // Pings in flight, cancelled and waited for by the destructor.
  std::map<Ping*, std::shared_ptr<Ping>> pings_ ABSL_GUARDED_BY(mu_);
  // Nothing of gRPC's is freed on a gRPC callback thread (a channel freed there can corrupt
  // gRPC's state; seen as "ref_counted.h: assertion failed: prior > 0" at exit): answered pings
  // and replaced channels wait here, and the monitor's thread (or destructor) frees them, a
  // replaced channel once no call holds it.
  std::vector<std::shared_ptr<Ping>> answered_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const Watched>> retired_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

struct StepRunOptions {
  // Every partition's RunGraph carries it (gRPC ends the call on the worker when it passes,
  // which cancels the partition there); the step then fails with DeadlineExceeded naming the
  // workers still running.
  absl::Time deadline = absl::InfiniteFuture();
  // Polled while the step runs (every 50 ms); true fails it with Cancelled (the client that
  // asked for the step went away).
  std::function<bool()> abandoned;
  // When set, gets per partition when its RunGraph was sent and answered (ns since the Unix
  // epoch), for a traced step.
  std::vector<std::pair<int64_t, int64_t>>* call_times = nullptr;
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
                                                           std::vector<Partition> partitions,
                                                           const StepRunOptions& options = {});
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
