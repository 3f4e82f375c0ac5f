// LocalCluster: starts a real Sluice cluster on this machine (1 master + N workers + K parameter
// servers of a "ps" job, each its own sluice_server process on loopback) and stops it. For
// tests, demos and benchmarks.
//
// Ports: every server binds port 0 (the OS picks free ports) and reports the addresses it bound
// on its stdout as one SLUICE_SERVER_READY line, which the launcher reads from a pipe; so there
// is no window in which a port chosen by the launcher could be taken by someone else. The
// workers start first; the master is then given their control addresses and learns their data
// addresses from their heartbeat identities. A killed worker restarts on the same ports (the
// master's cluster spec names them) under a new incarnation. Every server is started with
// --exit_on_stdin_eof and a pipe on its stdin that only this process holds open, so the
// servers shut down when the launching process exits, even when it is killed. A server's stderr
// is copied to this process's stderr by one thread per server, which keeps the last lines so that
// a server that fails to start is reported with its own words.
// Thread-compatible: one owner drives it.
//
//   SLUICE_ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start({.server_binary = path, .num_workers
//   = 2})); SLUICE_ASSIGN_OR_RETURN(auto session, RemoteSession::Create(cluster->master_address(),
//   graph));
#ifndef SLUICE_DISTRIBUTED_LOCAL_CLUSTER_H_
#define SLUICE_DISTRIBUTED_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice {

class ServerLog;  // Copies one server's stderr through and keeps its tail.

struct LocalClusterOptions {
  // Path of sluice_server (or a program that execs it: a child left holding the server's
  // stderr would keep the launcher waiting for its end).
  std::string server_binary;
  int num_workers = 2;
  int num_ps = 0;  // Tasks of a "ps" job (parameter servers), started like workers.
  bool start_master = true;
  std::vector<std::string> worker_flags;  // Extra flags for every worker.
  std::vector<std::string> master_flags;  // Extra flags for the master.
  absl::Duration start_timeout = absl::Seconds(30);
};

class LocalCluster {
 public:
  struct Process {
    std::string job;
    int task = 0;
    pid_t pid = -1;
    std::string control_address;
    std::string data_address;
    std::string metrics_address;  // "" unless started with --metrics_port.
    int lifeline_fd = -1;  // Write end of the server's stdin pipe; closing it stops the server.
    bool paused = false;   // By PauseWorker.
    std::shared_ptr<ServerLog> log;
  };

  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  // SIGTERM to every process, then waits for them.
  ~LocalCluster();

  const std::string& master_address() const { return master_.control_address; }
  const Process& worker(int i) const { return workers_[i]; }
  const Process& master() const { return master_; }
  int num_workers() const { return static_cast<int>(workers_.size()); }
  const Process& ps(int i) const { return ps_[i]; }
  int num_ps() const { return static_cast<int>(ps_.size()); }

  // SIGKILL (no chance to clean up) and reap.
  absl::Status KillWorker(int i);
  absl::Status KillPs(int i);
  // Starts worker (ps task) i again on its previous ports.
  absl::Status RestartWorker(int i);
  absl::Status RestartPs(int i);
  // SIGSTOP / SIGCONT: the process stays connected but answers nothing (a hung machine). Each
  // returns once the process has stopped / continued.
  absl::Status PauseWorker(int i);
  absl::Status ResumeWorker(int i);
  // SIGTERM and wait; the exit status (0 for a clean shutdown).
  absl::StatusOr<int> StopWorker(int i);

 private:
  explicit LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {}
  absl::StatusOr<Process> Spawn(const std::string& job, int task, std::vector<std::string> flags);
  absl::Status Kill(Process* p, const std::string& what);
  absl::Status Restart(Process* old, const std::string& job, int i);

  LocalClusterOptions options_;
  std::vector<Process> workers_;
  std::vector<Process> ps_;
  Process master_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_LOCAL_CLUSTER_H_
