#include "distributed/worker_service.h"

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "distributed/grpc_util.h"

namespace sluice {
namespace {

// One RunGraph call: starts the step, finishes the call when the step ends, and cancels the
// step when the caller cancels the call first.
class RunGraphReactor : public grpc::ServerUnaryReactor {
 public:
  RunGraphReactor(Worker* worker, const proto::RunGraphRequest* req, proto::RunGraphResponse* resp)
      : step_id_(req->step_id()), cancellation_(std::make_shared<CancellationManager>()) {
    worker->RunGraphAsync(req, resp, cancellation_, [this](absl::Status s) { Finish(ToGrpc(s)); });
  }

  void OnCancel() override {
    cancellation_->StartCancel(
        absl::CancelledError(absl::StrCat("step ", step_id_, ": the RunGraph call was cancelled")));
  }
  void OnDone() override { delete this; }

 private:
  const int64_t step_id_;
  const std::shared_ptr<CancellationManager> cancellation_;
};

}  // namespace

grpc::Status WorkerService::RegisterGraph(grpc::ServerContext*,
                                          const proto::RegisterGraphRequest* req,
                                          proto::RegisterGraphResponse* resp) {
  return ToGrpc(worker_->RegisterGraph(*req, resp));
}

grpc::Status WorkerService::DeregisterGraph(grpc::ServerContext*,
                                            const proto::DeregisterGraphRequest* req,
                                            proto::DeregisterGraphResponse*) {
  return ToGrpc(worker_->DeregisterGraph(*req));
}

grpc::ServerUnaryReactor* WorkerService::RunGraph(grpc::CallbackServerContext*,
                                                  const proto::RunGraphRequest* req,
                                                  proto::RunGraphResponse* resp) {
  return new RunGraphReactor(worker_, req, resp);
}

grpc::Status WorkerService::AbortStep(grpc::ServerContext*, const proto::AbortStepRequest* req,
                                      proto::AbortStepResponse*) {
  return ToGrpc(worker_->AbortStep(*req));
}

grpc::Status WorkerService::AnswerHeartbeat(const proto::HeartbeatRequest& req,
                                            proto::HeartbeatResponse* resp) {
  return ToGrpc(worker_->Heartbeat(req, resp));
}

grpc::Status WorkerService::EdgeControl(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>* stream) {
  proto::EdgeControlMessage msg;
  if (!stream->Read(&msg)) return grpc::Status::OK;
  // Writes come from the mailbox's threads (new credits) and this one: serialise them, and
  // stop them before the stream goes away.
  struct Writer {
    absl::Mutex mu;
    bool open ABSL_GUARDED_BY(mu) = true;
  };
  auto writer = std::make_shared<Writer>();
  auto write = [stream, writer](const proto::EdgeControlMessage& out) {
    absl::MutexLock lock(&writer->mu);
    if (writer->open) stream->Write(out);
  };
  absl::StatusOr<int64_t> edge = worker_->OpenEdge(msg, write);
  if (!edge.ok()) return ToGrpc(edge.status());
  while (stream->Read(&msg)) worker_->OnEdgeMessage(msg);
  worker_->CloseEdge(*edge);
  absl::MutexLock lock(&writer->mu);
  writer->open = false;
  return grpc::Status::OK;
}

}  // namespace sluice
