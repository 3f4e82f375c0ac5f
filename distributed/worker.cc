#include "distributed/worker.h"

#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "graph/graph_def.h"
#include "ops/register.h"

namespace sluice {

grpc::Status CheckVersion(int version, const char* what) {
  if (version == kProtocolVersion) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat(what, ": protocol version mismatch: peer speaks ", version,
                                   ", this server speaks ", kProtocolVersion));
}

namespace {
uint64_t NewIncarnation() {
  absl::BitGen gen;
  uint64_t v = 0;
  while (v == 0) v = absl::Uniform<uint64_t>(gen);
  return v;
}
}  // namespace

std::string TaskPrefixOf(const std::string& device) {
  size_t pos = device.find("/device:");
  return pos == std::string::npos ? device : device.substr(0, pos);
}

Worker::Worker(WorkerOptions options, TensorMailbox* mailbox)
    : options_(std::move(options)), mailbox_(mailbox), incarnation_(NewIncarnation()) {
  RegisterAllOps();
  DeviceOptions device = options_.device;
  device.name = absl::StrCat(task_prefix(), "/device:cpu:0");
  device_ = std::make_unique<CpuDevice>(device);
}

Worker::~Worker() = default;

void Worker::SetAddresses(const std::string& control, const std::string& data) {
  absl::MutexLock lock(&mu_);
  control_address_ = control;
  data_address_ = data;
}

std::string Worker::task_prefix() const {
  return absl::StrCat("/job:", options_.job, "/task:", options_.task);
}

proto::TaskIdentity Worker::identity() const {
  proto::TaskIdentity id;
  id.set_job(options_.job);
  id.set_task(options_.task);
  id.set_incarnation(incarnation_);
  absl::MutexLock lock(&mu_);
  id.set_control_address(control_address_);
  id.set_data_address(data_address_);
  return id;
}

grpc::Status Worker::RegisterGraph(grpc::ServerContext*, const proto::RegisterGraphRequest* req,
                                   proto::RegisterGraphResponse* resp) {
  grpc::Status v = CheckVersion(req->protocol_version(), "RegisterGraph");
  if (!v.ok()) return v;
  absl::StatusOr<std::unique_ptr<Graph>> graph = GraphFromGraphDef(req->partition());
  if (!graph.ok()) return ToGrpc(AnnotateStatus(graph.status(), "RegisterGraph"));
  auto reg = std::make_shared<RegisteredGraph>();
  reg->graph = std::shared_ptr<const Graph>(std::move(*graph));
  ExecutorParams params;
  params.graph = reg->graph.get();
  params.device = device_.get();
  for (const Node* n : reg->graph->nodes()) params.nodes.push_back(n);
  auto endpoint = [&](const std::string& name) -> absl::StatusOr<Endpoint> {
    return reg->graph->ParseEndpoint(name);
  };
  for (const std::string& f : req->feeds()) {
    absl::StatusOr<Endpoint> e = endpoint(f);
    if (!e.ok()) return ToGrpc(AnnotateStatus(e.status(), "RegisterGraph feed"));
    params.feeds.push_back(*e);
  }
  for (const std::string& f : req->fetches()) {
    absl::StatusOr<Endpoint> e = endpoint(f);
    if (!e.ok()) return ToGrpc(AnnotateStatus(e.status(), "RegisterGraph fetch"));
    params.fetches.push_back(*e);
  }
  absl::StatusOr<std::unique_ptr<Executor>> exec = Executor::Create(params);
  if (!exec.ok()) return ToGrpc(AnnotateStatus(exec.status(), "RegisterGraph"));
  reg->executor = std::move(*exec);
  for (const proto::PeerAddress& p : req->peers()) reg->peers[p.task_prefix()] = p;
  absl::MutexLock lock(&mu_);
  std::string handle = absl::StrCat("g", next_graph_++, "-", incarnation_);
  graphs_[handle] = std::move(reg);
  resp->set_graph_handle(handle);
  resp->set_incarnation(incarnation_);
  return grpc::Status::OK;
}

