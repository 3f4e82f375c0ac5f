// sluice_server: one task of a Sluice cluster.
//
//   sluice_server --cluster_spec='ps=127.0.0.1:5000;worker=127.0.0.1:5001,127.0.0.1:5002' \
//                 --job=worker --task=1
//   sluice_server --cluster_spec='worker=...' --job=master --port=0
//
// A task's control port is its address in the cluster spec (or --port); its data port is
// --data_port, by default chosen by the OS and advertised to the others over the control plane
// (heartbeats), so a spec lists one address per task. Given a cluster spec, every task serves
// sessions (the Master service) over all tasks of the spec except job "master" (a task that
// only serves sessions); a step waits up to --wait_for_tasks_ms for tasks not yet started.
// With --metrics_port it also serves its metrics over HTTP (docs/observability.md). With a
// cluster token (--cluster_token_file, or SLUICE_CLUSTER_TOKEN in its environment) it refuses
// every call that does not carry it (docs/security.md).
// Once listening it prints one line to stdout,
//   SLUICE_SERVER_READY job=worker task=1 control=127.0.0.1:5002 data=127.0.0.1:5003
// (and metrics=<host:port> with --metrics_port), which the local cluster launcher reads.
// SIGTERM or SIGINT shut it down cleanly.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "distributed/accept_guard.h"
#include "distributed/auth.h"
#include "distributed/deploy_config.h"
#include "distributed/grpc_util.h"
#include "distributed/server.h"
#include "distributed/tls.h"
#include "graph/cluster_spec.h"

ABSL_FLAG(std::string, cluster_spec, "",
          "Cluster spec, text (worker=h:p,h:p;ps=h:p) or JSON; the master reads job 'worker'. "
          "Without it, the SLUICE_CONFIG environment variable ({\"cluster\": {...}, \"task\": "
          "{\"type\": \"worker\", \"index\": 1}}) or Slurm's variables give the cluster, job "
          "and task (docs/deploy.md)");
ABSL_FLAG(std::string, job, "worker", "This task's job ('master' serves the Master service)");
ABSL_FLAG(int, task, 0, "This task's index in its job");
ABSL_FLAG(std::string, host, "127.0.0.1", "Interface to bind (loopback unless told otherwise)");
ABSL_FLAG(std::string, advertise_host, "",
          "The host other tasks reach this one at (in the addresses it advertises); default: "
          "this task's host in the cluster spec, else --host. Workers with a spec accept a "
          "peer's data address only on the spec's host for that task: keep them the same");
ABSL_FLAG(int, port, -1, "Control port; -1: from the cluster spec; 0: the OS chooses");
ABSL_FLAG(int, data_port, 0, "Data port; 0: the OS chooses (advertised over the control plane)");
ABSL_FLAG(int64_t, wait_for_tasks_ms, 60000,
          "How long a step waits for a task of the cluster spec that has never answered");
ABSL_FLAG(int, max_message_bytes, -1,
          "gRPC maximum message size on both ports; -1: 2 GiB on the control port (RunStep and "
          "RunGraph carry whole feed tensors), gRPC's 4 MiB on the data port (chunks are smaller)");
ABSL_FLAG(int64_t, chunk_bytes, 1 << 20,
          "Data-plane payload bytes per chunk (at most; must fit the data port's message cap). "
          "Use the same value, and the same --max_message_bytes, on every task");
ABSL_FLAG(int, credit_window, 4, "Tensors a sender may have in flight per edge");
ABSL_FLAG(int64_t, peer_keepalive_ms, 10000,
          "Ping period and answer deadline on links to peer workers while they carry a call; a "
          "transfer to a peer that stops answering fails after about twice this. 0: no pings");
ABSL_FLAG(int64_t, ended_step_ttl_ms, 120000,
          "How long a worker remembers an ended or aborted step, refusing its late tensors");
