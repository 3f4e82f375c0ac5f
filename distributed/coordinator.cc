#include "distributed/coordinator.h"

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"
#include "distributed/grpc_util.h"
#include "distributed/protocol.h"

namespace sluice {

proto::PeerAddress MakePeerAddress(std::string task_prefix, std::string control_address,
                                   std::string data_address) {
  proto::PeerAddress peer;
  peer.set_task_prefix(std::move(task_prefix));
  peer.set_control_address(std::move(control_address));
  peer.set_data_address(std::move(data_address));
  return peer;
}

std::string PeerName(const proto::PeerAddress& peer) {
  return absl::StrCat(peer.task_prefix(), " at ", peer.control_address());
}

namespace {
absl::Status Restarted(const proto::PeerAddress& w) {
  return absl::UnavailableError(absl::StrCat("task ", PeerName(w), " restarted (new incarnation)"));
}
}  // namespace

// One heartbeat call in flight.
struct HeartbeatMonitor::Ping {
  std::shared_ptr<const Watched> watched;
  absl::Time sent;
  grpc::ClientContext ctx;
  proto::HeartbeatRequest req;
  proto::HeartbeatResponse resp;
  grpc::Status status;
};

HeartbeatMonitor::HeartbeatMonitor(HeartbeatOptions options) : options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

HeartbeatMonitor::~HeartbeatMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  // Pings in flight hold stubs of watched_ and call back into this: end them first.
  std::vector<std::shared_ptr<Ping>> answered;
  std::vector<std::shared_ptr<const Watched>> retired;
  absl::MutexLock lock(&mu_);
  for (auto& [raw, ping] : pings_) ping->ctx.TryCancel();
  mu_.Await(absl::Condition(
      +[](std::map<Ping*, std::shared_ptr<Ping>>* p) { return p->empty(); }, &pings_));
  answered = std::move(answered_);
  retired = std::move(retired_);
}

