// EdgeSender: the sending end of one data-plane edge under credit-based flow control.
//
// It opens the per-edge control stream on the receiver's control port ("open"), learns the
// receiver's window (tensors each step may have in flight on the edge), and pushes a tensor of a
// step over the data plane only while that step has fewer than the window in flight; the
// receiver credits a step back each time one of its tensors leaves its mailbox. So one step's
// tensors that nobody consumes yet never hold up another step's (windows are per step; a Send
// waits for its own step's credit only), while the receiver's memory per step stays bounded. A
// receiver that is hung but still connected grants nothing, so the wait for a credit also ends
// when the step is cancelled: Send registers a callback on the step's CancellationManager that
// wakes it. Thread-safe; Sends of different steps proceed concurrently (their pushes share the
// DataClient's stream, which serialises them).
//
// A push returns once gRPC took the bytes, so the sender holds each tensor until the receiver
// credits it (credits name the tensor). When the data connection is lost under tensors not yet
// credited (a keepalive that gives up just after a partition healed, a reset), they are pushed
// again on a new connection as copies, which the receiver drops if the first push did arrive
// (TensorMailbox): the step goes on. A copy that cannot be pushed ends its step
// (LostInFlight). A push that fails (rather than returns) fails its Send, as the receiver may
// be hung and a copy would wait for it without bound.
//
//   EdgeSender edge(control_channel, data_client, "/job:worker/task:0->/job:worker/task:1");
//   SLUICE_RETURN_IF_ERROR(edge.Send(step, key, tensor, absl::Now() + absl::Seconds(5), &cm));
#ifndef SLUICE_DISTRIBUTED_EDGE_SENDER_H_
#define SLUICE_DISTRIBUTED_EDGE_SENDER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/data_plane.h"
#include "distributed/metrics.h"
#include "distributed/protocol.grpc.pb.h"
#include "runtime/kernel/cancellation.h"

namespace sluice {

class EdgeSender {
 public:
  // Called (on the control stream's reader thread, or the data client's watcher thread) for
  // each step that had tensors on the edge the receiver had not consumed when the control
  // stream broke (the receiver restarted, or its connection was cut), or whose tensor could
  // not be pushed again after its data connection was lost: it cannot finish.
  using LostInFlight = std::function<void(int64_t step_id, const absl::Status& why)>;

  // `data` carries this edge's tensors and nothing else's (the sender listens to its
  // connection losses); it must outlive the sender.
  // `metrics` (optional, outliving the sender) counts the pushes that had to wait for a
  // credit and the time they waited, and the tensors pushed again, per edge.
  EdgeSender(std::shared_ptr<grpc::Channel> control_channel, DataClient* data, std::string edge,
             LostInFlight on_lost_in_flight = nullptr, Metrics* metrics = nullptr);
  ~EdgeSender();

  // Waits (until `deadline`, or until `cancellation`, if given, is cancelled) for a credit, then
  // pushes (again, as a copy, when the data connection is lost under a push that returned).
  // DeadlineExceeded names the edge when the receiver granted no credit in time; Unavailable
  // when the control stream broke, the push failed or its copy did; a cancelled step fails with the
  // code of the cancellation's reason and a message naming the edge, the step and the reason (at
  // once if it was cancelled before the call).
  absl::Status Send(int64_t step_id, const std::string& key, const Tensor& tensor,
                    absl::Time deadline, CancellationManager* cancellation = nullptr);

  // Breaks the control stream and the data stream to the receiver for good, from any thread:
  // a Send waiting for a credit, opening the edge or blocked in a data write fails, and later
  // Sends fail at once. For a receiver found lost (the worker then makes a new EdgeSender).
  void Cancel();