grpc::Status Worker::DeregisterGraph(grpc::ServerContext*, const proto::DeregisterGraphRequest* req,
                                     proto::DeregisterGraphResponse*) {
  grpc::Status v = CheckVersion(req->protocol_version(), "DeregisterGraph");
  if (!v.ok()) return v;
  absl::MutexLock lock(&mu_);
  if (graphs_.erase(req->graph_handle()) == 0) {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("unknown graph handle '", req->graph_handle(), "' on ", task_prefix()));
  }
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<Worker::PeerLink>> Worker::GetPeer(const proto::PeerAddress& peer) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<PeerLink>& link = peers_[peer.data_address()];
  if (!link) {
    link = std::make_shared<PeerLink>();
    link->task_prefix = peer.task_prefix();
    link->data = std::make_unique<DataClient>(
        MakeDataChannel(peer.data_address(), options_.max_message_bytes, options_.peer_keepalive),
        options_.chunk);
    link->edge = std::make_unique<EdgeSender>(
        MakeChannel(peer.control_address(), /*max_message_bytes=*/-1, options_.peer_keepalive),
        link->data.get(), absl::StrCat(task_prefix(), "->", peer.task_prefix()));
  }
  return link;
}

void Worker::DropPeers(const std::function<bool(const PeerLink&)>& which) {
  std::vector<std::shared_ptr<PeerLink>> dropped;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (which(*it->second)) {
        dropped.push_back(std::move(it->second));
        it = peers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Outside the lock: a Send in progress keeps its link alive and sees the cancellation.
  for (auto& link : dropped) link->edge->Cancel();  // Also breaks link->data's stream.
}

grpc::Status Worker::RunGraph(grpc::ServerContext* ctx, const proto::RunGraphRequest* req,
                              proto::RunGraphResponse* resp) {
  grpc::Status v = CheckVersion(req->protocol_version(), "RunGraph");
  if (!v.ok()) return v;
  // Shared so AbortStep can cancel it outside the lock while this call may be finishing.
  auto cm = std::make_shared<CancellationManager>();
  std::multimap<int64_t, std::shared_ptr<CancellationManager>>::iterator it;
  {
    absl::MutexLock lock(&mu_);
    it = active_steps_.emplace(req->step_id(), cm);
  }
  mailbox_->StartStep(req->step_id());
  absl::Status s = RunGraphImpl(*req, ctx, cm, resp);
  {
    absl::MutexLock lock(&mu_);
    active_steps_.erase(it);
  }
  if (!s.ok()) {
    mailbox_->AbortStep(req->step_id(), s);  // Frees whatever arrived for the step.
    s = AnnotateStatus(s, absl::StrCat(task_prefix(), " step ", req->step_id()));
  }
  mailbox_->CleanupStep(req->step_id());
  return ToGrpc(s);
}

// The rendezvous of one step's partition on this worker (see the class comment in worker.h).
class Worker::StepRendezvous : public Rendezvous {
 public:
  StepRendezvous(Worker* worker, int64_t step_id, const RegisteredGraph* graph, absl::Time deadline,
                 std::shared_ptr<CancellationManager> cm)
      : worker_(worker),
        step_id_(step_id),
        graph_(graph),
        deadline_(deadline),
        cm_(std::move(cm)) {}

  absl::Status Send(const std::string& key, Tensor value) override {
    ASSIGN_OR_RETURN(Rendezvous::ParsedKey parsed, Rendezvous::ParseKey(key));
    const std::string dst = TaskPrefixOf(parsed.dst_device);
    if (dst == worker_->task_prefix())
      return worker_->mailbox_->Put(step_id_, key, std::move(value));
    auto peer = graph_->peers.find(dst);
    if (peer == graph_->peers.end()) {
      return absl::InvalidArgumentError(absl::StrCat("no address registered for task ", dst,
                                                     " (receiver of '", parsed.edge, "')"));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<PeerLink> link, worker_->GetPeer(peer->second));
    // Cancelling the step ends a wait for a credit from a hung receiver (it grants none).
    return link->edge->Send(step_id_, key, value, deadline_, cm_.get());
  }
  void RecvAsync(const std::string& key, DoneCallback done) override {
    worker_->mailbox_->RecvAsync(step_id_, key, [done = std::move(done)](absl::StatusOr<Tensor> t) {
      if (t.ok()) {
        done(absl::OkStatus(), *std::move(t));
      } else {
        done(t.status(), Tensor());
      }
    });
  }
  // Cancels the step, which ends a Send waiting for a credit, and fails its receives here.
  void StartAbort(const absl::Status& status) override {
    // Locals: once its receives fail the step may end, and this rendezvous with it. Cancelling
    // is a no-op when this runs as a callback of the step's cancellation (a _Recv's).
    std::shared_ptr<CancellationManager> cm = cm_;
    TensorMailbox* mailbox = worker_->mailbox_;
    const int64_t step_id = step_id_;
    cm->StartCancel(status);
    mailbox->AbortStep(step_id, status);
  }

 private:
  Worker* worker_;
  int64_t step_id_;
  const RegisteredGraph* graph_;
  absl::Time deadline_;
  std::shared_ptr<CancellationManager> cm_;
};

absl::Status Worker::RunGraphImpl(const proto::RunGraphRequest& req, grpc::ServerContext* ctx,
                                  const std::shared_ptr<CancellationManager>& cm,
                                  proto::RunGraphResponse* resp) {
  std::shared_ptr<RegisteredGraph> graph;
  {
    absl::MutexLock lock(&mu_);
    auto found = graphs_.find(req.graph_handle());
    if (found == graphs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("unknown graph handle '", req.graph_handle(), "' on ", task_prefix()));
    }
    graph = found->second;
  }
  const absl::Duration timeout =
      req.timeout_ms() > 0 ? absl::Milliseconds(req.timeout_ms()) : absl::Seconds(60);
  StepRendezvous rendezvous(this, req.step_id(), graph.get(), absl::Now() + timeout, cm);
  StepArgs args;
  args.step_id = req.step_id();
  args.cancellation = cm.get();
  args.rendezvous = &rendezvous;
  for (const proto::NamedTensor& f : req.feeds()) {
    ASSIGN_OR_RETURN(Tensor t, TensorFromProto(f.tensor()));
    args.feed_values.push_back(std::move(t));
  }
  struct Done {
    absl::Notification n;
    absl::Status status;
    std::vector<Tensor> outputs;
  } done;
  graph->executor->RunAsync(std::move(args), [&done](absl::Status s, std::vector<Tensor> out) {
    done.status = std::move(s);
    done.outputs = std::move(out);
    done.n.Notify();
  });
  // The sync API has no cancellation callback: a caller that gave up (the master cancelled the
  // RPC) or a server shutting down is noticed here, and cancels the step.
  while (!done.n.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
    if (ctx->IsCancelled()) {
      cm->StartCancel(absl::CancelledError(
          absl::StrCat("step ", req.step_id(), ": the RunGraph call was cancelled")));
    }
  }
  RETURN_IF_ERROR(done.status);
  std::vector<Tensor>& outputs = done.outputs;
  for (const Tensor& t : outputs) {
    TensorToProto(t, resp->add_fetches()->mutable_tensor());
  }
  return absl::OkStatus();
}

