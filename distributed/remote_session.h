// RemoteSession: the local Session's interface, run by a Sluice master over gRPC. Create sends
// the graph to the master (which places, partitions and registers it on the workers); each Run
// is one RunStep; the session is closed on destruction. Save/Restore checkpoint the variables
// through nodes Create adds to the graph: per variable V, "_checkpoint/V/handle" (a Variable
// node of V), "_checkpoint/V/value" (a Placeholder) and "_checkpoint/V/restore" (an Assign).
// Variables live on the workers and are shared by name by every session of the cluster.
// Thread-safe: Run may be called concurrently.
//
//   SLUICE_ASSIGN_OR_RETURN(auto session, RemoteSession::Create("127.0.0.1:5000", graph));
//   std::vector<Tensor> out;
//   SLUICE_RETURN_IF_ERROR(session->Run({{x, x_value}}, {logits}, &out));
#ifndef SLUICE_DISTRIBUTED_REMOTE_SESSION_H_
#define SLUICE_DISTRIBUTED_REMOTE_SESSION_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/protocol.grpc.pb.h"
#include "graph/graph.h"
#include "graph/scope.h"

namespace sluice {

struct RemoteSessionOptions {
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration step_timeout = absl::Seconds(60);
  // Adds, per variable, the nodes Save and Restore run (under "_checkpoint/"); off: they fail.
  bool checkpoint_ops = true;
  // How the master places the graph (proto::SessionConfig): soft placement, a device-placement
  // log on the master's stderr, and device filters.
  proto::SessionConfig config;
};

// What a traced run (RemoteSession::Run with a RunMetadata) returns: the master's StepStats
// (every task's node stats and clock offset) and when this client sent the step and had its
// answer (ns since the Unix epoch, this process's clock).
struct RunMetadata {
  proto::StepStats step_stats;
  int64_t client_sent_ns = 0;
  int64_t client_done_ns = 0;
};

class RemoteSession {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteSession>> Create(
      const std::string& master_address, std::shared_ptr<const Graph> graph,
      const RemoteSessionOptions& options = {});
  ~RemoteSession();

  absl::Status Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                   const std::vector<std::string>& fetches, const std::vector<std::string>& targets,
                   std::vector<Tensor>* outputs);
  // Traced: records what every node on every task did into `metadata` (see RunMetadata).
  absl::Status Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                   const std::vector<std::string>& fetches, const std::vector<std::string>& targets,
                   std::vector<Tensor>* outputs, RunMetadata* metadata);
  absl::Status Run(const std::vector<std::pair<Output, Tensor>>& feeds,
                   const std::vector<Output>& fetches, std::vector<Tensor>* outputs,
                   const std::vector<Output>& targets = {});
  // The devices of the cluster.
  absl::StatusOr<std::vector<std::string>> ListDevices();
  const std::string& handle() const { return handle_; }
  // The graph the master runs: the client's plus the checkpoint nodes.
  const Graph& graph() const { return *graph_; }

  // Checkpoints (runtime/session/checkpoint.h, same file format and errors as the local
  // Save/Restore) of the variables on the workers: Save fetches them in one step and writes the
  // file here; Restore reads and checks the file here, then assigns every value in one step.
  absl::Status Save(const std::string& path, const std::vector<std::string>& names = {});
  absl::Status Restore(const std::string& path, const std::vector<std::string>& names = {});

 private:
  RemoteSession() = default;
  std::shared_ptr<const Graph> graph_;
  std::unique_ptr<proto::Master::Stub> stub_;
  std::string handle_;
  RemoteSessionOptions options_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_REMOTE_SESSION_H_
