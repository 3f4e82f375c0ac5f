// Worker: what one sluice_server task does for the control plane, apart from how calls reach it.
// It registers placed graph partitions (an Executor each, on the worker's CPU device), runs them
// for a step, aborts steps, answers heartbeats and grants per-edge credits to the senders that
// open an edge to it. Requests and responses are the protocol's messages; the transport
// (WorkerService, gRPC) or an in-process caller drives it through these methods.
//
// A step's partition gets a StepRendezvous: a _Send whose receiver is on this task delivers
// into the worker's TensorMailbox; one whose receiver is on a peer task is pushed over the data
// plane (after taking a credit on the edge); every _Recv waits in the mailbox, which the
// sender's pushes fill. AbortStep (or a lost peer, reported by the master) cancels the step:
// each pending receive of the step fails, its tensors are freed, and a _Send waiting for a
// credit from a peer (which a hung peer never grants) fails at once with the abort's status.
// RunGraphAsync marks the step running in the mailbox and ends it there when it finishes, so
// tensors or aborts that arrive for it later are dropped (see tensor_mailbox.h).
// Thread-safe.
//
//   TensorMailbox mailbox;
//   Worker worker({.job = "worker", .task = 0}, &mailbox);
//   WorkerService service(&worker);     // The gRPC Control service over it.
//   builder.RegisterService(&service);
#ifndef SLUICE_DISTRIBUTED_WORKER_H_
#define SLUICE_DISTRIBUTED_WORKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/data_plane.h"
#include "distributed/edge_sender.h"
#include "distributed/metrics.h"
#include "distributed/protocol.pb.h"
#include "distributed/tensor_mailbox.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/rendezvous.h"
#include "runtime/kernel/resource_mgr.h"

namespace sluice {

struct WorkerOptions {
  std::string job = "worker";
  int task = 0;
  // Tensors each step may have in flight on an edge into this worker (granted to a sender when
  // it opens the edge). Per step, so one step's unconsumed tensors never hold up another's.
  int credit_window = 4;
  ChunkOptions chunk;
  int max_message_bytes = -1;  // For channels to peers; -1: gRPC's default.
  // Ping period and answer deadline on links to peers while they carry a call (0: none): a
  // Send to a peer that hangs fails with Unavailable within about twice this, even when no
  // master aborts the step (see MakeChannel).
  absl::Duration peer_keepalive = absl::Seconds(10);
  // Bytes of live tensors the kernels of one session's partitions may hold on this worker (its
  // variables included); a step that would pass it fails with RESOURCE_EXHAUSTED. 0: no bound.
  int64_t max_session_bytes = 0;
  DeviceOptions device;
  // Optional, outliving the worker: steps run and failed, step latency, bytes per plane and
  // peer (metrics.h; the families are the server's to declare).
  Metrics* metrics = nullptr;
  // The cluster's tasks (the server's spec), reported by Inspect so that one task's address
  // finds the rest; empty for a worker without a spec.
  std::vector<proto::PeerAddress> cluster_tasks;
};

// "/job:worker/task:1" of "/job:worker/task:1/device:cpu:0".
std::string TaskPrefixOf(const std::string& device);

class Worker {
 public:
  Worker(WorkerOptions options, TensorMailbox* mailbox);
  ~Worker();

  void SetAddresses(const std::string& control, const std::string& data);
  proto::TaskIdentity identity() const;
  // The device's resources (variables, parameter-server state), shared by every session.
  const ResourceMgr& resources() const;
  std::string task_prefix() const;
  // Cancels every running step and breaks every link to peers (server shutdown).
  void AbortAll(const absl::Status& reason);