  // Tensors `step_id` may still push before the receiver credits some back (0 before the
  // receiver's window arrived).
  int64_t credits(int64_t step_id) const;
  int64_t in_flight() const;  // Tensors sent whose consumption the receiver has not credited.
  int64_t resent() const;     // Tensors pushed again after their data connection was lost.
  int64_t waiting() const;    // Sends waiting for a credit now (not those queued behind one).
  int64_t pushing() const;    // Sends writing their tensor to the data plane now.
  // The edge's state for hang reports (the Inspect RPC).
  void Describe(proto::InspectedEdge* out) const;
  const std::string& edge() const { return edge_; }

 private:
  // `cancelled` is the calling Send's cancellation status (guarded by mu_).
  absl::Status EnsureOpen(const absl::Status* cancelled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // A tensor pushed, or being pushed, that the receiver has not credited yet.
  struct Uncredited {
    enum class State { kPushing, kPushed };
    Tensor tensor;  // Held for a push of a copy.
    State state = State::kPushing;
    bool connection_lost = false;  // Lost while kPushing: its pusher pushes a copy.
  };
  using UncreditedMap = std::multimap<std::pair<int64_t, std::string>, Uncredited>;

  // Takes a credit and records the tensor as uncredited (kPushing); `cancelled` is set (under
  // mu_) by the step's cancellation callback.
  absl::Status TakeCredit(int64_t step_id, const std::string& key, const Tensor& tensor,
                          absl::Time deadline, const absl::Status* cancelled)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Pushes an uncredited tensor in kPushing (`copy`: as a copy), and a copy each time the data
  // connection goes under a push that returned, until one is pushed (kPushed) or fails (then
  // the tensor is forgotten). `cancelled`: the step's cancellation status (guarded by mu_).
  absl::Status Deliver(int64_t step_id, const std::string& key, const Tensor& tensor,
                       CancellationManager* cancellation, const absl::Status* cancelled, bool copy)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The entry of (step, key) in `state`, or uncredited_.end().
  UncreditedMap::iterator FindLocked(int64_t step_id, const std::string& key,
                                     Uncredited::State state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Uncredited tensors per step (steps with some).
  std::map<int64_t, int64_t> PerStepLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadLoop();
  void DataConnectionLost() ABSL_LOCKS_EXCLUDED(mu_);
  // Calls on_lost_in_flight_ for each (step, tensors in flight) of `lost`.
  void ReportLost(const std::vector<std::pair<int64_t, int64_t>>& lost, const std::string& what);
  int64_t StepInFlight(int64_t step_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CanSend(int64_t step_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (window_ > 0 && StepInFlight(step_id) < window_) || !broken_.ok();
  }

  std::unique_ptr<proto::Control::Stub> stub_;
  DataClient* data_;
  const std::string edge_;
  Metrics* const metrics_;
  const LostInFlight on_lost_in_flight_;

  // Lock order: send_mu_, then mu_.
  absl::Mutex send_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // Serialises opening the stream.
  mutable absl::Mutex mu_;
  std::unique_ptr<grpc::ClientContext> ctx_ ABSL_GUARDED_BY(mu_);
  // Replaced under send_mu_ (and mu_, for Cancel) only while no reader thread runs; the reader
  // thread reads it between its start and its join, which order those accesses.
  std::unique_ptr<grpc::ClientReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>>
      stream_;
  std::thread reader_ ABSL_GUARDED_BY(send_mu_);
  int64_t window_ ABSL_GUARDED_BY(mu_) = 0;  // Per step; 0 until the receiver sent it.
  // The tensors in flight: a step's count against its window is its number of entries.
  UncreditedMap uncredited_ ABSL_GUARDED_BY(mu_);
  int64_t resent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pushing_ ABSL_GUARDED_BY(mu_) = 0;
  // The `cancelled` of the Send whose EnsureOpen is starting the control stream and writing its
  // open message, if any.
  const absl::Status* opening_for_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;  // Cancel() ran: the edge is dead for good.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  bool opened_ ABSL_GUARDED_BY(send_mu_) = false;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_EDGE_SENDER_H_