void HeartbeatMonitor::TakeFreeable(std::vector<std::shared_ptr<Ping>>* pings,
                                    std::vector<std::shared_ptr<const Watched>>* watched) {
  *pings = std::move(answered_);
  answered_.clear();
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (it->use_count() == 1) {  // Only here: no call or ping can copy it any more.
      watched->push_back(std::move(*it));
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
}

void HeartbeatMonitor::Watch(const proto::PeerAddress& worker) {
  std::shared_ptr<const Watched> w = Connect(worker);
  absl::MutexLock lock(&mu_);
  watched_[worker.task_prefix()] = std::move(w);
  liveness_[worker.task_prefix()] = Liveness{absl::Now(), 0, absl::OkStatus()};
}

std::shared_ptr<const HeartbeatMonitor::Watched> HeartbeatMonitor::Connect(
    const proto::PeerAddress& worker) {
  auto w = std::make_shared<Watched>();
  w->ref = worker;
  // RunGraph responses carry whole fetched tensors: up to protobuf's 2 GiB.
  w->stub = proto::Control::NewStub(MakeChannel(worker.control_address(), INT32_MAX));
  w->heartbeat_channel = MakeChannel(worker.control_address());
  w->heartbeat_stub = proto::Control::NewStub(w->heartbeat_channel);
  return w;
}

int64_t HeartbeatMonitor::AddListener(LostCallback callback) {
  absl::MutexLock lock(&mu_);
  int64_t id = next_listener_++;
  listeners_[id] = std::move(callback);
  return id;
}

void HeartbeatMonitor::RemoveListener(int64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

uint64_t HeartbeatMonitor::incarnation(const std::string& task_prefix) const {
  absl::MutexLock lock(&mu_);
  auto it = liveness_.find(task_prefix);
  return it == liveness_.end() ? 0 : it->second.incarnation;
}

absl::Status HeartbeatMonitor::health(const std::string& task_prefix) const {
  absl::MutexLock lock(&mu_);
  auto it = liveness_.find(task_prefix);
  if (it == liveness_.end()) {
    return absl::NotFoundError(absl::StrCat("task ", task_prefix, " is not in the cluster"));
  }
  return it->second.health;
}

void HeartbeatMonitor::NoteIncarnation(const std::string& task_prefix, uint64_t incarnation) {
  proto::PeerAddress restarted;
  std::vector<LostCallback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    auto it = liveness_.find(task_prefix);
    if (it == liveness_.end() || it->second.incarnation == incarnation) return;
    Liveness& live = it->second;
    const bool was_known = live.incarnation != 0;
    live.incarnation = incarnation;
    live.last_ok = absl::Now();
    live.health = absl::OkStatus();
    if (!was_known) return;
    restarted = watched_.at(task_prefix)->ref;
    for (auto& [id, cb] : listeners_) callbacks.push_back(cb);
  }
  for (auto& cb : callbacks) cb(restarted, Restarted(restarted));
}

int64_t HeartbeatMonitor::rounds() const {
  absl::MutexLock lock(&mu_);
  return rounds_;
}

std::shared_ptr<proto::Control::Stub> HeartbeatMonitor::stub(const std::string& task_prefix) {
  absl::MutexLock lock(&mu_);
  auto it = watched_.find(task_prefix);
  if (it == watched_.end()) return nullptr;
  // Shares ownership of the whole Watched, so a replaced one is freed only when unused.
  return std::shared_ptr<proto::Control::Stub>(it->second, it->second->stub.get());
}

int64_t HeartbeatMonitor::answers(const std::string& task_prefix) const {
  absl::MutexLock lock(&mu_);
  auto it = liveness_.find(task_prefix);
  return it == liveness_.end() ? 0 : it->second.answers;
}

bool HeartbeatMonitor::answering(const std::string& task_prefix) const {
  absl::MutexLock lock(&mu_);
  auto it = liveness_.find(task_prefix);
  return it != liveness_.end() && it->second.answers > 0 && !it->second.last_failed;
}

proto::PeerAddress HeartbeatMonitor::peer(const std::string& task_prefix) const {
  absl::MutexLock lock(&mu_);
  auto it = watched_.find(task_prefix);
  if (it == watched_.end()) return proto::PeerAddress();
  proto::PeerAddress out = it->second->ref;
  auto live = liveness_.find(task_prefix);
  if (live != liveness_.end() && !live->second.data_address.empty()) {
    out.set_data_address(live->second.data_address);
  }
  return out;
}

std::vector<std::string> HeartbeatMonitor::MissingLocked(
    const std::vector<std::string>& task_prefixes) const {
  std::vector<std::string> missing;
  for (const std::string& t : task_prefixes) {
    auto w = watched_.find(t);
    auto live = liveness_.find(t);
    if (w == watched_.end() || live == liveness_.end()) {
      missing.push_back(absl::StrCat(t, " (not in the cluster)"));
    } else if (live->second.answers == 0) {
      const std::string& why = live->second.last_error;
      missing.push_back(
          absl::StrCat(PeerName(w->second->ref), " (", why.empty() ? "no answer yet" : why, ")"));
    }
  }
  return missing;
}

absl::Status HeartbeatMonitor::AwaitFirstAnswers(
    const std::vector<std::string>& task_prefixes, absl::Duration timeout,
    absl::Duration progress_every, const std::function<void(const std::string&)>& progress) {
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + timeout;
  auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const std::string& t : task_prefixes) {
      auto live = liveness_.find(t);
      if (live == liveness_.end() || live->second.answers == 0) return false;
    }
    return true;
  };
  {
    // A task that is up answers within a heartbeat round trip: wait a grace period quietly, so
    // a freshly started master does not print for tasks that are merely being pinged.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&all_answered),
                          std::min(give_up, start + std::min(progress_every, absl::Seconds(1))));
  }
  while (true) {
    std::vector<std::string> missing;
    {
      absl::MutexLock lock(&mu_);
      if (all_answered()) return absl::OkStatus();
      missing = MissingLocked(task_prefixes);
      if (absl::Now() >= give_up || missing.empty()) {
        return absl::UnavailableError(absl::StrCat(
            "gave up after ",
            absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
            " waiting for tasks that never answered: ", absl::StrJoin(missing, "; "),
            ". Are they started, and are their addresses in the cluster spec right?"));
      }
    }
    if (progress) {
      progress(absl::StrCat("waiting for ", absl::StrJoin(missing, "; "), " (",
                            absl::ToInt64Seconds(absl::Now() - start), "s so far, giving up after ",
                            absl::FormatDuration(timeout), ")"));
    }
    absl::MutexLock lock(&mu_);
    const absl::Time until = std::min(give_up, absl::Now() + progress_every);
    mu_.AwaitWithDeadline(absl::Condition(&all_answered), until);
  }
}

