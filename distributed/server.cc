#include "distributed/server.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "distributed/auth.h"
#include "distributed/grpc_util.h"
#include "distributed/tls.h"
#include "graph/device_name.h"
#include "ops/ps_ops.h"

namespace sluice {

std::vector<proto::PeerAddress> ClusterTasks(const ClusterSpec& spec) {
  std::vector<proto::PeerAddress> tasks;
  for (const auto& [job, addresses] : spec.jobs()) {
    if (job == "master") continue;
    for (size_t i = 0; i < addresses.size(); ++i) {
      tasks.push_back(MakePeerAddress(DeviceName::TaskPrefix(job, static_cast<int>(i)),
                                      addresses[i], /*data_address=*/""));
    }
  }
  return tasks;
}

namespace {

// The families a server records (metrics.h); the mailbox's bytes are read when scraped.
void DeclareMetrics(Metrics& m, const TensorMailbox* mailbox) {
  m.DeclareCounter("sluice_steps_total", "Partition steps run by this worker, by result.");
  m.DeclareHistogram("sluice_step_seconds", "Wall time of this worker's partition steps.",
                     {0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30});
  m.DeclareCounter("sluice_bytes_sent_total",
                   "Bytes sent, by plane (data: tensor chunks to peers; control: RunGraph "
                   "responses) and peer task.");
  m.DeclareCounter("sluice_bytes_received_total",
                   "Bytes received, by plane (data: tensor chunks from peers; control: RunGraph "
                   "requests) and peer task.");
  m.DeclareCounter("sluice_credit_waits_total",
                   "Tensors whose push waited for a credit from the receiver, per edge.");
  m.DeclareCounter("sluice_credit_wait_seconds_total",
                   "Time tensors waited for credits, per edge.");
  m.DeclareCounter("sluice_tensors_resent_total",
                   "Tensors pushed again, per edge, after the data connection they went on was "
                   "lost before the receiver credited them.");
  m.DeclareHistogram("sluice_heartbeat_seconds",
                     "Round trips of the heartbeats this task (serving sessions) sends, per task.",
                     {0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3});
  m.DeclareGauge("sluice_unauthenticated_calls_total",
                 "Calls refused for a missing or wrong cluster token (this process).",
                 [] { return static_cast<double>(UnauthenticatedCalls()); });
  m.DeclareGauge("sluice_mailbox_buffered_bytes",
                 "Bytes of received tensors waiting in the mailbox for their receives.",
                 [mailbox] { return static_cast<double>(mailbox->buffered_bytes()); });
  m.DeclareGauge("sluice_mailbox_early_bytes",
                 "Of them, bytes held for steps not running here yet (capped, --max_early_bytes).",
                 [mailbox] { return static_cast<double>(mailbox->early_bytes()); });
}

// The parameter-server figures of every variable this task holds, read when scraped.
void DeclarePsMetrics(Metrics& m, const Worker* worker) {
  const auto figure = [worker](int64_t PsFigures::*field) {
    return [worker, field] {
      Metrics::Samples out;
      for (const PsFigures& f : ReadPsFigures(worker->resources())) {
        out.push_back({{{"variable", f.variable}}, static_cast<double>(f.*field)});
      }
      return out;
    };
  };
  m.DeclareCollector("sluice_ps_pushes_total", "Pushes applied to each variable this task holds.",
                     "counter", figure(&PsFigures::pushes));
  m.DeclareCollector("sluice_ps_dropped_total",
                     "Stale pushes dropped by synchronous aggregation, per variable.", "counter",
                     figure(&PsFigures::dropped));
  m.DeclareCollector("sluice_ps_waiting_pulls", "Pulls waiting for slower workers, per variable.",
                     "gauge", figure(&PsFigures::waiting));
  m.DeclareCollector("sluice_ps_backup_bytes",
                     "Bytes of DC-ASGD's per-worker backups, per variable.", "gauge",
                     figure(&PsFigures::backup_bytes));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  // A chunk is one gRPC message: its payload plus a header (a few hundred bytes, more for long
  // node names: chunks then shrink to fit, ChunkOptions). Every task should use the same cap and
  // chunk size: a sender sizes chunks by its own flags, a receiver checks them against its cap.
  const int64_t message_cap = options.max_message_bytes >= 0 ? options.max_message_bytes
                                                             : int64_t{4} << 20;  // gRPC's default.
  if (options.chunk_bytes <= 0 || options.chunk_bytes > message_cap - 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chunk_bytes=", options.chunk_bytes, " must be > 0 and leave 4096 bytes of the ",
        message_cap, "-byte message cap (--max_message_bytes",
        options.max_message_bytes >= 0 ? "" : ", gRPC's default", ") for the chunk header"));
  }
  SelectGrpcPollingEngine();
  std::unique_ptr<Server> server(new Server);
  server->mailbox_ = std::make_unique<TensorMailbox>(options.mailbox);
  DeclareMetrics(*server->metrics_, server->mailbox_.get());
  WorkerOptions wopts;
  wopts.job = options.job;
  wopts.task = options.task;
  wopts.credit_window = options.credit_window;
  wopts.chunk.chunk_bytes = options.chunk_bytes;
  wopts.chunk.max_message_bytes = message_cap;
  wopts.max_message_bytes = options.max_message_bytes;
  wopts.peer_keepalive = options.peer_keepalive;
  wopts.max_session_bytes = options.max_session_bytes;
  wopts.metrics = server->metrics_.get();
  wopts.cluster_tasks = options.cluster_tasks;
  server->worker_ = std::make_unique<Worker>(wopts, server->mailbox_.get());
  DeclarePsMetrics(*server->metrics_, server->worker_.get());
  server->worker_service_ = std::make_unique<WorkerService>(server->worker_.get());
  // A master-only task serves its Control methods on the sync pool alone (MasterControlService).
  const bool master_only = options.job == "master";
  if (master_only) {
    server->master_control_service_ = std::make_unique<MasterControlService>(
        server->worker_.get(), server->worker_service_.get());
  }
  ChunkOptions copts;
  copts.chunk_bytes = options.chunk_bytes;
  copts.max_message_bytes = message_cap;
  server->data_service_ = std::make_unique<DataPlaneService>(
      server->mailbox_.get(), copts, AssemblerLimits{}, server->metrics_.get());

