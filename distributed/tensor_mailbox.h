// TensorMailbox: a worker's table of tensors delivered over the data plane, keyed by
// (step id, rendezvous key), and of the receives waiting for them.
//
// Put delivers a tensor (or hands it straight to a waiting receiver); RecvAsync takes it (or
// waits). AbortStep fails every pending and future receive and put of a step with the given
// status and frees the step's tensors (a Recv that times out aborts its step the same way);
// CleanupStep forgets a finished step. Edge listeners are
// told each time a tensor is consumed, which is how a
// receiver grants a new credit to the sender. Thread-safe.
//
//   mailbox.RecvAsync(step, key, [](absl::StatusOr<Tensor> t) { ... });
//   RETURN_IF_ERROR(mailbox.Put(step, key, tensor));
//   mailbox.AbortStep(step, absl::UnavailableError("lost /job:worker/task:1"));
#ifndef SLUICE_DISTRIBUTED_TENSOR_MAILBOX_H_
#define SLUICE_DISTRIBUTED_TENSOR_MAILBOX_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/tensor.h"

namespace sluice {

class TensorMailbox {
 public:
  using RecvCallback = std::function<void(absl::StatusOr<Tensor>)>;
  using EdgeListener = std::function<void(const std::string& key)>;

  TensorMailbox() = default;
  TensorMailbox(const TensorMailbox&) = delete;
  TensorMailbox& operator=(const TensorMailbox&) = delete;

  // Fails when the step was aborted or the key was already put.
  absl::Status Put(int64_t step_id, const std::string& key, Tensor tensor);
  void RecvAsync(int64_t step_id, const std::string& key, RecvCallback done);
  // Blocking wrapper; DeadlineExceeded after `timeout`.
  absl::StatusOr<Tensor> Recv(int64_t step_id, const std::string& key, absl::Duration timeout);

  void AbortStep(int64_t step_id, const absl::Status& status);
  void CleanupStep(int64_t step_id);

  // `listener` is told the key of every tensor consumed from now on. Returns an id for
  // RemoveEdgeListener.
  int64_t AddEdgeListener(EdgeListener listener);
  void RemoveEdgeListener(int64_t id);

  int64_t num_pending_receives() const;
  int64_t num_buffered_tensors() const;
  int64_t buffered_bytes() const;

 private:
  struct Slot {
    bool has_tensor = false;
    Tensor tensor;
    std::vector<RecvCallback> waiters;
  };
  struct Step {
    absl::Status aborted;  // Non-OK once aborted.
    absl::flat_hash_map<std::string, Slot> slots;
  };
  void NotifyConsumed(const std::string& key);

  mutable absl::Mutex mu_;
  std::map<int64_t, Step> steps_ ABSL_GUARDED_BY(mu_);
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, EdgeListener> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_TENSOR_MAILBOX_H_
