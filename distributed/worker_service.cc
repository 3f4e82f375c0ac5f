#include "distributed/worker_service.h"

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "distributed/auth.h"
#include "distributed/grpc_util.h"

namespace sluice {

// An event of a call served from the queue: the tag handed to gRPC.
class WorkerService::QueueEvent {
 public:
  virtual ~QueueEvent() = default;
  virtual void Handle(bool ok) = 0;
};

// One Heartbeat call: requested, answered, finished.
class WorkerService::HeartbeatCall : public QueueEvent {
 public:
  HeartbeatCall(WorkerService* service, Worker* worker, grpc::ServerCompletionQueue* cq)
      : service_(service), worker_(worker), cq_(cq), responder_(&ctx_) {
    service->RequestHeartbeat(&ctx_, &request_, &responder_, cq, cq, this);
  }

  void Handle(bool ok) override {
    if (!ok || answered_) {  // Finished, or the server is shutting down.
      delete this;
      return;
    }
    absl::MutexLock lock(&service_->queue_mu_);
    if (service_->queue_shut_) {  // Came in just before: the server's shutdown ends the call.
      delete this;
      return;
    }
    if (!service_->draining_) new HeartbeatCall(service_, worker_, cq_);  // The next one.
    proto::HeartbeatResponse response;
    grpc::Status status = CheckClusterToken(&ctx_);
    if (status.ok()) status = ToGrpc(worker_->Heartbeat(request_, &response));
    answered_ = true;
    responder_.Finish(response, status, this);
  }

 private:
  WorkerService* const service_;
  Worker* const worker_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  proto::HeartbeatRequest request_;
  grpc::ServerAsyncResponseWriter<proto::HeartbeatResponse> responder_;
  bool answered_ = false;
};

// One RunGraph call: requested, its step started, finished when the step ends. Two events
// reach the queue: this call's own (request arrived, then response sent) and `done_`
// (gRPC's end of the call, which says whether the caller cancelled it: the step is then
// cancelled). Deleted after both; the queue's one thread handles both, so no lock.
class WorkerService::RunGraphCall : public QueueEvent {
 public:
  RunGraphCall(WorkerService* service, Worker* worker, grpc::ServerCompletionQueue* cq)
      : service_(service),
        worker_(worker),
        cq_(cq),
        responder_(&ctx_),
        cancellation_(std::make_shared<CancellationManager>()),
        done_(this) {
    ctx_.AsyncNotifyWhenDone(&done_);  // Delivered only if the call starts.
    service->RequestRunGraph(&ctx_, &request_, &responder_, cq, cq, this);
  }

  void Handle(bool ok) override {
    if (started_) {  // The response went out (or the call had ended).
      finished_ = true;
      DeleteIfOver();
      return;
    }
    if (!ok) {  // The server is shutting down: the call never started, `done_` never comes.
      delete this;
      return;
    }
    started_ = true;
    {
      absl::MutexLock lock(&service_->queue_mu_);
      if (service_->queue_shut_) {  // Unanswered: the server's shutdown ends the call.
        finished_ = true;           // `done_` still comes.
        return;
      }
      if (service_->draining_) {
        responder_.FinishWithError(
            grpc::Status(grpc::StatusCode::UNAVAILABLE,
                         absl::StrCat(worker_->task_prefix(), " is shutting down")),
            this);
        return;
      }
      new RunGraphCall(service_, worker_, cq_);  // The next one.
      if (grpc::Status auth = CheckClusterToken(&ctx_); !auth.ok()) {
        responder_.FinishWithError(auth, this);
        return;
      }
      service_->StepStarted();  // Counted before the queue can shut: the step answers on it.
    }
    worker_->RunGraphAsync(&request_, &response_, cancellation_, [this](absl::Status s) {
      WorkerService* service = service_;  // `this` may be gone once Finish is queued.
      responder_.Finish(response_, ToGrpc(s), this);
      service->StepEnded();
    });
  }

 private:
  struct Done : QueueEvent {
    explicit Done(RunGraphCall* call) : call(call) {}
    void Handle(bool) override { call->OnDone(); }
    RunGraphCall* call;
  };

  void OnDone() {
    ended_ = true;
    if (ctx_.IsCancelled()) {
      cancellation_->StartCancel(absl::CancelledError(
          absl::StrCat("step ", request_.step_id(), ": the RunGraph call was cancelled")));
    }
    DeleteIfOver();
  }
  void DeleteIfOver() {
    if (finished_ && ended_) delete this;
  }

  WorkerService* const service_;
  Worker* const worker_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  proto::RunGraphRequest request_;
  proto::RunGraphResponse response_;
  grpc::ServerAsyncResponseWriter<proto::RunGraphResponse> responder_;
  const std::shared_ptr<CancellationManager> cancellation_;
  Done done_;
  bool started_ = false;
  bool finished_ = false;
  bool ended_ = false;
};

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

void WorkerService::StepStarted() {
  absl::MutexLock lock(&mu_);
  ++steps_running_;
}

void WorkerService::StepEnded() {
  absl::MutexLock lock(&mu_);
  --steps_running_;
}

void WorkerService::ShutdownQueue(grpc::ServerCompletionQueue* cq) {
  {
    absl::MutexLock lock(&queue_mu_);
    if (queue_shut_) return;
    draining_ = true;  // From now on no step starts: the running ones are all counted.
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &steps_running_));
  }
  absl::MutexLock lock(&queue_mu_);
  if (queue_shut_) return;  // A concurrent ShutdownQueue got here first.
  queue_shut_ = true;
  cq->Shutdown();
}

void WorkerService::ServeQueue(grpc::ServerCompletionQueue* cq) {
  {
    // A server stopped before this thread got here has shut the queue down already.
    absl::MutexLock lock(&queue_mu_);
    if (!draining_) {
      new HeartbeatCall(this, worker_, cq);
      new RunGraphCall(this, worker_, cq);
    }
  }
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<QueueEvent*>(tag)->Handle(ok);
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

grpc::Status MasterControlService::Heartbeat(grpc::ServerContext* ctx,
                                             const proto::HeartbeatRequest* req,
                                             proto::HeartbeatResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return ToGrpc(worker_->Heartbeat(*req, resp));
}

grpc::Status MasterControlService::RunGraph(grpc::ServerContext* ctx, const proto::RunGraphRequest*,
                                            proto::RunGraphResponse*) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  return grpc::Status(
      grpc::StatusCode::FAILED_PRECONDITION,
      absl::StrCat(worker_->task_prefix(), " is a master-only task: it runs no graph partitions"));
}

}  // namespace sluice
