#include "distributed/tensor_mailbox.h"

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace sluice {

absl::Status TensorMailbox::Put(int64_t step_id, const std::string& key, Tensor tensor) {
  std::vector<RecvCallback> waiters;
  {
    absl::MutexLock lock(&mu_);
    Step& step = steps_[step_id];
    if (!step.aborted.ok()) return step.aborted;
    Slot& slot = step.slots[key];
    if (slot.has_tensor) {
      return absl::AlreadyExistsError(
          absl::StrCat("tensor '", key, "' of step ", step_id, " was already delivered"));
    }
    if (slot.waiters.empty()) {
      slot.has_tensor = true;
      slot.tensor = std::move(tensor);
      return absl::OkStatus();
    }
    waiters.swap(slot.waiters);
    step.slots.erase(key);
  }
  // A key has one consumer; extra waiters (a protocol error) see the same tensor.
  for (auto& w : waiters) w(tensor);
  NotifyConsumed(key);
  return absl::OkStatus();
}

void TensorMailbox::RecvAsync(int64_t step_id, const std::string& key, RecvCallback done) {
  Tensor found;
  absl::Status aborted;
  {
    absl::MutexLock lock(&mu_);
    Step& step = steps_[step_id];
    aborted = step.aborted;
  }
  if (!aborted.ok()) {
    done(aborted);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Step& step = steps_[step_id];
    if (!step.aborted.ok()) {
      aborted = step.aborted;
    } else {
      Slot& slot = step.slots[key];
      if (!slot.has_tensor) {
        slot.waiters.push_back(std::move(done));
        return;
      }
      found = std::move(slot.tensor);
      step.slots.erase(key);
    }
  }
  if (!aborted.ok()) {
    done(aborted);
    return;
  }
  done(std::move(found));
  NotifyConsumed(key);
}

absl::StatusOr<Tensor> TensorMailbox::Recv(int64_t step_id, const std::string& key,
                                           absl::Duration timeout) {
  struct State {
    absl::Notification done;
    absl::StatusOr<Tensor> result;
  };
  auto state = std::make_shared<State>();
  RecvAsync(step_id, key, [state](absl::StatusOr<Tensor> t) {
    state->result = std::move(t);
    state->done.Notify();
  });
  if (!state->done.WaitForNotificationWithTimeout(timeout)) {
    // Abort only this wait: the step may still be in use by others, so fail the key's waiters.
    AbortStep(step_id, absl::DeadlineExceededError(
                           absl::StrCat("timed out after ", absl::FormatDuration(timeout),
                                        " waiting for tensor '", key, "' of step ", step_id)));
    state->done.WaitForNotification();
  }
  return state->result;
}

void TensorMailbox::AbortStep(int64_t step_id, const absl::Status& status) {
  std::vector<RecvCallback> waiters;
  {
    absl::MutexLock lock(&mu_);
    Step& step = steps_[step_id];
    if (!step.aborted.ok()) return;
    step.aborted = status;
    for (auto& [key, slot] : step.slots) {
      for (auto& w : slot.waiters) waiters.push_back(std::move(w));
    }
    step.slots.clear();  // Frees the step's buffered tensors.
  }
  for (auto& w : waiters) w(status);
}

void TensorMailbox::CleanupStep(int64_t step_id) {
  absl::MutexLock lock(&mu_);
  steps_.erase(step_id);
}

int64_t TensorMailbox::AddEdgeListener(EdgeListener listener) {
  absl::MutexLock lock(&mu_);
  int64_t id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void TensorMailbox::RemoveEdgeListener(int64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

void TensorMailbox::NotifyConsumed(const std::string& key) {
  std::vector<EdgeListener> to_call;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, l] : listeners_) to_call.push_back(l);
  }
  for (auto& l : to_call) l(key);
}

int64_t TensorMailbox::num_pending_receives() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto& [id, step] : steps_) {
    for (auto& [key, slot] : step.slots) n += slot.waiters.size();
  }
  return n;
}

int64_t TensorMailbox::num_buffered_tensors() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto& [id, step] : steps_) {
    for (auto& [key, slot] : step.slots) n += slot.has_tensor;
  }
  return n;
}

int64_t TensorMailbox::buffered_bytes() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto& [id, step] : steps_) {
    for (auto& [key, slot] : step.slots) n += slot.has_tensor ? slot.tensor.TotalBytes() : 0;
  }
  return n;
}

}  // namespace sluice