ABSL_FLAG(int64_t, max_session_bytes, -1,
          "Worker: bytes of live tensors one session's kernels may hold here (its variables "
          "included); a step that would pass it fails with RESOURCE_EXHAUSTED. -1: three "
          "quarters of the machine's memory; 0: no bound");
ABSL_FLAG(int64_t, max_early_bytes, int64_t{1} << 30,
          "Worker: bytes of tensors it holds for steps not running here (arrived early, or for "
          "steps that never run here); the tensor that would pass it fails its step with "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, orphan_ttl_ms, 300000,
          "How long a worker keeps tensors or aborts for a step that never ran there");
ABSL_FLAG(int, heartbeat_interval_ms, 500, "Master: heartbeat period");
ABSL_FLAG(int, heartbeat_timeout_ms, 5000, "Master: a worker silent this long is lost");
ABSL_FLAG(int64_t, session_idle_timeout_ms, 3600000,
          "Master: a session unused this long is closed (0: never)");
ABSL_FLAG(int, max_sessions, 1000, "Master: sessions open at once");
ABSL_FLAG(int64_t, max_graph_bytes, int64_t{64} << 20, "Master: bytes of a session's GraphDef");
ABSL_FLAG(int64_t, max_connection_idle_ms, 600000,
          "A connection with no call for this long is closed; clients reconnect (0: never)");
ABSL_FLAG(std::string, cluster_token_file, "",
          "A file (readable by its owner only) holding the cluster's token: every call to this "
          "server must carry it, and every call this server makes carries it. Without it the "
          "token comes from the SLUICE_CLUSTER_TOKEN environment variable, if set (never give "
          "it on a command line)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve TLS on every port and present it as the client "
          "certificate on calls to peers (needs --tls_key; its subjectAltName must name the "
          "address peers dial)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (readable by its owner only)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate: verify the servers this server calls, and with "
          "--require_client_cert its clients, against it");
ABSL_FLAG(bool, require_client_cert, false,
          "Refuse clients without a certificate signed by --tls_ca (mutual TLS)");
ABSL_FLAG(int64_t, slow_step_report_ms, 60000,
          "A step running this long is reported once on stderr, with what each of its tasks says "
          "it is doing (waiting receives and their senders, credits); 0: never");
ABSL_FLAG(int, metrics_port, -1,
          "Serve metrics (steps, step latency, bytes per plane and peer, mailbox bytes) in "
          "Prometheus' text format at http://<host>:<port>/metrics; 0: the OS chooses (printed "
          "on the listening line); -1: off");
ABSL_FLAG(int, heartbeat_deadline_ms, 2000,
          "Master: how long one heartbeat may take to be answered (keep it above the links' "
          "round trip; independent of the interval)");
ABSL_FLAG(bool, exit_on_stdin_eof, false,
          "Shut down when stdin reaches end of file (a launcher's lifeline pipe: the server "
          "then stops when its launcher exits, however it dies)");

namespace {

// Every peer, client and idle connection holds a descriptor: the default soft limit (often
// 1024) runs out long before the hard one, and a server out of descriptors accepts no one.
void RaiseOpenFileLimit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::cerr << "sluice_server: warning: cannot raise the open-file limit: "
              << std::strerror(errno) << std::endl;
  }
}

