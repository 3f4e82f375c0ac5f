#include "distributed/local_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

// Reads a server's stderr until EOF (the server exited), writes everything to this process's
// stderr and keeps the last kTailBytes. The destructor waits for EOF, so destroy it only once
// the server has exited (and no process it started holds its stderr).
class ServerLog {
 public:
  explicit ServerLog(int fd) : fd_(fd), reader_([this] { Pump(); }) {}
  ~ServerLog() { reader_.join(); }

  // The last lines the server wrote, once it has exited (waits for EOF).
  std::string TailAfterExit() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&eof_));
    absl::string_view tail = tail_;
    if (dropped_bytes_ > 0) {  // Whole lines only: drop what is left of a cut line.
      const size_t line_end = tail.find('\n');
      tail.remove_prefix(line_end == absl::string_view::npos ? 0 : line_end + 1);
    }
    return std::string(absl::StripTrailingAsciiWhitespace(tail));
  }

 private:
  static constexpr size_t kTailBytes = 2048;

  void Pump() {
    // A launcher whose stderr is a closed pipe gets EPIPE here rather than a fatal SIGPIPE.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    bool copy = true;
    char buf[4096];
    while (true) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (ssize_t off = 0; copy && off < n;) {  // Best effort: only the copy can be lost.
        ssize_t w = write(STDERR_FILENO, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) copy = false;
        off += std::max<ssize_t>(w, 0);
      }
      absl::MutexLock lock(&mu_);
      tail_.append(buf, n);
      if (tail_.size() > kTailBytes) {
        dropped_bytes_ += tail_.size() - kTailBytes;
        tail_.erase(0, tail_.size() - kTailBytes);
      }
    }
    close(fd_);
    absl::MutexLock lock(&mu_);
    eof_ = true;
  }

  const int fd_;
  absl::Mutex mu_;
  std::string tail_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // Written before tail_ begins.
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;  // Last: starts once the fields above exist.
};

namespace {

// Reads one line from `fd` before `deadline`.
absl::StatusOr<std::string> ReadLine(int fd, absl::Time deadline) {
  std::string line;
  while (true) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("timed out waiting for the server to start");
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("the server exited before it was ready");
    if (c == '\n') return line;
    line.push_back(c);
  }
}

