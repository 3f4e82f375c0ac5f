// Master: the service clients call. It takes the client's graph, places it on the workers'
// devices (one CPU device per worker task), partitions it per signature (feeds, fetches,
// targets), registers the partitions on their workers once and reuses them for every later step
// of that signature, runs steps through a StepCoordinator and gathers the fetches. A worker that
// restarts (new incarnation) gets its partitions registered again on the next step.
// Thread-safe.
//
//   Master master({.workers = {w0, w1}});
//   builder.RegisterService(&master);
#ifndef SLUICE_DISTRIBUTED_MASTER_H_
#define SLUICE_DISTRIBUTED_MASTER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "distributed/coordinator.h"
#include "distributed/protocol.grpc.pb.h"
#include "distributed/step_watchdog.h"
#include "graph/graph.h"
#include "graph/placer.h"

namespace sluice {

struct MasterOptions {
  // The tasks steps run on. A data address may be left empty: heartbeats learn it.
  std::vector<proto::PeerAddress> workers;
  // How long a step waits for a task it needs that has never answered a heartbeat (the master
  // may start first); it prints a line to stderr every 5 s meanwhile.
  absl::Duration wait_for_tasks = absl::Seconds(60);
  HeartbeatOptions heartbeat;
  absl::Duration default_step_timeout = absl::Seconds(60);
  // A session no call has used for this long is closed (its partitions deregistered), so
  // clients that never close theirs do not grow the master for good. InfiniteDuration: never.
  absl::Duration session_idle_timeout = absl::Hours(1);
  int max_sessions = 1000;                      // Open at once; CreateSession beyond is refused.
  int64_t max_graph_bytes = int64_t{64} << 20;  // Of a session's GraphDef (after extensions).
  // A step running this long is reported to stderr once, with what its tasks say they are
  // doing (step_watchdog.h). InfiniteDuration: never.
  absl::Duration slow_step_report = absl::Seconds(60);
};

class Master : public proto::Master::Service {
 public:
  explicit Master(MasterOptions options);
  ~Master() override;

  grpc::Status CreateSession(grpc::ServerContext*, const proto::CreateSessionRequest*,
                             proto::CreateSessionResponse*) override;
  grpc::Status ExtendSession(grpc::ServerContext*, const proto::ExtendSessionRequest*,
                             proto::ExtendSessionResponse*) override;
  grpc::Status CloseSession(grpc::ServerContext*, const proto::CloseSessionRequest*,
                            proto::CloseSessionResponse*) override;
  grpc::Status RunStep(grpc::ServerContext*, const proto::RunStepRequest*,
                       proto::RunStepResponse*) override;
  grpc::Status ListDevices(grpc::ServerContext*, const proto::ListDevicesRequest*,
                           proto::ListDevicesResponse*) override;

  HeartbeatMonitor* monitor() { return &monitor_; }
  // The devices a session's nodes were placed on (by node id), for tools and tests; NotFound
  // for an unknown handle.
  absl::StatusOr<Placement> PlacementOf(absl::string_view session_handle) const;

 private:
  // The partitions of one (feeds, fetches, targets) signature, registered on the workers.
  struct Prepared {
    struct Part {
      int worker = -1;  // Index into options_.workers.
      std::string handle;
      uint64_t incarnation = 0;  // Of the worker it was registered with.
      proto::RegisterGraphRequest registration;
      std::vector<int> feed_positions;  // Caller feed index for each partition feed.
    };
    std::vector<Part> parts;
    std::vector<std::pair<int, int>> fetch_slots;  // (part, index in its fetches).
    std::vector<Endpoint> feeds;                   // In request order, for checking the fed values.
  };
  struct SessionState {
    // The identity of the client certificate that created it (tls.h ClientIdentity); only
    // that client may use it. Empty: no certificate, no binding.
    std::string owner;
    absl::Time last_used;   // Guarded by the master's mu_.
    int running_steps = 0;  // Guarded by the master's mu_; a session never expires while > 0.
    proto::GraphDef def;
    proto::SessionConfig config;
    std::shared_ptr<const Graph> graph;
    Placement placement;
    std::vector<int> device_workers;  // Placement device index -> index into options_.workers.
    absl::Mutex mu;
    std::map<std::string, std::shared_ptr<Prepared>> prepared ABSL_GUARDED_BY(mu);
  };
  absl::StatusOr<std::shared_ptr<SessionState>> BuildSession(proto::GraphDef def,
                                                             const proto::SessionConfig& config);
  absl::StatusOr<std::shared_ptr<Prepared>> Prepare(SessionState* session,
                                                    const proto::RunStepRequest& req);
  absl::Status EnsureRegistered(Prepared::Part* part);
  // A step that failed because a task was lost: `status` plus the pipeline stages the task
  // ran in the step, or else the collectives it was a member of, if any.
  absl::Status NameLostTaskWork(const Prepared& prepared, const absl::Status& status) const;
  // A traced step's StepStats: each partition's node stats (moved out of `results`) with the
  // task's clock offset, and the master's times.
  void FillStepStats(const Prepared& prepared,
                     const std::vector<std::pair<int64_t, int64_t>>& call_times,
                     int64_t received_ns, std::vector<proto::RunGraphResponse>* results,
                     proto::RunStepResponse* resp) const;
  // The fed values' dtypes and shapes against the graph, as the local Session checks them.
  static absl::Status CheckFeeds(const Prepared& prepared, const proto::RunStepRequest& req);
  // `abandoned` tells whether the client gave up on the step (see StepRunOptions).
  absl::Status RunStepImpl(const proto::RunStepRequest& req, proto::RunStepResponse* resp,
                           const std::string& client, std::function<bool()> abandoned);
  std::vector<std::string> DeviceNames() const;
  // The session of `handle`, marked used now; NotFound naming the handle otherwise, and
  // PermissionDenied when another client's certificate created it (`client`: the caller's).
  absl::StatusOr<std::shared_ptr<SessionState>> FindSession(const std::string& handle,
                                                            const std::string& client);
  absl::Status CheckGraphSize(const proto::GraphDef& def) const;
  // ResourceExhausted naming --max_sessions when no session can be added.
  absl::Status CheckRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deregisters the session's partitions from the workers (it is already out of sessions_).
  void Release(SessionState* session);
  // Closes idle sessions every so often until the master goes.
  void ExpireIdleSessions();

  const MasterOptions options_;
  HeartbeatMonitor monitor_;
  StepCoordinator coordinator_;
  StepWatchdog watchdog_;
  mutable absl::Mutex mu_;
  int64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, std::shared_ptr<SessionState>> sessions_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expiry_thread_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_MASTER_H_
