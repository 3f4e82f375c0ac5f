#include "distributed/worker.h"

#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "graph/device_name.h"
#include "graph/graph_def.h"
#include "ops/ps_ops.h"
#include "ops/register.h"

namespace sluice {

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
  device.name = DeviceName::TaskCpuDevice(task_prefix());
  device_ = std::make_unique<CpuDevice>(device);
}

Worker::~Worker() = default;

void Worker::SetAddresses(const std::string& control, const std::string& data) {
  absl::MutexLock lock(&mu_);
  control_address_ = control;
  data_address_ = data;
}

std::string Worker::task_prefix() const {
  return DeviceName::TaskPrefix(options_.job, options_.task);
}

const ResourceMgr& Worker::resources() const { return *device_->resources(); }

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

namespace {

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

}  // namespace

absl::Status Worker::CheckPeer(const proto::PeerAddress& peer) const {
  if (options_.cluster_tasks.empty()) return absl::OkStatus();  // No spec to check against.
  for (const proto::PeerAddress& known : options_.cluster_tasks) {
    if (known.task_prefix() != peer.task_prefix()) continue;
    // The control address is the spec's; the data address is advertised by the peer itself
    // (its port is the OS's choice) but lives on the same host.
    if (peer.control_address() != known.control_address() ||
        (!peer.data_address().empty() &&
         HostOf(peer.data_address()) != HostOf(known.control_address()))) {
      break;
    }
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "RegisterGraph: peer ", peer.task_prefix(), " at control ", peer.control_address(), ", data ",
      peer.data_address(), " is not a task of ", task_prefix(),
      "'s cluster spec; this worker connects only to its cluster's tasks"));
}

absl::Status Worker::RegisterGraph(const proto::RegisterGraphRequest& request,
                                   proto::RegisterGraphResponse* resp) {
  const proto::RegisterGraphRequest* req = &request;
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req->protocol_version(), "RegisterGraph"));
  absl::StatusOr<std::unique_ptr<Graph>> graph = GraphFromGraphDef(req->partition());
  if (!graph.ok()) return AnnotateStatus(graph.status(), "RegisterGraph");
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
    if (!e.ok()) return AnnotateStatus(e.status(), "RegisterGraph feed");
    params.feeds.push_back(*e);
  }
  for (const std::string& f : req->fetches()) {
    absl::StatusOr<Endpoint> e = endpoint(f);
    if (!e.ok()) return AnnotateStatus(e.status(), "RegisterGraph fetch");
    params.fetches.push_back(*e);
  }
  absl::StatusOr<std::unique_ptr<Executor>> exec = Executor::Create(params);
  if (!exec.ok()) return AnnotateStatus(exec.status(), "RegisterGraph");
  reg->executor = std::move(*exec);
  for (const proto::PeerAddress& p : req->peers()) {
    SLUICE_RETURN_IF_ERROR(CheckPeer(p));
    reg->peers[p.task_prefix()] = p;
  }
  absl::MutexLock lock(&mu_);
  if (options_.max_session_bytes > 0) {
    const std::string session =
        req->session_handle().empty() ? "(no session)" : req->session_handle();
    std::shared_ptr<MemoryBudget> budget = budgets_[session].lock();
    if (!budget) {
      budget = std::make_shared<MemoryBudget>(
          absl::StrCat("session '", session, "' on ", task_prefix(), " (--max_session_bytes)"),
          options_.max_session_bytes);
      budgets_[session] = budget;
    }
    reg->budget = std::move(budget);
    for (auto it = budgets_.begin(); it != budgets_.end();) {  // Forget those nothing holds.
      it = it->second.expired() ? budgets_.erase(it) : std::next(it);
    }
  }
  // Unguessable (128 random bits): a handle is what running or deregistering a graph takes.
  absl::BitGen bits;
  std::string handle = absl::StrCat("g", next_graph_++, "-", incarnation_, "-",
                                    absl::Hex(absl::Uniform<uint64_t>(bits), absl::kZeroPad16),
                                    absl::Hex(absl::Uniform<uint64_t>(bits), absl::kZeroPad16));
  graphs_[handle] = std::move(reg);
  resp->set_graph_handle(handle);
  resp->set_incarnation(incarnation_);
  return absl::OkStatus();
}