void HeartbeatMonitor::Send(const std::shared_ptr<const Watched>& w, bool reconnecting) {
  auto ping = std::make_shared<Ping>();
  ping->watched = w;
  ping->req.set_protocol_version(kProtocolVersion);
  ping->req.set_from("master");
  ping->sent = absl::Now();
  ping->ctx.set_deadline(absl::ToChronoTime(ping->sent + options_.deadline));
  // A ping that failed at once would leave the new connection attempt unpolled: a restarted
  // task was seen only ~8 s after it listened (CoordinatorTest's kill-and-rejoin), now at once.
  ping->ctx.set_wait_for_ready(reconnecting);
  {
    absl::MutexLock lock(&mu_);
    pings_[ping.get()] = ping;
  }
  w->heartbeat_stub->async()->Heartbeat(&ping->ctx, &ping->req, &ping->resp,
                                        [this, raw = ping.get()](grpc::Status s) {
                                          raw->status = std::move(s);
                                          OnAnswer(*raw);
                                        });
}

void HeartbeatMonitor::OnAnswer(const Ping& ping) {
  std::vector<std::pair<proto::PeerAddress, absl::Status>> lost;
  {
    absl::MutexLock lock(&mu_);
    const proto::PeerAddress& ref = ping.watched->ref;
    Liveness& live = liveness_[ref.task_prefix()];
    live.in_flight = false;
    const proto::TaskIdentity& id = ping.resp.identity();
    const std::string who = absl::StrCat("/job:", id.job(), "/task:", id.task());
    if (ping.status.ok() && who != ref.task_prefix()) {
      // A wrong address in the cluster spec: never treat another task as this one.
      live.last_error = absl::StrCat("the server at ", ref.control_address(), " is ", who, ", not ",
                                     ref.task_prefix());
      live.last_failed = true;
      live.health = absl::FailedPreconditionError(live.last_error);
    } else if (ping.status.ok()) {
      const uint64_t inc = id.incarnation();
      live.data_address = id.data_address();
      if (live.incarnation != 0 && inc != live.incarnation) {
        // Restarted: whatever ran on the old incarnation is gone.
        lost.emplace_back(ref, Restarted(ref));
      }
      live.incarnation = inc;
      live.last_ok = absl::Now();
      if (options_.metrics != nullptr) {
        options_.metrics->Observe("sluice_heartbeat_seconds", {{"peer", ref.task_prefix()}},
                                  absl::ToDoubleSeconds(live.last_ok - ping.sent));
      }
      live.health = absl::OkStatus();  // Heals a task marked lost that answers again.
      ++live.answers;
      // Back (restarted, or reachable again): calls made while it was down left the RunGraph
      // channel in gRPC's reconnect backoff, which fails calls at once for seconds; the answer
      // shows it listens, so later calls go on a fresh channel (calls in flight keep theirs).
      if (live.last_failed && watched_[ref.task_prefix()] == ping.watched) {
        retired_.push_back(std::exchange(watched_[ref.task_prefix()], Connect(ref)));
      }
      live.last_failed = false;
    } else {
      live.last_error = ping.status.error_message();
      live.last_failed = true;
    }
    if (stop_) lost.clear();  // The listeners may be going too.
  }
  Report(lost);
  // Last: the destructor waits for pings_ to empty, so nothing here may touch `this` after.
  absl::MutexLock lock(&mu_);
  auto it = pings_.find(const_cast<Ping*>(&ping));
  answered_.push_back(std::move(it->second));  // Freed by the monitor's thread, not gRPC's.
  pings_.erase(it);
}

