#include "runtime/kernel/rendezvous.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"

namespace sluice {

absl::StatusOr<Tensor> Rendezvous::Recv(const std::string& key) {
  absl::Notification done;
  absl::Status status;
  Tensor value;
  RecvAsync(key, [&](absl::Status s, Tensor t) {
    status = std::move(s);
    value = std::move(t);
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) return status;
  return value;
}

std::string Rendezvous::CreateKey(int64_t step_id, absl::string_view src_device,
                                  absl::string_view dst_device, absl::string_view edge,
                                  int micro_batch) {
  return absl::StrCat(step_id, ";", src_device, ";", dst_device, ";", edge, ";", micro_batch);
}

absl::StatusOr<Rendezvous::ParsedKey> Rendezvous::ParseKey(absl::string_view key) {
  std::vector<absl::string_view> parts = absl::StrSplit(key, ';');
  ParsedKey out;
  if (parts.size() != 5 || !absl::SimpleAtoi(parts[0], &out.step_id) ||
      !absl::SimpleAtoi(parts[4], &out.micro_batch) || parts[1].empty() || parts[2].empty() ||
      parts[3].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed rendezvous key '", key,
                     "' (expected step;src_device;dst_device;edge;micro_batch)"));
  }
  out.src_device = std::string(parts[1]);
  out.dst_device = std::string(parts[2]);
  out.edge = std::string(parts[3]);
  return out;
}

LocalRendezvous::~LocalRendezvous() {
  StartAbort(absl::CancelledError("the rendezvous was destroyed"));
}

absl::Status LocalRendezvous::Send(const std::string& key, Tensor value) {
  DoneCallback waiter;
  {
    absl::MutexLock lock(&mu_);
    if (!aborted_.ok()) return aborted_;
    auto it = waiters_.find(key);
    if (it == waiters_.end()) {
      if (!values_.emplace(key, std::move(value)).second) {
        return absl::AlreadyExistsError(absl::StrCat("rendezvous key '", key, "' was sent twice"));
      }
      return absl::OkStatus();
    }
    waiter = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) waiters_.erase(it);
  }
  if (scheduler_) {
    scheduler_(key, [waiter = std::move(waiter), value = std::move(value)]() mutable {
      waiter(absl::OkStatus(), std::move(value));
    });
  } else {
    waiter(absl::OkStatus(), std::move(value));
  }
  return absl::OkStatus();
}

void LocalRendezvous::RecvAsync(const std::string& key, DoneCallback done) {
  Tensor value;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (aborted_.ok()) {
      auto it = values_.find(key);
      if (it == values_.end()) {
        waiters_[key].push_back(std::move(done));
        return;
      }
      value = std::move(it->second);
      values_.erase(it);
    } else {
      status = aborted_;
    }
  }
  done(std::move(status), std::move(value));
}

void LocalRendezvous::StartAbort(const absl::Status& status) {
  absl::Status reason =
      status.ok() ? absl::InternalError("rendezvous aborted with an OK status") : status;
  absl::flat_hash_map<std::string, std::deque<DoneCallback>> waiters;
  {
    absl::MutexLock lock(&mu_);
    if (!aborted_.ok()) return;
    aborted_ = reason;
    waiters.swap(waiters_);
    values_.clear();
  }
  for (auto& [key, queue] : waiters) {
    for (DoneCallback& done : queue) done(reason, Tensor());
  }
}

int LocalRendezvous::num_pending_values() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(values_.size());
}

}  // namespace sluice
