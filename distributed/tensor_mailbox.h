// TensorMailbox: a worker's table of tensors delivered over the data plane, keyed by
// (step id, rendezvous key), and of the receives waiting for them.
//
// Put delivers a tensor (or hands it straight to a waiting receiver); RecvAsync takes it (or
// waits). AbortStep fails every pending and future receive and put of a step with the given
// status and frees the step's tensors (a Recv that times out aborts its step the same way).
// StartStep marks a step as running here; CleanupStep ends it: its entry goes, receives still
// waiting fail, and the step is remembered as ended (a tombstone) for `ended_step_ttl`, so a
// tensor, receive or abort that arrives for it late is refused and counted (num_dropped())
// instead of creating an entry nobody would ever remove. An entry of a step that is not
// running here (tensors that came early for a step that never started, an abort for a step
// that never ran here) and that no receive waits on is reclaimed once untouched for
// `orphan_ttl`. Both expiries are checked lazily by later calls (no thread), with a sweep at
// most every quarter of the shorter TTL: what expired goes at the first call after that.
// Edge listeners are told each time a delivered tensor leaves the mailbox (consumed, freed by
// an abort, cleanup or expiry, or refused on arrival), which is how a receiver grants a new
// credit to the sender: a dropped tensor never costs the edge a credit. A sender whose data
// connection was lost pushes its uncredited tensors again, flagged as copies: a copy of a
// tensor that did arrive (buffered, or taken by its receive) is dropped without a word, and so
// is a first push that arrives after its copy, so every key reaches its receive once.
// Thread-safe.
//
// Invariants: a step is in at most one of `steps_` and `ended_`; a slot holds a tensor or
// waiters, never both; an aborted step has no slots; a step's `bytes` is the sum of its slots'
// tensors, and `early_bytes_` the sum of `bytes` over steps with running == 0.
//
//   mailbox.StartStep(step);
//   mailbox.RecvAsync(step, key, [](absl::StatusOr<Tensor> t) { ... });
//   SLUICE_RETURN_IF_ERROR(mailbox.Put(step, key, tensor));
//   mailbox.AbortStep(step, absl::UnavailableError("lost /job:worker/task:1"));
//   mailbox.CleanupStep(step);
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
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/tensor.h"

namespace sluice {

struct TensorMailboxOptions {
  // How long an ended step is remembered. Late arrivals come at most a step timeout after the
  // step ended here (the sender gives up at its own deadline); later ones make an orphan entry.
  absl::Duration ended_step_ttl = absl::Minutes(2);
  // How long an entry of a step that is not running here may stay untouched. Long enough for
  // tensors that arrive before the step's RunGraph does.
  absl::Duration orphan_ttl = absl::Minutes(5);
  // Bytes of tensors held for steps that are not running here (that came early, or for steps
  // that never run here, e.g. a flood of pushes). A tensor that would pass it aborts its step
  // here with ResourceExhausted (freeing what the step held), which the step reports when it
  // starts: memory stays bounded and the step fails with a named error instead of waiting.
  int64_t max_early_bytes = int64_t{1} << 30;
  // The clock for both expiries (tests inject a fake one).
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

class TensorMailbox {
 public:
  using RecvCallback = std::function<void(absl::StatusOr<Tensor>)>;
  using EdgeListener = std::function<void(const std::string& key)>;

  explicit TensorMailbox(TensorMailboxOptions options = {});
  TensorMailbox(const TensorMailbox&) = delete;
  TensorMailbox& operator=(const TensorMailbox&) = delete;

  // Fails when the step was aborted or has ended (FailedPrecondition; the tensor is dropped),
  // or when the key was already put. `resent`: a copy its sender pushed again after losing the
  // connection the first push went on (dropped, OK, when the first one arrived).
  absl::Status Put(int64_t step_id, const std::string& key, Tensor tensor, bool resent = false);
  // Fails at once when the step was aborted or has ended.
  void RecvAsync(int64_t step_id, const std::string& key, RecvCallback done);
  // Blocking wrapper; DeadlineExceeded after `timeout`.
  absl::StatusOr<Tensor> Recv(int64_t step_id, const std::string& key, absl::Duration timeout);

  // Ignored (and counted as dropped) for a step that has ended.
  void AbortStep(int64_t step_id, const absl::Status& status);
  // The step runs here: its entry is not reclaimed as an orphan until CleanupStep, and a
  // tombstone of it is forgotten. An abort that arrived first still fails the step.
  void StartStep(int64_t step_id);
  // Ends the step once every StartStep of it has its CleanupStep (a step never started ends at
  // once): forgets its tensors, fails its waiting receives (FailedPrecondition) and leaves a
  // tombstone.
  void CleanupStep(int64_t step_id);

  // `listener` is told the key of every tensor consumed (or freed) from now on. Returns an id
  // for RemoveEdgeListener.
  int64_t AddEdgeListener(EdgeListener listener);
  void RemoveEdgeListener(int64_t id);
  // A tensor its sender abandoned midway will never arrive: its edge's listeners are told, as
  // for a tensor freed unread, so the sender gets that credit back.
  void NotifyAbandoned(const std::string& key);

  // Per step known here: whether it runs, the keys of its waiting receives and of its buffered
  // tensors (sorted), for hang reports.
  struct StepView {
    int64_t step_id = 0;
    bool running = false;
    std::vector<std::string> waiting_keys, buffered_keys;
  };
  std::vector<StepView> Describe() const;
  int64_t num_pending_receives() const;
  int64_t num_buffered_tensors() const;
  int64_t buffered_bytes() const;
  int64_t early_bytes() const;      // Of them, held for steps not running here.
  int64_t num_steps() const;        // Entries in the table (running, early, aborted, orphan).
  int64_t num_ended_steps() const;  // Tombstones.
  int64_t num_dropped() const;      // Puts, receives and aborts refused because a step ended.
  int64_t num_reclaimed() const;    // Orphan entries reclaimed after `orphan_ttl`.
  int64_t num_duplicates() const;   // Copies dropped because their tensor had arrived (`resent`).

 private:
  struct Slot {
    bool has_tensor = false;
    Tensor tensor;
    std::vector<RecvCallback> waiters;
  };
  struct Step {
    absl::Status aborted;  // Non-OK once aborted.
    absl::flat_hash_map<std::string, Slot> slots;
    int running = 0;     // StartStep calls without their CleanupStep yet.
    absl::Time touched;  // Last call about the step.
    int64_t bytes = 0;   // Of its buffered tensors.
    // Keys whose tensor went to its receive, and keys a copy delivered: what a late copy, or a
    // late first push, duplicates.
    absl::flat_hash_set<std::string> taken, delivered_by_copy;
  };
  // Accounts for `bytes` of the step's tensors leaving the mailbox.
  void ReleaseBytesLocked(Step& step, int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The step's entry, created if needed; nullptr (counted as dropped) when the step has ended.
  Step* FindOrCreateLocked(int64_t step_id, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets expired tombstones and orphan entries; appends the keys of freed tensors.
  void ReclaimLocked(absl::Time now, std::vector<std::string>* freed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EndedError(int64_t step_id, const std::string& key) const;
  void NotifyConsumed(const std::vector<std::string>& keys);

  const TensorMailboxOptions options_;
  const absl::Duration reclaim_period_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Step> steps_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, absl::Time> ended_ ABSL_GUARDED_BY(mu_);  // Step -> expiry.
  absl::Time next_reclaim_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reclaimed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t early_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // Sum of `bytes` of steps not running.
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, EdgeListener> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_TENSOR_MAILBOX_H_