  // Refuses a partition whose peers are not tasks of this worker's cluster spec (see CheckPeer).
  absl::Status RegisterGraph(const proto::RegisterGraphRequest& req,
                             proto::RegisterGraphResponse* resp);
  absl::Status DeregisterGraph(const proto::DeregisterGraphRequest& req);
  // Starts one step of a registered partition on the worker's device and returns at once;
  // `done` (called once, on any thread) gets the step's status, with the fetches in `resp`.
  // `cancellation` cancels the step (say, the caller gave up); the caller keeps `req` and
  // `resp` alive until `done`.
  void RunGraphAsync(const proto::RunGraphRequest* req, proto::RunGraphResponse* resp,
                     std::shared_ptr<CancellationManager> cancellation,
                     std::function<void(absl::Status)> done);
  absl::Status AbortStep(const proto::AbortStepRequest& req);
  absl::Status Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatResponse* resp);
  // What runs here now: steps with their waiting receives and buffered tensors, the edges to
  // peers with their credits (for hang reports; docs/observability.md).
  absl::Status Inspect(const proto::InspectRequest& req, proto::InspectResponse* resp);

  // The receiving end of an edge's control stream. OpenEdge checks the sender's `open` message
  // and sends the per-step credit window through `write`, which is called again (from any
  // thread) with a credit for a step each time one of the step's tensors on the edge leaves
  // the mailbox, until CloseEdge(id).
  absl::StatusOr<int64_t> OpenEdge(const proto::EdgeControlMessage& open,
                                   std::function<void(const proto::EdgeControlMessage&)> write);
  // A later message of the edge's stream (a step_failed aborts that step here).
  void OnEdgeMessage(const proto::EdgeControlMessage& msg);
  void CloseEdge(int64_t id);

 private:
  // PermissionDenied unless `peer` is a task of this worker's cluster spec at its address (its
  // data address on the same host): a request cannot make this worker connect elsewhere. OK
  // when the worker has no spec.
  absl::Status CheckPeer(const proto::PeerAddress& peer) const;

  struct RegisteredGraph {
    std::shared_ptr<MemoryBudget> budget;  // Its session's (null: no bound).
    std::shared_ptr<const Graph> graph;
    std::unique_ptr<Executor> executor;
    std::map<std::string, proto::PeerAddress> peers;  // By task prefix.
  };
  class StepRendezvous;
  struct RunningStep;
  // The links to one peer task; shared so a Send in progress keeps them alive when the peer is
  // dropped (found lost) meanwhile.
  struct PeerLink {
    std::string task_prefix;
    std::unique_ptr<DataClient> data;
    std::unique_ptr<EdgeSender> edge;
  };
  // Starts the partition's step on the device; an error is what failed before it could start.
  absl::Status StartStep(const std::shared_ptr<RunningStep>& step);
  void FinishStep(const std::shared_ptr<RunningStep>& step, absl::Status status);
  absl::StatusOr<std::shared_ptr<PeerLink>> GetPeer(const proto::PeerAddress& peer);
  // Cancels the step's partitions running here (Sends waiting for credits end) and fails its
  // receives in the mailbox.
  void AbortLocalStep(int64_t step_id, const absl::Status& reason);
  // Breaks and forgets the chosen links (to a task found lost; all at shutdown); the next step
  // connects afresh.
  void DropPeers(const std::function<bool(const PeerLink&)>& which);

  const WorkerOptions options_;
  TensorMailbox* mailbox_;
  std::unique_ptr<CpuDevice> device_;
  const uint64_t incarnation_;
  mutable absl::Mutex mu_;
  std::string control_address_ ABSL_GUARDED_BY(mu_);
  std::string data_address_ ABSL_GUARDED_BY(mu_);
  int64_t next_graph_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, std::shared_ptr<RegisteredGraph>> graphs_ ABSL_GUARDED_BY(mu_);
  std::multimap<int64_t, std::shared_ptr<CancellationManager>> active_steps_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<PeerLink>> peers_ ABSL_GUARDED_BY(mu_);  // By address.
  // Each session's budget, shared by its partitions (and the buffers charged to it).
  std::map<std::string, std::weak_ptr<MemoryBudget>> budgets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_WORKER_H_
