// WorkerService: the gRPC transport of a Worker (distributed/worker.h): the Control service of
// one sluice_server task. It only translates calls: protocol messages in and out, absl::Status
// to grpc::Status, and gRPC's events to the worker's (a cancelled RunGraph cancels its step).
//
// RunGraph uses gRPC's callback API: no thread waits while a step runs, and a caller that gives
// up (the master cancelled the call) cancels the step at once through OnCancel. Heartbeat is
// served from a completion queue by Server on a thread of its own (RequestHeartbeat, then
// AnswerHeartbeat), the rest by gRPC's sync thread pool. Thread-safe.
//
//   Worker worker(options, &mailbox);
//   WorkerService service(&worker);
//   builder.RegisterService(&service);
#ifndef SLUICE_DISTRIBUTED_WORKER_SERVICE_H_
#define SLUICE_DISTRIBUTED_WORKER_SERVICE_H_

#include "distributed/protocol.grpc.pb.h"
#include "distributed/worker.h"

namespace sluice {

class WorkerService : public proto::Control::WithCallbackMethod_RunGraph<
                          proto::Control::WithAsyncMethod_Heartbeat<proto::Control::Service>> {
 public:
  explicit WorkerService(Worker* worker) : worker_(worker) {}

  grpc::Status RegisterGraph(grpc::ServerContext*, const proto::RegisterGraphRequest*,
                             proto::RegisterGraphResponse*) override;
  grpc::Status DeregisterGraph(grpc::ServerContext*, const proto::DeregisterGraphRequest*,
                               proto::DeregisterGraphResponse*) override;
  grpc::ServerUnaryReactor* RunGraph(grpc::CallbackServerContext*, const proto::RunGraphRequest*,
                                     proto::RunGraphResponse*) override;
  grpc::Status AbortStep(grpc::ServerContext*, const proto::AbortStepRequest*,
                         proto::AbortStepResponse*) override;
  grpc::Status Inspect(grpc::ServerContext*, const proto::InspectRequest*,
                       proto::InspectResponse*) override;
  grpc::Status EdgeControl(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>*) override;
  // The answer to one Heartbeat taken from the completion queue.
  grpc::Status AnswerHeartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatResponse* resp);

 private:
  Worker* worker_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_WORKER_SERVICE_H_
