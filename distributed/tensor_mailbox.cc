#include "distributed/tensor_mailbox.h"

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace sluice {

TensorMailbox::TensorMailbox(TensorMailboxOptions options)
    : options_(std::move(options)),
      reclaim_period_(std::min(options_.ended_step_ttl, options_.orphan_ttl) / 4) {}

TensorMailbox::Step* TensorMailbox::FindOrCreateLocked(int64_t step_id, absl::Time now) {
  if (ended_.contains(step_id)) {
    ++dropped_;
    return nullptr;
  }
  Step& step = steps_[step_id];
  step.touched = now;
  return &step;
}

void TensorMailbox::ReleaseBytesLocked(Step& step, int64_t bytes) {
  step.bytes -= bytes;
  if (step.running == 0) early_bytes_ -= bytes;
}

void TensorMailbox::ReclaimLocked(absl::Time now, std::vector<std::string>* freed) {
  // A full sweep, so run it only now and then: expiry may come up to a period late.
  if (now < next_reclaim_) return;
  next_reclaim_ = now + reclaim_period_;
  for (auto it = ended_.begin(); it != ended_.end();) {
    if (it->second <= now) {
      ended_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto it = steps_.begin(); it != steps_.end();) {
    const Step& step = it->second;
    bool keep = step.running > 0 || now - step.touched < options_.orphan_ttl;
    for (const auto& [key, slot] : step.slots) keep = keep || !slot.waiters.empty();
    if (keep) {
      ++it;
      continue;
    }
    for (const auto& [key, slot] : step.slots) {
      if (slot.has_tensor) freed->push_back(key);
    }
    ReleaseBytesLocked(it->second, it->second.bytes);
    ++reclaimed_;
    it = steps_.erase(it);
  }
}

absl::Status TensorMailbox::EndedError(int64_t step_id, const std::string& key) const {
  return absl::FailedPreconditionError(
      absl::StrCat("step ", step_id, " has ended here: tensor '", key, "' came too late"));
}

absl::Status TensorMailbox::Put(int64_t step_id, const std::string& key, Tensor tensor,
                                bool resent) {
  const absl::Time now = options_.now();
  std::vector<RecvCallback> waiters;
  std::vector<std::string> freed;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    ReclaimLocked(now, &freed);
    Step* step = FindOrCreateLocked(step_id, now);
    if (step == nullptr) {
      status = EndedError(step_id, key);
    } else if (!step->aborted.ok()) {
      status = step->aborted;
    } else if (resent ? step->taken.contains(key) : step->delivered_by_copy.contains(key)) {
      ++duplicates_;  // The tensor reached its receive already: nothing to do, no credit.
    } else if (Slot& slot = step->slots[key]; slot.has_tensor) {
      if (resent) {
        ++duplicates_;  // Buffered already; its credit comes when it is taken.
      } else {
        status = absl::AlreadyExistsError(
            absl::StrCat("tensor '", key, "' of step ", step_id, " was already delivered"));
      }
    } else if (const int64_t bytes = tensor.TotalBytes();
               slot.waiters.empty() && step->running == 0 &&
               early_bytes_ + bytes > options_.max_early_bytes) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("this worker holds ", early_bytes_,
                       " bytes of tensors for steps not running here; "
                       "tensor '",
                       key, "' of step ", step_id, " (", bytes, " bytes) would pass the limit of ",
                       options_.max_early_bytes, " (--max_early_bytes)"));
      // The step fails here when it starts, with this error; what it held is freed.
      step->aborted = status;
      for (auto& [k, s] : step->slots) {
        if (s.has_tensor) freed.push_back(k);
      }
      step->slots.clear();
      ReleaseBytesLocked(*step, step->bytes);
    } else if (slot.waiters.empty()) {
      slot.has_tensor = true;
      slot.tensor = std::move(tensor);
      step->bytes += bytes;
      if (step->running == 0) early_bytes_ += bytes;
      if (resent) step->delivered_by_copy.insert(key);
    } else {
      waiters.swap(slot.waiters);
      step->slots.erase(key);
      step->taken.insert(key);
      if (resent) step->delivered_by_copy.insert(key);
    }
    // A refused tensor frees its receive buffer at once: the sender gets its credit back.
    if (!status.ok() && !absl::IsAlreadyExists(status)) freed.push_back(key);
  }
  // A key has one consumer; extra waiters (a protocol error) see the same tensor.
  for (auto& w : waiters) w(tensor);
  if (!waiters.empty()) freed.push_back(key);
  NotifyConsumed(freed);
  return status;
}

