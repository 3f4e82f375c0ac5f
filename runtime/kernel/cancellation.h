// CancellationManager: lets a step be cancelled from another thread. Blocking kernels register a
// callback that unblocks them; StartCancel runs every registered callback once.
// Thread-safe.
//
//   CancellationManager cm;
//   auto token = cm.RegisterCallback([&] { waiter.Abort(); });
//   if (!token) { /* already cancelled */ }
//   ...
//   cm.DeregisterCallback(*token);
#ifndef SLUICE_RUNTIME_KERNEL_CANCELLATION_H_
#define SLUICE_RUNTIME_KERNEL_CANCELLATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

class CancellationManager {
 public:
  using Token = int64_t;

  // Cancels: runs every registered callback (outside the lock) and refuses new ones.
  void StartCancel(absl::Status reason = absl::CancelledError("step was cancelled"));
  bool IsCancelled() const { return cancelled_.load(std::memory_order_acquire); }
  absl::Status reason() const;

  // Registers `callback`; nullopt when already cancelled (the caller should stop at once).
  std::optional<Token> RegisterCallback(std::function<void()> callback);
  // Removes a callback. If cancellation is running it on another thread, waits until it has
  // returned (so the callback's captures may be destroyed after this returns).
  void DeregisterCallback(Token token);

 private:
  std::atomic<bool> cancelled_{false};
  mutable absl::Mutex mu_;
  absl::Status reason_ ABSL_GUARDED_BY(mu_);
  bool callbacks_done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id cancelling_thread_ ABSL_GUARDED_BY(mu_);
  Token next_token_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<Token, std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_KERNEL_CANCELLATION_H_