int Fail(const absl::Status& s) {
  std::cerr << "sluice_server: " << s << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = sluice::KeepFreedHeapMemoryForReuse(); !s.ok()) {
    std::cerr << "sluice_server: warning: " << s << std::endl;  // Slower, still correct.
  }
  // Block the shutdown signals in every thread; one thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sluice::ServerOptions options;
  options.job = absl::GetFlag(FLAGS_job);
  options.task = absl::GetFlag(FLAGS_task);
  options.host = absl::GetFlag(FLAGS_host);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.chunk_bytes = absl::GetFlag(FLAGS_chunk_bytes);
  options.credit_window = absl::GetFlag(FLAGS_credit_window);
  options.peer_keepalive = absl::Milliseconds(absl::GetFlag(FLAGS_peer_keepalive_ms));
  if (options.peer_keepalive < absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError("--peer_keepalive_ms must be >= 0"));
  }
  options.mailbox.ended_step_ttl = absl::Milliseconds(absl::GetFlag(FLAGS_ended_step_ttl_ms));
  options.mailbox.orphan_ttl = absl::Milliseconds(absl::GetFlag(FLAGS_orphan_ttl_ms));
  options.mailbox.max_early_bytes = absl::GetFlag(FLAGS_max_early_bytes);
  options.max_session_bytes = absl::GetFlag(FLAGS_max_session_bytes);
  if (options.max_session_bytes < 0) {
    // A runaway session gets a named error before the kernel's OOM killer picks a process.
    const int64_t pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    options.max_session_bytes = pages > 0 && page > 0 ? pages / 4 * 3 * page : 0;
  }
  if (options.mailbox.max_early_bytes < 0) {
    return Fail(absl::InvalidArgumentError("--max_early_bytes must be >= 0"));
  }
  if (options.mailbox.ended_step_ttl <= absl::ZeroDuration() ||
      options.mailbox.orphan_ttl <= absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError("--ended_step_ttl_ms and --orphan_ttl_ms must be > 0"));
  }
  options.heartbeat.interval = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_interval_ms));
  options.heartbeat.timeout = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_timeout_ms));
  options.heartbeat.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_deadline_ms));
  if (options.heartbeat.interval <= absl::ZeroDuration() ||
      options.heartbeat.timeout <= absl::ZeroDuration() ||
      options.heartbeat.deadline <= absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError(
        "--heartbeat_interval_ms, --heartbeat_timeout_ms and --heartbeat_deadline_ms must be > 0"));
  }
  RaiseOpenFileLimit();
  if (!sluice::ReserveDescriptorForAccept()) {
    std::cerr << "sluice_server: warning: cannot reserve a descriptor for refusing connections "
                 "when descriptors run out"
              << std::endl;
  }
  const int64_t idle_ms = absl::GetFlag(FLAGS_session_idle_timeout_ms);
  options.session_idle_timeout =
      idle_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(idle_ms);
  options.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  options.max_graph_bytes = absl::GetFlag(FLAGS_max_graph_bytes);
  const int64_t conn_idle_ms = absl::GetFlag(FLAGS_max_connection_idle_ms);
  options.max_connection_idle =
      conn_idle_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(conn_idle_ms);
  if (idle_ms < 0 || conn_idle_ms < 0 || options.max_sessions <= 0 ||
      options.max_graph_bytes <= 0) {
    return Fail(absl::InvalidArgumentError(
        "--session_idle_timeout_ms and --max_connection_idle_ms must be >= 0, --max_sessions and "
        "--max_graph_bytes > 0"));
  }

  int port = absl::GetFlag(FLAGS_port);
  const std::string spec_text = absl::GetFlag(FLAGS_cluster_spec);
  // Without --cluster_spec, a cluster manager may have said it: SLUICE_CONFIG or Slurm.
  std::optional<sluice::ClusterSpec> from_env;
  if (spec_text.empty()) {
    absl::StatusOr<std::optional<sluice::TaskConfig>> env =
        sluice::ConfigFromEnvironment(std::getenv);
    if (!env.ok()) return Fail(env.status());
    if (env->has_value()) {
      absl::StatusOr<sluice::ClusterSpec> spec = sluice::ClusterSpec::Create((*env)->cluster);
      if (!spec.ok()) return Fail(spec.status());
      from_env = *std::move(spec);
      options.job = (*env)->job;
      options.task = (*env)->task;
    }
  }
  if (!spec_text.empty() || from_env.has_value()) {
    absl::StatusOr<sluice::ClusterSpec> spec =
        from_env.has_value() ? *from_env : sluice::ClusterSpec::Parse(spec_text);
    if (!spec.ok()) return Fail(spec.status());
    absl::StatusOr<std::string> addr = spec->TaskAddress(options.job, options.task);
    if (port < 0) {
      if (!addr.ok()) return Fail(addr.status());
      const std::string p = addr->substr(addr->rfind(':') + 1);
      if (!absl::SimpleAtoi(p, &port)) return Fail(absl::InvalidArgumentError(*addr));
    }
    if (addr.ok()) options.advertise_host = addr->substr(0, addr->rfind(':'));
    options.cluster_tasks = sluice::ClusterTasks(*spec);
  }
  const int64_t wait_ms = absl::GetFlag(FLAGS_wait_for_tasks_ms);
  if (wait_ms < 0) return Fail(absl::InvalidArgumentError("--wait_for_tasks_ms must be >= 0"));
  options.wait_for_tasks = absl::Milliseconds(wait_ms);
  if (port < 0) {
    return Fail(absl::InvalidArgumentError("give --port or a --cluster_spec naming this task"));
  }
  if (const std::string a = absl::GetFlag(FLAGS_advertise_host); !a.empty()) {
    options.advertise_host = a;
  }
  options.control_port = port;
  options.data_port = absl::GetFlag(FLAGS_data_port);
  if (options.data_port < 0) return Fail(absl::InvalidArgumentError("--data_port must be >= 0"));
  const std::string token_file = absl::GetFlag(FLAGS_cluster_token_file);
  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> loaded = sluice::LoadClusterToken(token_file);
    if (!loaded.ok()) return Fail(loaded.status());
    token = *loaded;
  } else if (const char* env = std::getenv(sluice::kClusterTokenEnv); env != nullptr) {
    token = env;
  }
  if (absl::Status set = sluice::SetClusterToken(token); !set.ok()) return Fail(set);
  sluice::TlsFiles tls{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                       absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_require_client_cert)};
  if (absl::Status set = sluice::SetTls(tls); !set.ok()) return Fail(set);
  const int64_t slow_ms = absl::GetFlag(FLAGS_slow_step_report_ms);
  if (slow_ms < 0) return Fail(absl::InvalidArgumentError("--slow_step_report_ms must be >= 0"));
  options.slow_step_report = slow_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(slow_ms);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (options.metrics_port < -1 || options.metrics_port > 65535) {
    return Fail(absl::InvalidArgumentError("--metrics_port must be -1 (off), 0 or a port"));
  }

  absl::StatusOr<std::unique_ptr<sluice::Server>> server = sluice::Server::Start(options);
  if (!server.ok()) return Fail(server.status());
  std::cout << "SLUICE_SERVER_READY job=" << options.job << " task=" << options.task
            << " control=" << (*server)->control_address() << " data=" << (*server)->data_address()
            << ((*server)->metrics_address().empty() ? "" : " metrics=")
            << (*server)->metrics_address() << std::endl;
  std::cerr << absl::StrCat("sluice_server /job:", options.job, "/task:", options.task,
                            " listening: control ", (*server)->control_address(), ", data ",
                            (*server)->data_address(),
                            (*server)->metrics_address().empty()
                                ? ""
                                : absl::StrCat(", metrics http://", (*server)->metrics_address(),
                                               "/metrics"),
                            "\n")
            << std::flush;
  if (absl::GetFlag(FLAGS_exit_on_stdin_eof)) {
    std::thread([] {
      char buf[256];
      while (true) {
        const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      std::cerr << "sluice_server: stdin closed (the launcher exited)\n" << std::flush;
      kill(getpid(), SIGTERM);  // Handled by the sigwait below, like an operator's SIGTERM.
    }).detach();
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << absl::StrCat("sluice_server /job:", options.job, "/task:", options.task, ": signal ",
                            sig, ", shutting down\n")
            << std::flush;
  (*server)->Shutdown();
  (*server)->Wait();
  server->reset();
  return 0;
}