void TensorMailbox::RecvAsync(int64_t step_id, const std::string& key, RecvCallback done) {
  const absl::Time now = options_.now();
  std::vector<std::string> freed;
  absl::StatusOr<Tensor> result;
  {
    absl::MutexLock lock(&mu_);
    ReclaimLocked(now, &freed);
    Step* step = FindOrCreateLocked(step_id, now);
    if (step == nullptr) {
      result = EndedError(step_id, key);
    } else if (!step->aborted.ok()) {
      result = step->aborted;
    } else if (Slot& slot = step->slots[key]; !slot.has_tensor) {
      slot.waiters.push_back(std::move(done));
      done = nullptr;
    } else {
      result = std::move(slot.tensor);
      ReleaseBytesLocked(*step, result->TotalBytes());
      step->slots.erase(key);
      step->taken.insert(key);
    }
  }
  if (done) {
    const bool consumed = result.ok();
    done(std::move(result));
    if (consumed) freed.push_back(key);
  }
  NotifyConsumed(freed);
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
  const absl::Time now = options_.now();
  std::vector<RecvCallback> waiters;
  std::vector<std::string> freed;
  {
    absl::MutexLock lock(&mu_);
    ReclaimLocked(now, &freed);
    // An abort for a step not seen yet is kept: it fails the step when it starts here.
    Step* step = FindOrCreateLocked(step_id, now);
    if (step != nullptr && step->aborted.ok()) {
      step->aborted = status;
      for (auto& [key, slot] : step->slots) {
        for (auto& w : slot.waiters) waiters.push_back(std::move(w));
        if (slot.has_tensor) freed.push_back(key);
      }
      step->slots.clear();  // Frees the step's buffered tensors.
      ReleaseBytesLocked(*step, step->bytes);
    }
  }
  for (auto& w : waiters) w(status);
  NotifyConsumed(freed);
}

void TensorMailbox::StartStep(int64_t step_id) {
  const absl::Time now = options_.now();
  std::vector<std::string> freed;
  {
    absl::MutexLock lock(&mu_);
    ReclaimLocked(now, &freed);
    ended_.erase(step_id);
    Step& step = steps_[step_id];
    step.touched = now;
    if (step.running == 0) early_bytes_ -= step.bytes;  // No longer early.
    ++step.running;
  }
  NotifyConsumed(freed);
}

void TensorMailbox::CleanupStep(int64_t step_id) {
  const absl::Time now = options_.now();
  std::vector<RecvCallback> waiters;
  std::vector<std::string> freed;
  {
    absl::MutexLock lock(&mu_);
    ReclaimLocked(now, &freed);
    auto it = steps_.find(step_id);
    if (it != steps_.end() && it->second.running > 1) {
      --it->second.running;  // Another partition of the step still runs here.
    } else {
      if (it != steps_.end()) {
        for (auto& [key, slot] : it->second.slots) {
          for (auto& w : slot.waiters) waiters.push_back(std::move(w));
          if (slot.has_tensor) freed.push_back(key);
        }
        ReleaseBytesLocked(it->second, it->second.bytes);
        steps_.erase(it);
      }
      ended_[step_id] = now + options_.ended_step_ttl;
    }
  }
  // E.g. a Pull for a tensor the step never produced: it would otherwise wait forever.
  for (auto& w : waiters) {
    w(absl::FailedPreconditionError(absl::StrCat("step ", step_id, " has ended here")));
  }
  NotifyConsumed(freed);
}

void TensorMailbox::NotifyAbandoned(const std::string& key) { NotifyConsumed({key}); }

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

void TensorMailbox::NotifyConsumed(const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::vector<EdgeListener> to_call;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, l] : listeners_) to_call.push_back(l);
  }
  for (const std::string& key : keys) {
    for (auto& l : to_call) l(key);
  }
}

std::vector<TensorMailbox::StepView> TensorMailbox::Describe() const {
  absl::MutexLock lock(&mu_);
  std::vector<StepView> out;
  for (const auto& [id, step] : steps_) {
    StepView v;
    v.step_id = id;
    v.running = step.running > 0;
    for (const auto& [key, slot] : step.slots) {
      if (slot.has_tensor) v.buffered_keys.push_back(key);
      if (!slot.waiters.empty()) v.waiting_keys.push_back(key);
    }
    std::sort(v.waiting_keys.begin(), v.waiting_keys.end());
    std::sort(v.buffered_keys.begin(), v.buffered_keys.end());
    out.push_back(std::move(v));
  }
  return out;
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

int64_t TensorMailbox::early_bytes() const {
  absl::MutexLock lock(&mu_);
  return early_bytes_;
}

int64_t TensorMailbox::num_steps() const {
  absl::MutexLock lock(&mu_);
  return steps_.size();
}

int64_t TensorMailbox::num_ended_steps() const {
  absl::MutexLock lock(&mu_);
  return ended_.size();
}

int64_t TensorMailbox::num_dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

int64_t TensorMailbox::num_reclaimed() const {
  absl::MutexLock lock(&mu_);
  return reclaimed_;
}

int64_t TensorMailbox::num_duplicates() const {
  absl::MutexLock lock(&mu_);
  return duplicates_;
}

}  // namespace sluice