absl::Status Worker::DeregisterGraph(const proto::DeregisterGraphRequest& req) {
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req.protocol_version(), "DeregisterGraph"));
  absl::MutexLock lock(&mu_);
  if (graphs_.erase(req.graph_handle()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("unknown graph handle '", req.graph_handle(), "' on ", task_prefix()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Worker::PeerLink>> Worker::GetPeer(const proto::PeerAddress& peer) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<PeerLink>& link = peers_[peer.data_address()];
  if (!link) {
    link = std::make_shared<PeerLink>();
    link->task_prefix = peer.task_prefix();
    link->data = std::make_unique<DataClient>(
        MakeDataChannel(peer.data_address(), options_.max_message_bytes, options_.peer_keepalive),
        options_.chunk, options_.metrics, task_prefix(), peer.task_prefix());
    // A step whose tensors were on the wire when the link broke cannot finish: end it here (its
    // RunGraph then fails, and the master aborts it on the other workers).
    link->edge = std::make_unique<EdgeSender>(
        MakeChannel(peer.control_address(), /*max_message_bytes=*/-1, options_.peer_keepalive),
        link->data.get(), absl::StrCat(task_prefix(), "->", peer.task_prefix()),
        [this](int64_t step_id, const absl::Status& why) { AbortLocalStep(step_id, why); },
        options_.metrics);
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
    SLUICE_ASSIGN_OR_RETURN(Rendezvous::ParsedKey parsed, Rendezvous::ParseKey(key));
    const std::string dst = TaskPrefixOf(parsed.dst_device);
    if (dst == worker_->task_prefix())
      return worker_->mailbox_->Put(step_id_, key, std::move(value));
    auto peer = graph_->peers.find(dst);
    if (peer == graph_->peers.end()) {
      return absl::InvalidArgumentError(absl::StrCat("no address registered for task ", dst,
                                                     " (receiver of '", parsed.edge, "')"));
    }
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PeerLink> link, worker_->GetPeer(peer->second));
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

// One step of a partition while it runs here.
struct Worker::RunningStep {
  const proto::RunGraphRequest* req = nullptr;
  proto::RunGraphResponse* resp = nullptr;
  std::shared_ptr<CancellationManager> cm;
  std::function<void(absl::Status)> done;
  absl::Time started;
  std::multimap<int64_t, std::shared_ptr<CancellationManager>>::iterator active;
  std::shared_ptr<RegisteredGraph> graph;
  std::unique_ptr<StepRendezvous> rendezvous;
  StepArgs args;                     // Until the executor takes them.
  std::unique_ptr<StepTrace> trace;  // With RunGraphRequest.trace.
  // A callback on `cm` that holds the step: a cancellation that is running its callbacks (a
  // _Recv's uses the rendezvous) keeps the step alive until it has run them all, even when the
  // step ends in the middle of them. Deregistered when the step ends (breaking the cycle).
  std::optional<CancellationManager::Token> keep_alive;
};

void Worker::RunGraphAsync(const proto::RunGraphRequest* req, proto::RunGraphResponse* resp,
                           std::shared_ptr<CancellationManager> cancellation,
                           std::function<void(absl::Status)> done) {
  absl::Status v = CheckProtocolVersion(req->protocol_version(), "RunGraph");
  if (!v.ok()) {
    done(v);
    return;
  }
  auto step = std::make_shared<RunningStep>();
  step->req = req;
  step->resp = resp;
  step->cm = std::move(cancellation);
  step->done = std::move(done);
  step->started = absl::Now();
  if (req->trace()) {
    step->trace = std::make_unique<StepTrace>();
    resp->set_received_ns(StepTrace::NowNanos());
  }
  if (options_.metrics != nullptr) {
    options_.metrics->Add("sluice_bytes_received_total", {{"plane", "control"}, {"peer", "master"}},
                          static_cast<double>(req->ByteSizeLong()));
  }
  step->keep_alive = step->cm->RegisterCallback([step] {});
  {
    absl::MutexLock lock(&mu_);
    step->active = active_steps_.emplace(req->step_id(), step->cm);
  }
  mailbox_->StartStep(req->step_id());
  absl::Status s = StartStep(step);
  if (!s.ok()) FinishStep(step, std::move(s));
}

void Worker::FinishStep(const std::shared_ptr<RunningStep>& step, absl::Status status) {
  const int64_t step_id = step->req->step_id();
  {
    absl::MutexLock lock(&mu_);
    active_steps_.erase(step->active);
  }
  if (!status.ok()) {
    mailbox_->AbortStep(step_id, status);  // Frees whatever arrived for the step.
    status = AnnotateStatus(status, absl::StrCat(task_prefix(), " step ", step_id));
  }
  mailbox_->CleanupStep(step_id);
  if (options_.metrics != nullptr) {
    Metrics& m = *options_.metrics;
    m.Add("sluice_steps_total", {{"result", status.ok() ? "ok" : "failed"}});
    m.Observe("sluice_step_seconds", {}, absl::ToDoubleSeconds(absl::Now() - step->started));
    m.Add("sluice_bytes_sent_total", {{"plane", "control"}, {"peer", "master"}},
          static_cast<double>(step->resp->ByteSizeLong()));
  }
  if (step->keep_alive) step->cm->DeregisterCallback(*step->keep_alive);
  if (step->trace != nullptr) {
    for (NodeExecStats& s : step->trace->Take()) {
      proto::NodeStats* n = step->resp->add_node_stats();
      n->set_node(std::move(s.node));
      n->set_op(std::move(s.op));
      n->set_start_ns(s.start_ns);
      n->set_end_ns(s.end_ns);
      n->set_thread(s.thread);
      n->set_transfer(std::move(s.transfer));
      n->set_bytes(s.bytes);
      n->set_device(std::move(s.device));
    }
    step->resp->set_replied_ns(StepTrace::NowNanos());
  }
  std::function<void(absl::Status)> done = std::move(step->done);
  done(std::move(status));
}

absl::Status Worker::StartStep(const std::shared_ptr<RunningStep>& step) {
  const proto::RunGraphRequest& req = *step->req;
  {
    absl::MutexLock lock(&mu_);
    auto found = graphs_.find(req.graph_handle());
    if (found == graphs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("unknown graph handle '", req.graph_handle(), "' on ", task_prefix()));
    }
    step->graph = found->second;
  }
  const absl::Duration timeout =
      req.timeout_ms() > 0 ? absl::Milliseconds(req.timeout_ms()) : absl::Seconds(60);
  step->rendezvous = std::make_unique<StepRendezvous>(this, req.step_id(), step->graph.get(),
                                                      absl::Now() + timeout, step->cm);
  // On the device's entry threads: the caller may be a transport thread that must neither decode
  // large feeds nor run kernels (a _Send may wait there for a credit).
  device_->Submit([this, step] {
    StepArgs& args = step->args;
    args.step_id = step->req->step_id();
    args.cancellation = step->cm.get();
    args.rendezvous = step->rendezvous.get();
    args.budget = step->graph->budget;
    args.trace = step->trace.get();
    for (const proto::NamedTensor& f : step->req->feeds()) {
      absl::StatusOr<Tensor> t = TensorFromProto(f.tensor());
      if (!t.ok()) {
        FinishStep(step, t.status());
        return;
      }
      args.feed_values.push_back(*std::move(t));
    }
    step->graph->executor->RunAsync(
        std::move(args), [this, step](absl::Status s, std::vector<Tensor> outputs) {
          if (s.ok()) {
            for (const Tensor& t : outputs) {
              TensorToProto(t, step->resp->add_fetches()->mutable_tensor());
            }
          }
          FinishStep(step, std::move(s));
        });
  });
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

absl::Status Worker::AbortStep(const proto::AbortStepRequest& request) {
  const proto::AbortStepRequest* req = &request;
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req->protocol_version(), "AbortStep"));
  absl::Status reason = absl::AbortedError(
      req->reason().empty() ? absl::StrCat("step ", req->step_id(), " aborted") : req->reason());
  AbortLocalStep(req->step_id(), reason);
  // After the cancellation, so a Send this unblocks reports the abort's reason.
  if (!req->lost_task().empty()) {
    DropPeers([&](const PeerLink& link) { return link.task_prefix == req->lost_task(); });
  }
  return absl::OkStatus();
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

absl::Status Worker::Inspect(const proto::InspectRequest& req, proto::InspectResponse* resp) {
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req.protocol_version(), "Inspect"));
  *resp->mutable_identity() = identity();
  for (const proto::PeerAddress& t : options_.cluster_tasks) *resp->add_cluster() = t;
  for (PsWait& w : ReadPsWaits(resources())) {
    proto::InspectedPsWait* out = resp->add_ps_waits();
    out->set_variable(std::move(w.variable));
    out->set_worker(w.worker);
    for (int64_t b : w.behind) out->add_behind(b);
  }
  for (TensorMailbox::StepView& v : mailbox_->Describe()) {
    proto::InspectedStep* step = resp->add_steps();
    step->set_step_id(v.step_id);
    step->set_running(v.running);
    for (std::string& k : v.waiting_keys) step->add_waiting_keys(std::move(k));
    for (std::string& k : v.buffered_keys) step->add_buffered_keys(std::move(k));
  }
  std::vector<std::shared_ptr<PeerLink>> links;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [address, link] : peers_) links.push_back(link);
  }
  for (const auto& link : links) link->edge->Describe(resp->add_edges());
  return absl::OkStatus();
}

