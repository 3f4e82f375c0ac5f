#include "runtime/kernel/cancellation.h"

#include <thread>
#include <vector>

namespace sluice {

void CancellationManager::StartCancel(absl::Status reason) {
  std::map<Token, std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_.load(std::memory_order_relaxed)) return;
    reason_ = std::move(reason);
    cancelling_thread_ = std::this_thread::get_id();
    cancelled_.store(true, std::memory_order_release);
    callbacks.swap(callbacks_);
  }
  for (auto& [token, cb] : callbacks) cb();
  absl::MutexLock lock(&mu_);
  callbacks_done_ = true;
}

absl::Status CancellationManager::reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

std::optional<CancellationManager::Token> CancellationManager::RegisterCallback(
    std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  if (cancelled_.load(std::memory_order_relaxed)) return std::nullopt;
  Token t = next_token_++;
  callbacks_.emplace(t, std::move(callback));
  return t;
}

void CancellationManager::DeregisterCallback(Token token) {
  absl::MutexLock lock(&mu_);
  if (callbacks_.erase(token) > 0 || !cancelled_.load(std::memory_order_relaxed)) return;
  // Cancellation took the callback and may be running it: wait until all have returned, unless
  // this is a callback deregistering from inside cancellation (waiting would deadlock).
  if (cancelling_thread_ == std::this_thread::get_id()) return;
  mu_.Await(absl::Condition(&callbacks_done_));
}

}  // namespace sluice