void Worker::AbortAll(const absl::Status& reason) {
  std::vector<std::shared_ptr<CancellationManager>> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [step, cm] : active_steps_) to_cancel.push_back(cm);
  }
  // Outside the lock: cancellation callbacks may run kernels that call back into the worker.
  for (auto& cm : to_cancel) cm->StartCancel(reason);
  // Then break every outgoing link, so no handler thread stays blocked writing to a peer
  // (which would hold up the server's shutdown).
  DropPeers([](const PeerLink&) { return true; });
}

grpc::Status Worker::AbortStep(grpc::ServerContext*, const proto::AbortStepRequest* req,
                               proto::AbortStepResponse*) {
  grpc::Status v = CheckVersion(req->protocol_version(), "AbortStep");
  if (!v.ok()) return v;
  absl::Status reason = absl::AbortedError(
      req->reason().empty() ? absl::StrCat("step ", req->step_id(), " aborted") : req->reason());
  AbortLocalStep(req->step_id(), reason);
  // After the cancellation, so a Send this unblocks reports the abort's reason.
  if (!req->lost_task().empty()) {
    DropPeers([&](const PeerLink& link) { return link.task_prefix == req->lost_task(); });
  }
  return grpc::Status::OK;
}

void Worker::AbortLocalStep(int64_t step_id, const absl::Status& reason) {
  std::vector<std::shared_ptr<CancellationManager>> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    auto range = active_steps_.equal_range(step_id);
    for (auto i = range.first; i != range.second; ++i) to_cancel.push_back(i->second);
  }
  // Outside the lock: cancellation callbacks may run kernels that call back into the worker.
  for (auto& cm : to_cancel) cm->StartCancel(reason);
  mailbox_->AbortStep(step_id, reason);
}

