// Rendezvous: where a _Send kernel leaves a tensor and the matching _Recv kernel picks it up.
// Both sides name the transfer by the same key, built from (step id, sending device, receiving
// device, edge name, micro-batch index). Either side may arrive first. StartAbort(status) fails
// every receive that is waiting and every later Send or RecvAsync, so a failing step never
// leaves a receiver hanging.
//
// The interface is deliberately small so that a distributed runtime can implement it over the
// network; LocalRendezvous joins the devices of one process. Thread-safe: every method may be
// called concurrently.
//
//   LocalRendezvous rendezvous;
//   std::string key = Rendezvous::CreateKey(step, "/job:a/task:0/device:cpu:0",
//                                           "/job:a/task:0/device:cpu:1", "x:0");
//   rendezvous.RecvAsync(key, [](absl::Status s, Tensor t) { ... });   // may run later,
//   SLUICE_RETURN_IF_ERROR(rendezvous.Send(key, value));                       // here, on Send
#ifndef SLUICE_RUNTIME_KERNEL_RENDEZVOUS_H_
#define SLUICE_RUNTIME_KERNEL_RENDEZVOUS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/tensor.h"

namespace sluice {

class Rendezvous {
 public:
  // Receives the tensor, or the error that prevented the transfer. Called exactly once, without
  // any rendezvous lock held, on the thread of RecvAsync (value already there), of Send (or
  // wherever the implementation hands it to), or of StartAbort.
  using DoneCallback = std::function<void(absl::Status, Tensor)>;

  virtual ~Rendezvous() = default;

  // Hands `value` to the receiver of `key`. Fails when aborted, or when `key` was sent already
  // and not received yet.
  virtual absl::Status Send(const std::string& key, Tensor value) = 0;
  virtual void RecvAsync(const std::string& key, DoneCallback done) = 0;
  // Fails every pending and future transfer with `status` (which must not be OK). Only the first
  // call counts.
  virtual void StartAbort(const absl::Status& status) = 0;

  // Blocking receive built on RecvAsync.
  absl::StatusOr<Tensor> Recv(const std::string& key);

  // "step;src_device;dst_device;edge;micro_batch". The edge is the sending tensor's name
  // ("node:0") or "^node" for a control transfer.
  static std::string CreateKey(int64_t step_id, absl::string_view src_device,
                               absl::string_view dst_device, absl::string_view edge,
                               int micro_batch = 0);
  struct ParsedKey {
    int64_t step_id = 0;
    std::string src_device;
    std::string dst_device;
    std::string edge;
    int micro_batch = 0;
  };
  // InvalidArgument naming the key when it is not of CreateKey's form.
  static absl::StatusOr<ParsedKey> ParseKey(absl::string_view key);
};

// Rendezvous within one process: a table from keys to a value waiting for its receiver or a
// receiver waiting for its value. By default a Send that finds its receiver waiting runs the
// receiver's callback on the sending thread; with a Scheduler it hands the callback to it instead
// (GraphRunner uses this to continue the receiving partition on its own device's threads, so
// the sender keeps working and a chain of cross-device hops does not nest on one stack).
//
// Invariants: a key is in at most one of `values_` and `waiters_`; after StartAbort both are
// empty and stay empty.
class LocalRendezvous : public Rendezvous {
 public:
  // Runs `callback` for a receiver of `key` (for example on the receiving device's threads).
  using Scheduler = std::function<void(const std::string& key, std::function<void()> callback)>;

  LocalRendezvous() = default;
  explicit LocalRendezvous(Scheduler scheduler) : scheduler_(std::move(scheduler)) {}
  ~LocalRendezvous() override;

  absl::Status Send(const std::string& key, Tensor value) override;
  void RecvAsync(const std::string& key, DoneCallback done) override;
  void StartAbort(const absl::Status& status) override;

  // Transfers sent but not received yet (for tests and leak checks).
  int num_pending_values() const;

 private:
  const Scheduler scheduler_;
  mutable absl::Mutex mu_;
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Tensor> values_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::deque<DoneCallback>> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_KERNEL_RENDEZVOUS_H_