void HeartbeatMonitor::Report(
    const std::vector<std::pair<proto::PeerAddress, absl::Status>>& lost) {
  if (lost.empty()) return;
  std::vector<LostCallback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, cb] : listeners_) callbacks.push_back(cb);
  }
  for (auto& [ref, status] : lost) {
    for (auto& cb : callbacks) cb(ref, status);
  }
}

void HeartbeatMonitor::Loop() {
  while (true) {
    std::vector<std::pair<std::shared_ptr<const Watched>, bool>> to_ping;  // (task, reconnecting)
    std::vector<std::pair<proto::PeerAddress, absl::Status>> lost;
    std::vector<std::shared_ptr<Ping>> answered;          // Freed at the end of the round,
    std::vector<std::shared_ptr<const Watched>> retired;  // outside the lock.
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      TakeFreeable(&answered, &retired);
      const absl::Time now = absl::Now();
      for (auto& [name, w] : watched_) {
        Liveness& live = liveness_[name];
        if (live.health.ok() && now - live.last_ok >= options_.timeout) {
          live.health = absl::UnavailableError(absl::StrCat(
              "task ", PeerName(w->ref), " answered no heartbeat for ",
              absl::FormatDuration(absl::Trunc(now - live.last_ok, absl::Milliseconds(1))),
              " (missed heartbeats; timeout ", absl::FormatDuration(options_.timeout),
              live.last_error.empty() ? ")" : absl::StrCat("): ", live.last_error)));
          lost.emplace_back(w->ref, live.health);
        }
        // A ping still out (a slow link, a hung task) ends by its own deadline; no second one.
        if (!live.in_flight) {
          live.in_flight = true;
          to_ping.emplace_back(w, live.last_failed);
          // A task that did not answer is tried at every ping, not at the channel's backoff.
          if (live.last_failed) {
            grpc::experimental::ChannelResetConnectionBackoff(w->heartbeat_channel.get());
          }
        }
      }
      ++rounds_;
    }
    for (const auto& [w, reconnecting] : to_ping) Send(w, reconnecting);
    Report(lost);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval);
  }
}

struct StepCoordinator::StepState {
  int64_t step_id = 0;
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<proto::PeerAddress> workers;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  // Notified once the first failure's AbortStep fan-out has been answered everywhere (and the
  // RunGraph calls cancelled): Run returns only after that, so no abort of this step reaches a
  // worker after the step was reported.
  absl::Notification first_abort_done;
};

namespace {

// The error a failed RunGraph call fails its step with.
absl::Status RunGraphError(int64_t step_id, const proto::PeerAddress& w, const grpc::Status& s) {
  // An error of the step itself starts with the worker's "<task> step <id>: " (an Unavailable
  // one too, say a link to a peer broke); any other Unavailable is the call's own connection.
  const bool from_step =
      absl::StartsWith(s.error_message(), absl::StrCat(w.task_prefix(), " step ", step_id, ": "));
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !from_step) {
    // The connection broke: the process is gone (or unreachable).
    return absl::UnavailableError(
        absl::StrCat("step ", step_id, " failed: lost ", PeerName(w), ": ", s.error_message()));
  }
  // gRPC's size check: the feeds (request) or fetches (response) did not fit.
  const char* hint = s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                             absl::StrContains(s.error_message(), "larger than max")
                         ? " (a step's feeds and fetches of a worker travel whole in its "
                           "RunGraph call; see that worker's --max_message_bytes)"
                         : "";
  absl::Status err = FromGrpc(s);
  return absl::Status(err.code(), absl::StrCat("step ", step_id, " failed on ", PeerName(w), ": ",
                                               err.message(), hint));
}

}  // namespace

