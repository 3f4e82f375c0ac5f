// Server: one sluice_server task. Every task serves the worker's Control service (WorkerService
// over a Worker) on its control port and the Data service on a separate data port (its own gRPC
// server, so the two planes never share a connection; the port is advertised in heartbeats); a
// task given the cluster's tasks also serves the Master service on its control port, so any task
// of a cluster can run sessions. Binds to loopback unless told otherwise. Thread-safe.
//
//   ServerOptions opts{.job = "worker", .task = 0};           // ports 0: the OS chooses
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Start(opts));
//   std::string control = server->control_address();  // "127.0.0.1:<port>"; data_address() too
//   server->Shutdown();
#ifndef SLUICE_DISTRIBUTED_SERVER_H_
#define SLUICE_DISTRIBUTED_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "distributed/coordinator.h"
#include "distributed/data_plane.h"
#include "distributed/master.h"
#include "distributed/metrics.h"
#include "distributed/metrics_http.h"
#include "distributed/tensor_mailbox.h"
#include "distributed/worker.h"
#include "distributed/worker_service.h"
#include "graph/cluster_spec.h"

namespace sluice {

struct ServerOptions {
  std::string job = "worker";
  int task = 0;
  std::string host = "127.0.0.1";
  // The host other tasks reach this one at, in the addresses it advertises (its data address);
  // empty: `host`. Needed when binding every interface ("0.0.0.0").
  std::string advertise_host;
  int control_port = 0;
  int data_port = 0;
  // gRPC's message cap on both ports; -1: 2 GiB on the control port (whole feeds and fetches),
  // gRPC's default 4 MiB on the data port. Use the same cap and chunk size on every task.
  int max_message_bytes = -1;
  int64_t chunk_bytes = 1 << 20;  // Data-plane payload per chunk; must fit the cap (Start).
  int credit_window = 4;
  absl::Duration peer_keepalive = absl::Seconds(10);  // WorkerOptions::peer_keepalive.
  TensorMailboxOptions mailbox;   // How long ended steps and orphan tensors are remembered.
  int64_t max_session_bytes = 0;  // WorkerOptions::max_session_bytes.
  // The tasks this server runs sessions' steps on (job/task prefix and control address; data
  // addresses are learned from their heartbeats). Non-empty: the server also serves the Master
  // service, whatever its job, so a client may open sessions on any task of a cluster.
  std::vector<proto::PeerAddress> cluster_tasks;
  absl::Duration wait_for_tasks = absl::Seconds(60);  // MasterOptions::wait_for_tasks.
  HeartbeatOptions heartbeat;
  // With cluster_tasks: MasterOptions' bounds on sessions and graphs.
  absl::Duration session_idle_timeout = absl::Hours(1);
  int max_sessions = 1000;
  int64_t max_graph_bytes = int64_t{64} << 20;
  absl::Duration slow_step_report = absl::Seconds(60);  // MasterOptions::slow_step_report.
  // A connection with no call for this long is closed (gracefully: a client reconnects on its
  // next call), so idle clients do not hold descriptors for good. InfiniteDuration: never.
  absl::Duration max_connection_idle = absl::Minutes(10);
  // Serves the server's metrics (steps, latency, bytes per plane and peer, mailbox bytes) in
  // Prometheus' text format at http://<host>:<port>/metrics; 0: the OS chooses; -1: off.
  int metrics_port = -1;
};

// The tasks a server with this cluster spec runs steps on: every task of every job except
// "master" (a master-only task), with their control addresses.
std::vector<proto::PeerAddress> ClusterTasks(const ClusterSpec& spec);

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  const std::string& control_address() const { return control_address_; }
  const std::string& data_address() const { return data_address_; }
  // "host:port" of the metrics endpoint; "" when off.
  const std::string& metrics_address() const { return metrics_address_; }
  const Metrics& metrics() const { return *metrics_; }
  uint64_t incarnation() const { return worker_->identity().incarnation(); }
  // Stops accepting calls, cancels what runs, and returns once both servers are down.
  void Shutdown();
  void Wait();

 private:
  Server() = default;

  std::string control_address_, data_address_, metrics_address_;
  // Outlives everything that records into it (declared first).
  std::unique_ptr<Metrics> metrics_ = std::make_unique<Metrics>();
  std::unique_ptr<TensorMailbox> mailbox_;  // Outlives worker_ and data_service_ (declared first).
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<WorkerService> worker_service_;  // Serves worker_ (declared after it).
  std::unique_ptr<MasterControlService> master_control_service_;  // Job "master" only.
  std::unique_ptr<DataPlaneService> data_service_;
  std::unique_ptr<Master> master_;
  // Heartbeat and RunGraph calls: served by one thread polling this queue (ServeControlQueue).
  // Declared before the servers, so it is destroyed after them, as gRPC requires.
  std::unique_ptr<grpc::ServerCompletionQueue> control_cq_;
  std::unique_ptr<grpc::Server> control_server_;
  std::unique_ptr<grpc::Server> data_server_;
  std::thread control_queue_thread_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;  // Reads metrics_ and mailbox_.
  absl::once_flag control_queue_joined_;             // Wait may be called from several threads.
  void ServeControlQueue();
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_SERVER_H_
