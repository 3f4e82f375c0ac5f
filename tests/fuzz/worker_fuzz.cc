// Fuzzes a worker's request handling (distributed/worker.h) in process, without gRPC: what the
// master, peers and anyone who reaches a worker's control port can send it. Each input gets a
// fresh Worker and TensorMailbox and drives them with a sequence of requests.
//
// Input: records [u8 tag][u16 LE length][length bytes] (tests/fuzz/fuzz_input.h). The tag's low
// three bits choose the request, and its bytes are that request's serialised proto:
//   0 RegisterGraphRequest   1 RunGraphRequest   2 AbortStepRequest   3 HeartbeatRequest
//   4 EdgeControlMessage to OnEdgeMessage        5 DeregisterGraphRequest
//   6 EdgeControlMessage to OpenEdge (closed at the end of the input)
//   7 one data-plane chunk message: a completed tensor is put in the mailbox, as
//     DataPlaneService::Push does, so a partition's _Recv can get its tensor.
// Tag bit 0x40: a RunGraph does not wait for its step to end before the next request (so
// aborts, edge messages and other steps race with it). Tag bit 0x80: the request's
// protocol_version is kept as given; otherwise it is set to the current one, so mutations
// reach past the version check.
//
// To keep each run short and off the network: a registered partition's peer addresses are
// dropped (a _Send to another task then fails at once, "no address registered"); a RunGraph's
// timeout_ms is clamped to (0, 250]; an empty graph_handle in RunGraph or DeregisterGraph means
// the last graph this input registered.
//
// With SLUICE_FUZZ_VERBOSE set, each request's status is printed (for writing seeds).
//
// Checked beyond "no crash": every step ends. A step still running 100 ms after its deadline
// is cancelled, as the gRPC transport does at the call's deadline; one still running 20 s
// after that aborts the fuzzer, naming it.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "distributed/chunk_codec.h"
#include "distributed/protocol.h"
#include "distributed/protocol.pb.h"
#include "distributed/tensor_mailbox.h"
#include "distributed/worker.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "runtime/kernel/cancellation.h"
#include "tests/fuzz/fuzz_input.h"

namespace sluice {
namespace {

constexpr int64_t kMaxStepTimeoutMs = 250;

enum Kind {
  kRegisterGraph = 0,
  kRunGraph = 1,
  kAbortStep = 2,
  kHeartbeat = 3,
  kEdgeMessage = 4,
  kDeregisterGraph = 5,
  kOpenEdge = 6,
  kPushChunk = 7,
};
constexpr uint8_t kNoWait = 0x40;
constexpr uint8_t kKeepVersion = 0x80;

void Report(const char* what, const absl::Status& status) {
  static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "worker_fuzz: %s: %s\n", what, status.ToString().c_str());
}

// One RunGraph call; the worker holds `req` and `resp` until `done`.
struct PendingStep {
  proto::RunGraphRequest req;
  proto::RunGraphResponse resp;
  std::shared_ptr<CancellationManager> cancellation = std::make_shared<CancellationManager>();
  absl::Time start;
  absl::Notification done;
};

class Driver {
 public:
  Driver() : worker_(Options(), &mailbox_) {}

  ~Driver() {
    for (auto& step : steps_) Await(*step);
    for (int64_t id : edges_) worker_.CloseEdge(id);
  }