void StepCoordinator::FailStep(const std::shared_ptr<StepState>& step, const absl::Status& status,
                               const std::string& lost_task) {
  bool first;
  std::string reason;
  {
    absl::MutexLock lock(&step->mu);
    first = step->status.ok();
    if (first) step->status = status;
    reason = std::string(step->status.message());
  }
  // A step that failed already (say, a Send's deadline) still tells the workers about a task
  // found lost since: sends blocked on that task end only when the workers drop it.
  if (!first && lost_task.empty()) return;
  // Abort the step on every worker at once (pending receives fail, tensors are freed); when all
  // have answered (each within a second), cancel the outstanding RunGraph calls, so a worker
  // sees the abort's reason before the cancellation. Nothing here blocks: FailStep runs on
  // gRPC's callback threads and the heartbeat thread.
  struct Fanout {
    struct Call {
      std::shared_ptr<proto::Control::Stub> stub;
      grpc::ClientContext ctx;
      proto::AbortStepRequest req;
      proto::AbortStepResponse resp;
    };
    std::shared_ptr<StepState> step;
    bool cancel_calls = false;
    std::vector<std::unique_ptr<Call>> calls;
    std::atomic<int> left{0};
  };
  auto fanout = std::make_shared<Fanout>();
  fanout->step = step;
  fanout->cancel_calls = first;
  for (const proto::PeerAddress& w : step->workers) {
    std::shared_ptr<proto::Control::Stub> stub = monitor_->stub(w.task_prefix());
    if (stub == nullptr) continue;
    auto call = std::make_unique<Fanout::Call>();
    call->stub = stub;
    call->req.set_protocol_version(kProtocolVersion);
    call->req.set_step_id(step->step_id);
    call->req.set_reason(reason);
    call->req.set_lost_task(lost_task);
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    fanout->calls.push_back(std::move(call));
  }
  auto finish = [](const std::shared_ptr<Fanout>& f) {
    if (!f->cancel_calls) return;
    for (auto& ctx : f->step->contexts) ctx->TryCancel();
    f->step->first_abort_done.Notify();
  };
  if (fanout->calls.empty()) {
    finish(fanout);
    return;
  }
  fanout->left = static_cast<int>(fanout->calls.size());
  for (const auto& call : fanout->calls) {
    call->stub->async()->AbortStep(&call->ctx, &call->req, &call->resp,
                                   [fanout, finish](grpc::Status) {
                                     if (fanout->left.fetch_sub(1) == 1) finish(fanout);
                                   });
  }
}

void StepCoordinator::Abort(int64_t step_id, const absl::Status& reason) {
  std::shared_ptr<StepState> step;
  {
    absl::MutexLock lock(&mu_);
    auto it = steps_.find(step_id);
    if (it == steps_.end()) return;
    step = it->second;
  }
  FailStep(step, reason);
}

