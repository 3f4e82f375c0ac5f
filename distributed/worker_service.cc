#include "distributed/worker_service.h"

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "distributed/auth.h"
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

grpc::Status WorkerService::RegisterGraph(grpc::ServerContext* ctx,
                                          const proto::RegisterGraphRequest* req,
                                          proto::RegisterGraphResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return ToGrpc(worker_->RegisterGraph(*req, resp));
}

grpc::Status WorkerService::DeregisterGraph(grpc::ServerContext* ctx,
                                            const proto::DeregisterGraphRequest* req,
                                            proto::DeregisterGraphResponse*) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return ToGrpc(worker_->DeregisterGraph(*req));
}

grpc::ServerUnaryReactor* WorkerService::RunGraph(grpc::CallbackServerContext* ctx,
                                                  const proto::RunGraphRequest* req,
                                                  proto::RunGraphResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) {
    grpc::ServerUnaryReactor* refuse = ctx->DefaultReactor();
    refuse->Finish(auth);
    return refuse;
  }
  return new RunGraphReactor(worker_, req, resp);
}

grpc::Status WorkerService::AbortStep(grpc::ServerContext* ctx, const proto::AbortStepRequest* req,
                                      proto::AbortStepResponse*) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return ToGrpc(worker_->AbortStep(*req));
}

grpc::Status WorkerService::Inspect(grpc::ServerContext* ctx, const proto::InspectRequest* req,
                                    proto::InspectResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return ToGrpc(worker_->Inspect(*req, resp));
}

grpc::Status WorkerService::AnswerHeartbeat(const proto::HeartbeatRequest& req,
                                            proto::HeartbeatResponse* resp) {
  return ToGrpc(worker_->Heartbeat(req, resp));
}

grpc::Status WorkerService::EdgeControl(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>* stream) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
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
