#include "distributed/step_watchdog.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "distributed/grpc_util.h"
#include "distributed/protocol.h"
#include "runtime/kernel/rendezvous.h"

namespace sluice {
namespace {

// "/job:worker/task:0" of a device name.
std::string TaskOf(const std::string& device) {
  const size_t at = device.find("/device:");
  return at == std::string::npos ? device : device.substr(0, at);
}

}  // namespace

StepWatchdog::StepWatchdog(absl::Duration after, HeartbeatMonitor* monitor)
    : after_(after), monitor_(monitor) {
  if (after_ != absl::InfiniteDuration()) thread_ = std::thread([this] { Loop(); });
}

StepWatchdog::~StepWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StepWatchdog::Begin(int64_t step_id, std::vector<std::string> tasks) {
  if (after_ == absl::InfiniteDuration()) return;
  absl::MutexLock lock(&mu_);
  steps_[step_id] = Watched{absl::Now(), std::move(tasks), false};
}

void StepWatchdog::End(int64_t step_id) {
  absl::MutexLock lock(&mu_);
  steps_.erase(step_id);
}

void StepWatchdog::Loop() {
  // Checked four times per threshold (at most every second): a report comes at most that late.
  const absl::Duration period =
      std::clamp(after_ / 4, absl::Milliseconds(10), absl::Duration(absl::Seconds(1)));
  while (true) {
    std::vector<std::pair<int64_t, Watched>> due;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto& [id, w] : steps_) {
        if (!w.reported && now - w.started >= after_) {
          w.reported = true;
          due.emplace_back(id, w);
        }
      }
    }
    for (const auto& [id, w] : due) {
      const std::string report = Report(id, w.tasks, absl::Now() - w.started);
      std::fprintf(stderr, "%s", report.c_str());
      std::fflush(stderr);
    }
  }
}

std::string StepWatchdog::Report(int64_t step_id, const std::vector<std::string>& tasks,
                                 absl::Duration running) const {
  std::string out = absl::StrCat("sluice master: step ", step_id, " has run for ",
                                 absl::FormatDuration(absl::Trunc(running, absl::Milliseconds(1))),
                                 "; what its tasks say:\n");
  for (const std::string& task : tasks) {
    std::shared_ptr<proto::Control::Stub> stub = monitor_->stub(task);
    proto::InspectRequest req;
    req.set_protocol_version(kProtocolVersion);
    proto::InspectResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    const grpc::Status s = stub == nullptr
                               ? grpc::Status(grpc::StatusCode::NOT_FOUND, "not watched")
                               : stub->Inspect(&ctx, req, &resp);
    if (!s.ok()) {
      absl::StrAppend(&out, "  ", task, ": no answer (", FromGrpc(s).ToString(), ")\n");
      continue;
    }
    const proto::InspectedStep* step = nullptr;
    for (const proto::InspectedStep& st : resp.steps()) {
      if (st.step_id() == step_id) step = &st;
    }
    if (step == nullptr || !step->running()) {
      absl::StrAppend(&out, "  ", task,
                      ": does not run the step (finished here, or not started)\n");
    } else {
      std::vector<std::string> waits;
      for (const std::string& key : step->waiting_keys()) {
        absl::StatusOr<Rendezvous::ParsedKey> k = Rendezvous::ParseKey(key);
        waits.push_back(k.ok() ? absl::StrCat("'", k->edge, "' from ", TaskOf(k->src_device))
                               : key);
      }
      absl::StrAppend(&out, "  ", task, ": runs it; ", waits.size(), " receive(s) waiting",
                      waits.empty() ? "" : ": ", absl::StrJoin(waits, ", "), "; ",
                      step->buffered_keys_size(), " tensor(s) buffered\n");
    }
    for (const proto::InspectedEdge& e : resp.edges()) {
      auto it = e.step_in_flight().find(step_id);
      const int64_t mine = it == e.step_in_flight().end() ? 0 : it->second;
      if (mine == 0 && e.waiting_senders() == 0 && e.broken().empty()) continue;
      absl::StrAppend(&out, "    edge ", e.edge(), ": ", mine, " of the step's tensors in flight",
                      " (window ", e.window(), "), ", e.waiting_senders(),
                      " send(s) waiting for a credit",
                      e.broken().empty() ? "" : absl::StrCat("; broken: ", e.broken()), "\n");
    }
  }
  return out;
}

}  // namespace sluice