absl::StatusOr<std::vector<proto::RunGraphResponse>> StepCoordinator::Run(
    int64_t step_id, std::vector<Partition> partitions, const StepRunOptions& options) {
  auto step = std::make_shared<StepState>();
  step->step_id = step_id;
  for (const Partition& p : partitions) {
    SLUICE_RETURN_IF_ERROR(monitor_->health(p.worker.task_prefix()));
    step->workers.push_back(p.worker);
    step->contexts.push_back(std::make_unique<grpc::ClientContext>());
  }
  {
    absl::MutexLock lock(&mu_);
    steps_[step_id] = step;
  }
  const int64_t listener =
      monitor_->AddListener([this, step](const proto::PeerAddress& lost, const absl::Status& why) {
        for (const proto::PeerAddress& w : step->workers) {
          if (w.task_prefix() != lost.task_prefix()) continue;
          FailStep(step,
                   absl::UnavailableError(absl::StrCat("step ", step->step_id, " failed: lost ",
                                                       PeerName(lost), ": ", why.message())),
                   lost.task_prefix());
          return;
        }
      });
  std::vector<proto::RunGraphResponse> responses(partitions.size());
  const absl::Time start = absl::Now();
  std::vector<std::shared_ptr<proto::Control::Stub>> stubs;  // Held until every call ended.
  if (options.call_times != nullptr) options.call_times->assign(partitions.size(), {0, 0});
  // Every partition's RunGraph at once, completed on a queue this thread polls itself: an
  // answer wakes this thread straight from the socket, where gRPC's callback API would hand it
  // to a callback thread that then wakes this one (a wake is ~25 us here; docs/benchmarks.md).
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<proto::RunGraphResponse>>> calls;
  std::vector<grpc::Status> statuses(partitions.size());
  for (size_t i = 0; i < partitions.size(); ++i) {
    stubs.push_back(monitor_->stub(partitions[i].worker.task_prefix()));
    partitions[i].request.set_step_id(step_id);
    partitions[i].request.set_protocol_version(kProtocolVersion);
    if (options.deadline != absl::InfiniteFuture()) {
      step->contexts[i]->set_deadline(absl::ToChronoTime(options.deadline));
    }
    if (options.call_times != nullptr) (*options.call_times)[i].first = absl::GetCurrentTimeNanos();
    calls.push_back(
        stubs.back()->AsyncRunGraph(step->contexts[i].get(), partitions[i].request, &cq));
    calls.back()->Finish(&responses[i], &statuses[i], reinterpret_cast<void*>(i));
  }
  std::vector<bool> running(partitions.size(), true);  // For the deadline's error.
  size_t num_running = partitions.size();
  bool cancelled = false;
  while (num_running > 0) {
    void* tag = nullptr;
    bool ok = false;
    const grpc::CompletionQueue::NextStatus next =
        cq.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)));
    if (next == grpc::CompletionQueue::TIMEOUT) {
      if (!cancelled && options.abandoned && options.abandoned()) {
        cancelled = true;
        FailStep(step, absl::CancelledError(
                           absl::StrCat("step ", step_id, " was cancelled: its client went away")));
      }
      continue;
    }
    const size_t i = reinterpret_cast<size_t>(tag);
    if (options.call_times != nullptr) {
      (*options.call_times)[i].second = absl::GetCurrentTimeNanos();
    }
    const grpc::Status& s = statuses[i];
    absl::Status error;
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::vector<std::string> unfinished;
      for (size_t j = 0; j < running.size(); ++j) {
        if (running[j]) unfinished.push_back(PeerName(partitions[j].worker));
      }
      error = absl::DeadlineExceededError(absl::StrCat(
          "step ", step_id, " did not finish within its deadline (",
          absl::FormatDuration(absl::Ceil(options.deadline - start, absl::Milliseconds(1))),
          "); still running on ", absl::StrJoin(unfinished, ", ")));
    } else if (!s.ok()) {
      error = RunGraphError(step_id, partitions[i].worker, s);
    }
    if (!error.ok()) FailStep(step, error);
    running[i] = false;
    --num_running;
  }
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  bool failed;
  {
    absl::MutexLock lock(&step->mu);
    failed = !step->status.ok();
  }
  if (failed) step->first_abort_done.WaitForNotification();
  monitor_->RemoveListener(listener);
  {
    absl::MutexLock lock(&mu_);
    steps_.erase(step_id);
  }
  absl::MutexLock lock(&step->mu);
  if (!step->status.ok()) return step->status;
  return responses;
}

}  // namespace sluice
