// Worker: the control-plane service of one sluice_server task. It registers placed graph
// partitions (an Executor each, on the worker's CPU device), runs them for a step, aborts steps,
// answers heartbeats and grants per-edge credits on the EdgeControl stream.
//
// A step's partition gets a WorkerRendezvous: a _Send whose receiver is on this task delivers
// into the worker's TensorMailbox; one whose receiver is on a peer task is pushed over the data
// plane (after taking a credit on the edge); every _Recv waits in the mailbox, which the
// sender's pushes fill. AbortStep (or a lost peer, reported by the master) cancels the step:
// each pending receive of the step fails, its tensors are freed, and a _Send waiting for a
// credit from a peer (which a hung peer never grants) fails at once with the abort's status.
// RunGraph marks the step running in the mailbox and ends it there when it returns, so
// tensors or aborts that arrive for it later are dropped (see tensor_mailbox.h).
// Thread-safe: gRPC calls it from many threads.
//
//   TensorMailbox mailbox;
//   Worker worker({.job = "worker", .task = 0}, &mailbox);
//   builder.RegisterService(&worker);  // Heartbeat is async: serve it from a completion queue
//                                      // (RequestHeartbeat), as Server does.
#ifndef SLUICE_DISTRIBUTED_WORKER_H_
#define SLUICE_DISTRIBUTED_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/data_plane.h"
#include "distributed/edge_sender.h"
#include "distributed/protocol.grpc.pb.h"
#include "distributed/tensor_mailbox.h"
#include "runtime/cancellation.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/rendezvous.h"

namespace sluice {

struct WorkerOptions {
  std::string job = "worker";
  int task = 0;
  // Credits granted to a sender when it opens an edge: tensors it may have in flight.
  int credit_window = 4;
  ChunkOptions chunk;
  int max_message_bytes = -1;  // For channels to peers; -1: gRPC's default.
  // Ping period and answer deadline on links to peers while they carry a call (0: none): a
  // Send to a peer that hangs fails with Unavailable within about twice this, even when no
  // master aborts the step (see MakeChannel).
  absl::Duration peer_keepalive = absl::Seconds(10);
  DeviceOptions device;
};

// "/job:worker/task:1" of "/job:worker/task:1/device:cpu:0".
std::string TaskPrefixOf(const std::string& device);

// Heartbeat is served from a completion queue on a thread of its own (Server), the rest by
// gRPC's sync thread pool.
class Worker : public proto::Control::WithAsyncMethod_Heartbeat<proto::Control::Service> {
 public:
  Worker(WorkerOptions options, TensorMailbox* mailbox);
  ~Worker() override;

  void SetAddresses(const std::string& control, const std::string& data);
  proto::TaskIdentity identity() const;
  std::string task_prefix() const;
  // Cancels every running step and breaks every link to peers (server shutdown).
  void AbortAll(const absl::Status& reason);

  grpc::Status RegisterGraph(grpc::ServerContext*, const proto::RegisterGraphRequest*,
                             proto::RegisterGraphResponse*) override;
  grpc::Status DeregisterGraph(grpc::ServerContext*, const proto::DeregisterGraphRequest*,
                               proto::DeregisterGraphResponse*) override;
  grpc::Status RunGraph(grpc::ServerContext*, const proto::RunGraphRequest*,
                        proto::RunGraphResponse*) override;
  grpc::Status AbortStep(grpc::ServerContext*, const proto::AbortStepRequest*,
                         proto::AbortStepResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const proto::HeartbeatRequest*,
                         proto::HeartbeatResponse*) override;
  grpc::Status EdgeControl(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>*) override;

 private:
  struct RegisteredGraph {
    std::shared_ptr<const Graph> graph;
    std::unique_ptr<Executor> executor;
    std::map<std::string, proto::PeerAddress> peers;  // By task prefix.
  };
  class StepRendezvous;
  // The links to one peer task; shared so a Send in progress keeps them alive when the peer is
  // dropped (found lost) meanwhile.
  struct PeerLink {
    std::string task_prefix;
    std::unique_ptr<DataClient> data;
    std::unique_ptr<EdgeSender> edge;
  };
  absl::Status RunGraphImpl(const proto::RunGraphRequest& req, grpc::ServerContext* ctx,
                            const std::shared_ptr<CancellationManager>& cm,
                            proto::RunGraphResponse* resp);
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
};

// Checks a request's protocol version: FAILED_PRECONDITION naming both versions.
grpc::Status CheckVersion(int version, const char* what);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_WORKER_H_