grpc::Status Worker::Heartbeat(grpc::ServerContext*, const proto::HeartbeatRequest* req,
                               proto::HeartbeatResponse* resp) {
  grpc::Status v = CheckVersion(req->protocol_version(), "Heartbeat");
  if (!v.ok()) return v;
  *resp->mutable_identity() = identity();
  {
    absl::MutexLock lock(&mu_);
    resp->set_active_steps(active_steps_.size());
    int64_t waiting = 0, pushing = 0;
    for (auto& [address, link] : peers_) {
      waiting += link->edge->waiting();
      pushing += link->edge->pushing();
    }
    resp->set_waiting_sends(waiting);
    resp->set_pushing_sends(pushing);
  }
  resp->set_pending_receives(mailbox_->num_pending_receives());
  resp->set_buffered_bytes(mailbox_->buffered_bytes());
  return grpc::Status::OK;
}

grpc::Status Worker::EdgeControl(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>* stream) {
  proto::EdgeControlMessage msg;
  if (!stream->Read(&msg)) return grpc::Status::OK;
  if (!msg.has_open()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "EdgeControl stream must start with 'open'");
  }
  grpc::Status v = CheckVersion(msg.open().protocol_version(), "EdgeControl");
  if (!v.ok()) return v;
  // Writes come from the consumer's thread (new credits) and this one: serialise them.
  struct Writer {
    absl::Mutex mu;
    bool open = true;
  };
  auto writer = std::make_shared<Writer>();
  auto grant = [stream, writer](int n) {
    absl::MutexLock lock(&writer->mu);
    if (!writer->open) return;
    proto::EdgeControlMessage credit;
    credit.mutable_credit()->set_grant(n);
    stream->Write(credit);
  };
  // The edge is "<sender task>-><receiver task>": a credit returns when one of its tensors is
  // consumed here.
  const std::string edge = msg.open().edge();
  const int64_t listener = mailbox_->AddEdgeListener([grant, edge](const std::string& key) {
    absl::StatusOr<Rendezvous::ParsedKey> parsed = Rendezvous::ParseKey(key);
    if (!parsed.ok()) return;
    if (absl::StrCat(TaskPrefixOf(parsed->src_device), "->", TaskPrefixOf(parsed->dst_device)) ==
        edge) {
      grant(1);
    }
  });
  grant(options_.credit_window);
  while (stream->Read(&msg)) {
    if (msg.has_step_failed()) {
      // The whole step, not only its receives: its Sends waiting for credits end too.
      AbortLocalStep(msg.step_failed().step_id(),
                     absl::Status(static_cast<absl::StatusCode>(msg.step_failed().code()),
                                  msg.step_failed().message()));
    }
  }
  mailbox_->RemoveEdgeListener(listener);
  absl::MutexLock lock(&writer->mu);
  writer->open = false;
  return grpc::Status::OK;
}

}  // namespace sluice