absl::Status Worker::Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatResponse* resp) {
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req.protocol_version(), "Heartbeat"));
  *resp->mutable_identity() = identity();
  std::vector<std::shared_ptr<PeerLink>> links;
  {
    absl::MutexLock lock(&mu_);
    resp->set_active_steps(active_steps_.size());
    resp->set_registered_graphs(graphs_.size());
    for (auto& [address, link] : peers_) links.push_back(link);
  }
  // Outside mu_: the senders have locks of their own, never taken under the worker's.
  int64_t waiting = 0, pushing = 0;
  for (const auto& link : links) {
    waiting += link->edge->waiting();
    pushing += link->edge->pushing();
  }
  resp->set_waiting_sends(waiting);
  resp->set_pushing_sends(pushing);
  resp->set_pending_receives(mailbox_->num_pending_receives());
  resp->set_buffered_bytes(mailbox_->buffered_bytes());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Worker::OpenEdge(
    const proto::EdgeControlMessage& open,
    std::function<void(const proto::EdgeControlMessage&)> write) {
  if (!open.has_open()) {
    return absl::InvalidArgumentError("EdgeControl stream must start with 'open'");
  }
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(open.open().protocol_version(), "EdgeControl"));
  // The edge is "<sender task>-><receiver task>": a credit returns when one of its tensors
  // leaves the mailbox here.
  const std::string edge = open.open().edge();
  // The listener goes first: once the sender has the window its tensors may arrive and be
  // consumed at once, and each must credit its step back.
  const int64_t id = mailbox_->AddEdgeListener([write, edge](const std::string& key) {
    absl::StatusOr<Rendezvous::ParsedKey> parsed = Rendezvous::ParseKey(key);
    if (!parsed.ok()) return;
    if (absl::StrCat(TaskPrefixOf(parsed->src_device), "->", TaskPrefixOf(parsed->dst_device)) ==
        edge) {
      proto::EdgeControlMessage credit;
      credit.mutable_credit()->set_grant(1);
      credit.mutable_credit()->set_step_id(parsed->step_id);
      credit.mutable_credit()->set_key(key);
      write(credit);
    }
  });
  proto::EdgeControlMessage window;
  window.mutable_window()->set_tensors_per_step(options_.credit_window);
  write(window);
  return id;
}

void Worker::OnEdgeMessage(const proto::EdgeControlMessage& msg) {
  if (msg.has_step_failed()) {
    // A status off the wire is checked: OK, or a code absl does not know, would abort the step
    // with a status that is not an error (and crash what expects one).
    const int code = msg.step_failed().code();
    absl::Status reason(static_cast<absl::StatusCode>(code), msg.step_failed().message());
    if (code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
      reason = absl::UnknownError(absl::StrCat("peer reported step ", msg.step_failed().step_id(),
                                               " failed with invalid status code ", code, ": ",
                                               msg.step_failed().message()));
    }
    // The whole step, not only its receives: its Sends waiting for credits end too.
    AbortLocalStep(msg.step_failed().step_id(), reason);
  }
}

void Worker::CloseEdge(int64_t id) { mailbox_->RemoveEdgeListener(id); }

}  // namespace sluice
