// WorkerService: the gRPC transport of a Worker (distributed/worker.h): the Control service of
// one sluice_server task. It only translates calls: protocol messages in and out, absl::Status
// to grpc::Status, and gRPC's events to the worker's (a cancelled RunGraph cancels its step).
//
// Heartbeat and RunGraph are served from one completion queue by the thread that polls it
// (ServeQueue): it reads a Heartbeat and answers it, reads a RunGraph and starts its step, so
// neither waits for a hand-off to another thread. No thread waits while a step runs (the step
// finishes the call), and a caller that gives up (the master cancelled the call) cancels the
// step. The rest is served by gRPC's sync thread pool. The server then has no callback-API
// method: with gRPC's `poll` engine every completion queue registered with a server polls all
// of its connections, so each kind of queue adds threads that wake for every message and hand
// it on (docs/benchmarks.md, "Per-step overhead"). Thread-safe.
//
//   Worker worker(options, &mailbox);
//   WorkerService service(&worker);
//   builder.RegisterService(&service);
//   std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
//   auto server = builder.BuildAndStart();
//   std::thread t([&] { service.ServeQueue(cq.get()); });  // Until cq->Shutdown().
#ifndef SLUICE_DISTRIBUTED_WORKER_SERVICE_H_
#define SLUICE_DISTRIBUTED_WORKER_SERVICE_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "distributed/protocol.grpc.pb.h"
#include "distributed/worker.h"

namespace sluice {

class WorkerService : public proto::Control::WithAsyncMethod_RunGraph<
                          proto::Control::WithAsyncMethod_Heartbeat<proto::Control::Service>> {
 public:
  explicit WorkerService(Worker* worker) : worker_(worker) {}

  grpc::Status RegisterGraph(grpc::ServerContext*, const proto::RegisterGraphRequest*,
                             proto::RegisterGraphResponse*) override;
  grpc::Status DeregisterGraph(grpc::ServerContext*, const proto::DeregisterGraphRequest*,
                               proto::DeregisterGraphResponse*) override;
  grpc::Status AbortStep(grpc::ServerContext*, const proto::AbortStepRequest*,
                         proto::AbortStepResponse*) override;
  grpc::Status Inspect(grpc::ServerContext*, const proto::InspectRequest*,
                       proto::InspectResponse*) override;
  grpc::Status EdgeControl(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>*) override;
  // Serves Heartbeat and RunGraph calls from `cq` (registered with this service's server) on
  // the calling thread; returns once `cq` was shut down and drained.
  void ServeQueue(grpc::ServerCompletionQueue* cq);
  // Shuts `cq` down once nothing can start an operation on it any more: gRPC aborts the
  // process on a call requested or answered on a shut-down queue. New calls are refused (a
  // RunGraph that arrives is answered UNAVAILABLE), every step a RunGraph started is waited
  // for (promptly after Worker::AbortAll) until it has answered its call, then the queue shuts
  // down. Call after the server's Shutdown; ServeQueue then drains and returns.
  void ShutdownQueue(grpc::ServerCompletionQueue* cq);

 private:
  class QueueEvent;  // The calls served from the queue (worker_service.cc).
  class HeartbeatCall;
  class RunGraphCall;
  void StepStarted();
  void StepEnded();

  Worker* worker_;
  absl::Mutex mu_;
  int steps_running_ ABSL_GUARDED_BY(mu_) = 0;
  // Lock order: queue_mu_, then mu_. The queue's thread starts every operation on the queue
  // under queue_mu_ (a step's own answer excepted: ShutdownQueue waits for those), so none
  // can start once the queue is shut down.
  absl::Mutex queue_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  bool draining_ ABSL_GUARDED_BY(queue_mu_) = false;  // No new calls or steps.
  bool queue_shut_ ABSL_GUARDED_BY(queue_mu_) = false;
};

// The Control service of a task that runs no partitions (job "master"): every method on gRPC's
// sync pool, so the thread that reads a connection is the one that serves it (a second kind of
// queue would add threads that read the master's RunStep calls only to hand them on).
// Heartbeat and Inspect answer as a worker's do; RunGraph is refused. Thread-safe.
class MasterControlService : public proto::Control::Service {
 public:
  // `worker_service` serves the other methods; both outlive this.
  MasterControlService(Worker* worker, WorkerService* worker_service)
      : worker_(worker), worker_service_(worker_service) {}

  grpc::Status Heartbeat(grpc::ServerContext*, const proto::HeartbeatRequest*,
                         proto::HeartbeatResponse*) override;
  grpc::Status RunGraph(grpc::ServerContext*, const proto::RunGraphRequest*,
                        proto::RunGraphResponse*) override;
  grpc::Status RegisterGraph(grpc::ServerContext* ctx, const proto::RegisterGraphRequest* req,
                             proto::RegisterGraphResponse* resp) override {
    return worker_service_->RegisterGraph(ctx, req, resp);
  }
  grpc::Status DeregisterGraph(grpc::ServerContext* ctx, const proto::DeregisterGraphRequest* req,
                               proto::DeregisterGraphResponse* resp) override {
    return worker_service_->DeregisterGraph(ctx, req, resp);
  }
  grpc::Status AbortStep(grpc::ServerContext* ctx, const proto::AbortStepRequest* req,
                         proto::AbortStepResponse* resp) override {
    return worker_service_->AbortStep(ctx, req, resp);
  }
  grpc::Status Inspect(grpc::ServerContext* ctx, const proto::InspectRequest* req,
                       proto::InspectResponse* resp) override {
    return worker_service_->Inspect(ctx, req, resp);
  }
  grpc::Status EdgeControl(grpc::ServerContext* ctx,
                           grpc::ServerReaderWriter<proto::EdgeControlMessage,
                                                    proto::EdgeControlMessage>* stream) override {
    return worker_service_->EdgeControl(ctx, stream);
  }

 private:
  Worker* worker_;
  WorkerService* worker_service_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_WORKER_SERVICE_H_