void CloseLifeline(LocalCluster::Process* p) {
  if (p->lifeline_fd >= 0) close(p->lifeline_fd);
  p->lifeline_fd = -1;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace

absl::StatusOr<LocalCluster::Process> LocalCluster::Spawn(const std::string& job, int task,
                                                          std::vector<std::string> flags) {
  // All pipes here are close-on-exec, so only the server each is meant for inherits it (dup2
  // clears the flag on the copy the child keeps). `fds`: the server's stdout, for its ready line.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // The lifeline: the child's stdin is the read end; this process holds the write end. When
  // this process exits, however it dies, the server reads EOF and shuts down: no server
  // outlives its launcher.
  int life[2];
  if (pipe2(life, O_CLOEXEC) != 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  int err[2];
  if (pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {fds[0], fds[1], life[0], life[1]}) close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::vector<std::string> args = {options_.server_binary, "--job=" + job,
                                   absl::StrCat("--task=", task), "--exit_on_stdin_eof"};
  for (auto& f : flags) args.push_back(std::move(f));
  std::vector<char*> argv;  // Built before fork: the child of a threaded process must not malloc.
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {fds[0], fds[1], life[0], life[1], err[0], err[1]}) close(fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {  // Only async-signal-safe calls from here to execv.
    // Copies above 2 first: if the launcher ran with stdin/out/err closed, a pipe end can itself
    // be 0-2, and moving one into place must not overwrite another.
    const int in = fcntl(life[0], F_DUPFD_CLOEXEC, 3);
    const int out = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
    const int errout = fcntl(err[1], F_DUPFD_CLOEXEC, 3);
    // dup2 leaves the new 0-2 without close-on-exec; every other descriptor closes at exec.
    if (in < 0 || out < 0 || errout < 0 || dup2(in, STDIN_FILENO) < 0 ||
        dup2(out, STDOUT_FILENO) < 0 || dup2(errout, STDERR_FILENO) < 0) {
      _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  close(life[0]);
  close(err[1]);
  Process p;
  p.job = job;
  p.task = task;
  p.pid = pid;
  p.lifeline_fd = life[1];
  p.log = std::make_shared<ServerLog>(err[0]);
  absl::StatusOr<std::string> line = ReadLine(fds[0], absl::Now() + options_.start_timeout);
  close(fds[0]);  // Later output to stdout is dropped (the server logs to stderr).
  if (!line.ok() || !absl::StartsWith(*line, "SLUICE_SERVER_READY")) {
    kill(pid, SIGKILL);  // No effect when it has exited already: then its own status is kept.
    const int code = WaitExit(pid);
    close(life[1]);
    std::string why =
        line.ok() ? "unexpected output '" + *line + "'" : std::string(line.status().message());
    if (!line.ok() && absl::IsUnavailable(line.status()) && code != 128 + SIGKILL) {
      absl::StrAppend(&why, " (exit status ", code,
                      code == 127 ? absl::StrCat(": cannot run ", args[0], ")") : ")");
    }
    const std::string said = p.log->TailAfterExit();  // It has exited: the tail is complete.
    if (!said.empty()) absl::StrAppend(&why, "; its stderr ended with:\n", said);
    return absl::UnavailableError(absl::StrCat("starting ", absl::StrJoin(args, " "), ": ", why));
  }
  for (absl::string_view field : absl::StrSplit(*line, ' ')) {
    if (absl::ConsumePrefix(&field, "control=")) p.control_address = std::string(field);
    if (absl::ConsumePrefix(&field, "data=")) p.data_address = std::string(field);
    if (absl::ConsumePrefix(&field, "metrics=")) p.metrics_address = std::string(field);
  }
  return p;
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(options));
  std::vector<std::string> controls;
  for (int i = 0; i < options.num_workers; ++i) {
    std::vector<std::string> flags = {"--port=0", "--data_port=0"};
    flags.insert(flags.end(), options.worker_flags.begin(), options.worker_flags.end());
    absl::StatusOr<Process> p = cluster->Spawn("worker", i, flags);
    if (!p.ok()) return p.status();
    cluster->workers_.push_back(*p);
    controls.push_back(p->control_address);
  }
  std::vector<std::string> ps_controls;
  for (int i = 0; i < options.num_ps; ++i) {
    std::vector<std::string> flags = {"--port=0", "--data_port=0"};
    flags.insert(flags.end(), options.worker_flags.begin(), options.worker_flags.end());
    absl::StatusOr<Process> p = cluster->Spawn("ps", i, flags);
    if (!p.ok()) return p.status();
    cluster->ps_.push_back(*p);
    ps_controls.push_back(p->control_address);
  }
  if (options.start_master) {
    std::string spec = "worker=" + absl::StrJoin(controls, ",");
    if (!ps_controls.empty()) absl::StrAppend(&spec, ";ps=", absl::StrJoin(ps_controls, ","));
    std::vector<std::string> flags = {"--port=0", "--data_port=0", "--cluster_spec=" + spec};
    flags.insert(flags.end(), options.master_flags.begin(), options.master_flags.end());
    absl::StatusOr<Process> p = cluster->Spawn("master", 0, flags);
    if (!p.ok()) return p.status();
    cluster->master_ = *p;
  }
  return cluster;
}

absl::Status LocalCluster::Kill(Process* p, const std::string& what) {
  if (p->pid < 0) return absl::FailedPreconditionError(absl::StrCat(what, " is not running"));
  kill(p->pid, SIGKILL);
  WaitExit(p->pid);
  p->pid = -1;
  CloseLifeline(p);
  return absl::OkStatus();
}

absl::Status LocalCluster::KillWorker(int i) {
  return Kill(&workers_[i], absl::StrCat("worker ", i));
}

absl::Status LocalCluster::KillPs(int i) { return Kill(&ps_[i], absl::StrCat("ps task ", i)); }

absl::Status LocalCluster::PauseWorker(int i) {
  if (workers_[i].pid < 0) return absl::FailedPreconditionError("not running");
  kill(workers_[i].pid, SIGSTOP);
  // The signal is delivered asynchronously: wait until the process has stopped, so whatever
  // the caller does next finds it stopped.
  int status = 0;
  while (waitpid(workers_[i].pid, &status, WUNTRACED) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
  }
  if (!WIFSTOPPED(status)) return absl::InternalError("the worker ended instead of stopping");
  workers_[i].paused = true;
  return absl::OkStatus();
}

absl::Status LocalCluster::ResumeWorker(int i) {
  if (workers_[i].pid < 0) return absl::FailedPreconditionError("not running");
  kill(workers_[i].pid, SIGCONT);
  if (!workers_[i].paused) return absl::OkStatus();
  workers_[i].paused = false;
  int status = 0;
  while (waitpid(workers_[i].pid, &status, WCONTINUED) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LocalCluster::StopWorker(int i) {
  Process& p = workers_[i];
  if (p.pid < 0)
    return absl::FailedPreconditionError(absl::StrCat("worker ", i, " is not running"));
  kill(p.pid, SIGTERM);
  int code = WaitExit(p.pid);
  p.pid = -1;
  CloseLifeline(&p);
  return code;
}

absl::Status LocalCluster::Restart(Process* old, const std::string& job, int i) {
  if (old->pid >= 0) {
    return absl::FailedPreconditionError(absl::StrCat(job, " task ", i, " is running"));
  }
  const std::string cport = old->control_address.substr(old->control_address.rfind(':') + 1);
  const std::string dport = old->data_address.substr(old->data_address.rfind(':') + 1);
  std::vector<std::string> flags = {"--port=" + cport, "--data_port=" + dport};
  flags.insert(flags.end(), options_.worker_flags.begin(), options_.worker_flags.end());
  absl::StatusOr<Process> p = Spawn(job, i, flags);
  if (!p.ok()) return p.status();
  *old = *p;
  return absl::OkStatus();
}

absl::Status LocalCluster::RestartWorker(int i) { return Restart(&workers_[i], "worker", i); }

absl::Status LocalCluster::RestartPs(int i) { return Restart(&ps_[i], "ps", i); }

LocalCluster::~LocalCluster() {
  std::vector<pid_t> pids;
  if (master_.pid > 0) pids.push_back(master_.pid);
  for (const Process& w : workers_) {
    if (w.pid > 0) pids.push_back(w.pid);
  }
  for (const Process& p : ps_) {
    if (p.pid > 0) pids.push_back(p.pid);
  }
  for (pid_t pid : pids) {
    kill(pid, SIGCONT);  // A paused process could not act on SIGTERM.
    kill(pid, SIGTERM);
  }
  for (pid_t pid : pids) WaitExit(pid);
  CloseLifeline(&master_);
  for (Process& w : workers_) CloseLifeline(&w);
  for (Process& p : ps_) CloseLifeline(&p);
}

}  // namespace sluice