  auto build = [&](int port, grpc::Service* a, grpc::Service* b, int* bound,
                   bool bulk) -> std::unique_ptr<grpc::Server> {
    grpc::ServerBuilder builder;
    if (bulk) TuneForBulkData(&builder);
    AcceptKeepalivePings(&builder);  // Peers ping their links to this server (peer_keepalive).
    // No SO_REUSEPORT: on a fixed port (a restarted task) gRPC then opens a second listener
    // on the port, and connections the kernel hands to it went unanswered for seconds, which
    // kept a restarted worker out of the cluster; it also lets a second server take the port.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    if (options.max_connection_idle != absl::InfiniteDuration()) {
      builder.AddChannelArgument(
          GRPC_ARG_MAX_CONNECTION_IDLE_MS,
          static_cast<int>(std::clamp<int64_t>(
              absl::ToInt64Milliseconds(options.max_connection_idle), 1, INT32_MAX)));
    }
    builder.AddListeningPort(absl::StrCat(options.host, ":", port), ServerCredentials(), bound);
    if (options.max_message_bytes >= 0) {
      builder.SetMaxReceiveMessageSize(options.max_message_bytes);
      builder.SetMaxSendMessageSize(options.max_message_bytes);
    } else if (!bulk) {
      // RunStep and RunGraph carry whole feed tensors: up to protobuf's 2 GiB, not gRPC's 4 MiB.
      builder.SetMaxReceiveMessageSize(INT32_MAX);
    }
    builder.RegisterService(a);
    if (b != nullptr) builder.RegisterService(b);
    if (!bulk && !master_only) server->control_cq_ = builder.AddCompletionQueue();
    return builder.BuildAndStart();
  };
  int data_port = 0;
  server->data_server_ = build(options.data_port, server->data_service_.get(), nullptr, &data_port,
                               /*bulk=*/true);
  if (!server->data_server_ || data_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.data_port, " (data plane)"));
  }
  const std::string& reachable =
      options.advertise_host.empty() ? options.host : options.advertise_host;
  server->data_address_ = absl::StrCat(reachable, ":", data_port);

  if (!options.cluster_tasks.empty()) {
    MasterOptions mopts;
    mopts.workers = options.cluster_tasks;
    mopts.wait_for_tasks = options.wait_for_tasks;
    mopts.heartbeat = options.heartbeat;
    mopts.heartbeat.metrics = server->metrics_.get();
    mopts.session_idle_timeout = options.session_idle_timeout;
    mopts.max_sessions = options.max_sessions;
    mopts.max_graph_bytes = options.max_graph_bytes;
    mopts.slow_step_report = options.slow_step_report;
    server->master_ = std::make_unique<Master>(mopts);
  }
  int control_port = 0;
  grpc::Service* control_service =
      master_only ? static_cast<grpc::Service*>(server->master_control_service_.get())
                  : server->worker_service_.get();
  server->control_server_ =
      build(options.control_port, control_service, server->master_.get(), &control_port,
            /*bulk=*/false);
  if (!server->control_server_ || control_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.host, ":",
                                               options.control_port, " (control plane)"));
  }
  server->control_address_ = absl::StrCat(reachable, ":", control_port);
  if (options.metrics_port >= 0) {
    SLUICE_ASSIGN_OR_RETURN(
        server->metrics_http_,
        MetricsHttpServer::Start(options.host, options.metrics_port, server->metrics_.get()));
    server->metrics_address_ = absl::StrCat(options.host, ":", server->metrics_http_->port());
  }
  server->worker_->SetAddresses(server->control_address_, server->data_address_);
  if (server->control_cq_) {
    server->control_queue_thread_ = std::thread([s = server.get()] { s->ServeControlQueue(); });
    // For ps/perf.
    pthread_setname_np(server->control_queue_thread_.native_handle(), "control_queue");
  }
  return server;
}

void Server::ServeControlQueue() {
  // The thread that polls the queue reads each Heartbeat and RunGraph and answers or starts it
  // itself: no hand-off to a pool thread, which on a busy machine is what delays a reply.
  worker_service_->ServeQueue(control_cq_.get());
}

void Server::Shutdown() {
  if (worker_)
    worker_->AbortAll(absl::UnavailableError(absl::StrCat(control_address_, " is shutting down")));
  const auto deadline = absl::ToChronoTime(absl::Now() + absl::Seconds(1));
  if (control_server_) control_server_->Shutdown(deadline);
  if (data_server_) data_server_->Shutdown(deadline);
  // After the server's shutdown, as gRPC requires, and once nothing will start an operation
  // on the queue any more; ServeControlQueue then drains and returns.
  if (control_cq_) worker_service_->ShutdownQueue(control_cq_.get());
  if (metrics_http_) metrics_http_->Stop();
}

void Server::Wait() {
  if (control_server_) control_server_->Wait();
  if (data_server_) data_server_->Wait();
  // Ends once Shutdown shut the queue down (the servers are down, so Shutdown has run).
  absl::call_once(control_queue_joined_, [this] {
    if (control_queue_thread_.joinable()) control_queue_thread_.join();
  });
}

Server::~Server() {
  Shutdown();
  Wait();
}

}  // namespace sluice