  void Handle(uint8_t tag, absl::string_view bytes) {
    const bool keep_version = (tag & kKeepVersion) != 0;
    auto version = [&](auto* msg) {
      if (!keep_version) msg->set_protocol_version(kProtocolVersion);
    };
    switch (tag & 7) {
      case kRegisterGraph: {
        proto::RegisterGraphRequest req;
        if (!Parse(bytes, &req)) return;
        version(&req);
        req.clear_peers();
        proto::RegisterGraphResponse resp;
        const absl::Status s = worker_.RegisterGraph(req, &resp);
        Report("RegisterGraph", s);
        if (s.ok()) handles_.push_back(resp.graph_handle());
        return;
      }
      case kRunGraph: {
        auto step = std::make_unique<PendingStep>();
        if (!Parse(bytes, &step->req)) return;
        version(&step->req);
        if (step->req.graph_handle().empty() && !handles_.empty()) {
          step->req.set_graph_handle(handles_.back());
        }
        if (step->req.timeout_ms() <= 0 || step->req.timeout_ms() > kMaxStepTimeoutMs) {
          step->req.set_timeout_ms(kMaxStepTimeoutMs);
        }
        step->start = absl::Now();
        PendingStep* s = step.get();
        steps_.push_back(std::move(step));
        worker_.RunGraphAsync(&s->req, &s->resp, s->cancellation, [s](absl::Status status) {
          Report("RunGraph", status);
          s->done.Notify();
        });
        if ((tag & kNoWait) == 0) Await(*s);
        return;
      }
      case kAbortStep: {
        proto::AbortStepRequest req;
        if (!Parse(bytes, &req)) return;
        version(&req);
        Report("AbortStep", worker_.AbortStep(req));
        return;
      }
      case kHeartbeat: {
        proto::HeartbeatRequest req;
        if (!Parse(bytes, &req)) return;
        version(&req);
        proto::HeartbeatResponse resp;
        Report("Heartbeat", worker_.Heartbeat(req, &resp));
        return;
      }
      case kEdgeMessage: {
        proto::EdgeControlMessage msg;
        if (!Parse(bytes, &msg)) return;
        worker_.OnEdgeMessage(msg);
        return;
      }
      case kDeregisterGraph: {
        proto::DeregisterGraphRequest req;
        if (!Parse(bytes, &req)) return;
        version(&req);
        if (req.graph_handle().empty() && !handles_.empty()) {
          req.set_graph_handle(handles_.back());
        }
        Report("DeregisterGraph", worker_.DeregisterGraph(req));
        return;
      }
      case kOpenEdge: {
        proto::EdgeControlMessage open;
        if (!Parse(bytes, &open)) return;
        if (!keep_version && open.has_open()) {
          open.mutable_open()->set_protocol_version(kProtocolVersion);
        }
        // Credits are written from any thread, possibly after this input's requests.
        auto written = std::make_shared<std::atomic<int64_t>>(0);
        absl::StatusOr<int64_t> id = worker_.OpenEdge(
            open, [written](const proto::EdgeControlMessage&) { written->fetch_add(1); });
        Report("OpenEdge", id.status());
        if (id.ok()) edges_.push_back(*id);
        return;
      }
      case kPushChunk: {
        grpc::Slice slice(bytes.data(), bytes.size());
        absl::StatusOr<bool> done = assembler_.Add(grpc::ByteBuffer(&slice, 1));
        if (!done.ok()) {
          Report("push", done.status());
          assembler_ = ChunkAssembler(Limits());  // Push ends that stream; the next is new.
          abandoned_ = 0;
        } else if (assembler_.abandoned() != abandoned_) {
          abandoned_ = assembler_.abandoned();
          mailbox_.NotifyAbandoned(assembler_.last_abandoned_key());
        } else if (*done) {
          ChunkAssembler::Received r = assembler_.Take();
          Report("Put", mailbox_.Put(r.step_id, r.key, std::move(r.tensor)));
        }
        return;
      }
    }
  }

 private:
  static WorkerOptions Options() {
    WorkerOptions options;
    options.job = "worker";
    options.task = 0;
    return options;
  }
  static AssemblerLimits Limits() {
    AssemblerLimits limits;
    limits.max_tensor_bytes = 16 << 20;  // As in chunk_codec_fuzz.cc.
    return limits;
  }
  template <typename Proto>
  static bool Parse(absl::string_view bytes, Proto* msg) {
    return msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  }

  // In a server the step's RunGraph call carries timeout_ms as its gRPC deadline, and the
  // transport cancels the step when it passes (WorkerService's OnCancel; the worker's own
  // timeout does not end a _Recv whose tensor never comes). So does this, a little after the
  // deadline, and then expects the step to end.
  void Await(PendingStep& step) {
    const absl::Time deadline =
        step.start + absl::Milliseconds(step.req.timeout_ms()) + absl::Milliseconds(100);
    if (step.done.WaitForNotificationWithDeadline(deadline)) return;
    Report("cancelled at its deadline", absl::OkStatus());
    step.cancellation->StartCancel(absl::CancelledError(
        absl::StrCat("step ", step.req.step_id(), ": the RunGraph call was cancelled")));
    if (step.done.WaitForNotificationWithTimeout(absl::Seconds(20))) return;
    std::fprintf(stderr,
                 "worker_fuzz: step %lld of graph '%s' still running 20 s after its RunGraph "
                 "was cancelled (timeout_ms %lld)\n",
                 static_cast<long long>(step.req.step_id()), step.req.graph_handle().c_str(),
                 static_cast<long long>(step.req.timeout_ms()));
    std::abort();
  }

  TensorMailbox mailbox_;
  Worker worker_;
  ChunkAssembler assembler_{Limits()};
  int64_t abandoned_ = 0;
  std::vector<std::string> handles_;
  std::deque<std::unique_ptr<PendingStep>> steps_;
  std::vector<int64_t> edges_;
};

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzz::FuzzInput in(data, size);
  sluice::Driver driver;
  while (!in.empty()) {
    const sluice::fuzz::FuzzInput::Record r = in.NextRecord();
    driver.Handle(r.tag, r.bytes);
  }
  return 0;
}
