#include "distributed/master.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "distributed/auth.h"
#include "distributed/grpc_util.h"
#include "distributed/pipeline_builder.h"
#include "distributed/protocol.h"
#include "distributed/tls.h"
#include "graph/device_name.h"
#include "graph/graph_def.h"
#include "graph/partitioner.h"
#include "ops/collectives.h"
#include "ops/register.h"

namespace sluice {
namespace {
std::string EndpointName(const Endpoint& e) { return absl::StrCat(e.node->name(), ":", e.index); }
}  // namespace

Master::Master(MasterOptions options)
    : options_(std::move(options)),
      monitor_(options_.heartbeat),
      coordinator_(&monitor_),
      watchdog_(options_.slow_step_report, &monitor_) {
  RegisterAllOps();
  for (const proto::PeerAddress& w : options_.workers) monitor_.Watch(w);
  if (options_.session_idle_timeout != absl::InfiniteDuration()) {
    expiry_thread_ = std::thread([this] { ExpireIdleSessions(); });
  }
}

Master::~Master() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

void Master::ExpireIdleSessions() {
  // Checked at a tenth of the timeout (at most every 10 s): a session goes at most that late.
  const absl::Duration period =
      std::min(options_.session_idle_timeout / 10, absl::Duration(absl::Seconds(10)));
  while (true) {
    std::vector<std::shared_ptr<SessionState>> expired;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
      const absl::Time now = absl::Now();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        // A running step (say, one waiting for a task to start) keeps its session.
        if (it->second->running_steps == 0 &&
            now - it->second->last_used >= options_.session_idle_timeout) {
          expired.push_back(std::move(it->second));
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : expired) Release(s.get());
  }
}

absl::StatusOr<std::shared_ptr<Master::SessionState>> Master::FindSession(
    const std::string& handle, const std::string& client) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(handle);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown session handle '", handle,
                                            "' (never created, closed, or closed by the master "
                                            "after ",
                                            absl::FormatDuration(options_.session_idle_timeout),
                                            " unused: --session_idle_timeout_ms)"));
  }
  if (!it->second->owner.empty() && it->second->owner != client) {
    return absl::PermissionDeniedError(absl::StrCat(
        "session '", handle, "' belongs to the client that created it (another certificate)"));
  }
  it->second->last_used = absl::Now();
  return it->second;
}

absl::Status Master::CheckRoomLocked() const {
  if (static_cast<int>(sessions_.size()) < options_.max_sessions) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat("the master holds ", sessions_.size(),
                                                   " sessions, its limit (--max_sessions); close "
                                                   "the sessions you no longer use"));
}

absl::Status Master::CheckGraphSize(const proto::GraphDef& def) const {
  const size_t bytes = def.ByteSizeLong();
  if (static_cast<int64_t>(bytes) > options_.max_graph_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the graph is ", bytes, " bytes, over the master's limit of ",
                     options_.max_graph_bytes, " (--max_graph_bytes)"));
  }
  return absl::OkStatus();
}

std::vector<std::string> Master::DeviceNames() const {
  std::vector<std::string> names;
  for (const proto::PeerAddress& w : options_.workers)
    names.push_back(DeviceName::TaskCpuDevice(w.task_prefix()));
  return names;
}

absl::StatusOr<std::shared_ptr<Master::SessionState>> Master::BuildSession(
    proto::GraphDef def, const proto::SessionConfig& config) {
  auto s = std::make_shared<SessionState>();
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Graph> graph, GraphFromGraphDef(def));
  s->graph = std::shared_ptr<const Graph>(std::move(graph));
  if (options_.workers.empty()) return absl::FailedPreconditionError("the cluster has no workers");
  // The devices the session may use: all, or those matching a device filter.
  std::vector<DeviceName> filters;
  for (const std::string& f : config.device_filters()) {
    absl::StatusOr<DeviceName> parsed = DeviceName::Parse(f);
    if (!parsed.ok()) {
      return AnnotateStatus(parsed.status(), absl::StrCat("device filter '", f, "'"));
    }
    filters.push_back(*parsed);
  }
  const std::vector<std::string> all = DeviceNames();
  std::vector<std::string> devices;
  for (size_t i = 0; i < all.size(); ++i) {
    bool keep = filters.empty();
    for (const DeviceName& f : filters) keep = keep || f.Matches(*DeviceName::Parse(all[i]));
    if (keep) {
      devices.push_back(all[i]);
      s->device_workers.push_back(static_cast<int>(i));
    }
  }
  if (devices.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no device of the cluster matches the device filters ",
                     absl::StrJoin(config.device_filters(), ", "),
                     " (devices: ", absl::StrJoin(all, ", "), ")"));
  }
  PlacerOptions popts;
  popts.allow_soft_placement = config.allow_soft_placement();
  SLUICE_ASSIGN_OR_RETURN(s->placement, PlaceGraph(*s->graph, devices, popts));
  if (config.log_device_placement()) {
    std::string lines;
    for (const Node* n : s->graph->nodes()) {
      absl::StrAppend(&lines, n->name(), ": (", n->op(), "): ", s->placement.DeviceOf(n), "\n");
    }
    std::fprintf(stderr, "sluice master: device placement\n%s", lines.c_str());
  }
  s->def = std::move(def);
  s->config = config;
  return s;
}

absl::StatusOr<Placement> Master::PlacementOf(absl::string_view session_handle) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(std::string(session_handle));
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown session handle '", session_handle, "'"));
  }
  return it->second->placement;
}

grpc::Status Master::CreateSession(grpc::ServerContext* ctx, const proto::CreateSessionRequest* req,
                                   proto::CreateSessionResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  grpc::Status v = ToGrpc(CheckProtocolVersion(req->protocol_version(), "CreateSession"));
  if (!v.ok()) return v;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status room = CheckRoomLocked(); !room.ok()) {
      return ToGrpc(AnnotateStatus(room, "CreateSession"));
    }
  }
  if (absl::Status size = CheckGraphSize(req->graph()); !size.ok()) {
    return ToGrpc(AnnotateStatus(size, "CreateSession"));
  }
  absl::StatusOr<std::shared_ptr<SessionState>> s = BuildSession(req->graph(), req->config());
  if (!s.ok()) return ToGrpc(AnnotateStatus(s.status(), "CreateSession"));
  absl::MutexLock lock(&mu_);
  // Checked again: sessions may have been created while this one was built.
  if (absl::Status room = CheckRoomLocked(); !room.ok()) {
    return ToGrpc(AnnotateStatus(room, "CreateSession"));
  }
  // Unguessable: knowing another client's handle is what closing or running its session takes.
  absl::BitGen bits;
  std::string handle = absl::StrCat("session-", next_session_++, "-",
                                    absl::Hex(absl::Uniform<uint64_t>(bits), absl::kZeroPad16),
                                    absl::Hex(absl::Uniform<uint64_t>(bits), absl::kZeroPad16));
  (*s)->last_used = absl::Now();
  (*s)->owner = ClientIdentity(ctx);
  sessions_[handle] = *s;
  resp->set_session_handle(handle);
  return grpc::Status::OK;
}

grpc::Status Master::ExtendSession(grpc::ServerContext* ctx, const proto::ExtendSessionRequest* req,
                                   proto::ExtendSessionResponse*) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  grpc::Status v = ToGrpc(CheckProtocolVersion(req->protocol_version(), "ExtendSession"));
  if (!v.ok()) return v;
  absl::StatusOr<std::shared_ptr<SessionState>> old =
      FindSession(req->session_handle(), ClientIdentity(ctx));
  if (!old.ok()) return ToGrpc(old.status());
  proto::GraphDef merged = (*old)->def;
  for (const auto& n : req->graph().node()) *merged.add_node() = n;
  if (absl::Status size = CheckGraphSize(merged); !size.ok()) {
    return ToGrpc(AnnotateStatus(size, "ExtendSession"));
  }
  absl::StatusOr<std::shared_ptr<SessionState>> s = BuildSession(std::move(merged), (*old)->config);
  if (!s.ok()) return ToGrpc(AnnotateStatus(s.status(), "ExtendSession"));
  absl::MutexLock lock(&mu_);
  (*s)->last_used = absl::Now();
  (*s)->owner = (*old)->owner;
  sessions_[req->session_handle()] = *s;
  return grpc::Status::OK;
}

grpc::Status Master::CloseSession(grpc::ServerContext* ctx, const proto::CloseSessionRequest* req,
                                  proto::CloseSessionResponse*) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  grpc::Status v = ToGrpc(CheckProtocolVersion(req->protocol_version(), "CloseSession"));
  if (!v.ok()) return v;
  absl::StatusOr<std::shared_ptr<SessionState>> s =
      FindSession(req->session_handle(), ClientIdentity(ctx));
  if (!s.ok()) return ToGrpc(s.status());
  {
    absl::MutexLock lock(&mu_);
    sessions_.erase(req->session_handle());
  }
  Release(s->get());
  return grpc::Status::OK;
}

void Master::Release(SessionState* s) {
  absl::MutexLock lock(&s->mu);
  for (auto& [sig, prepared] : s->prepared) {
    for (auto& part : prepared->parts) {
      std::shared_ptr<proto::Control::Stub> stub =
          monitor_.stub(options_.workers[part.worker].task_prefix());
      proto::DeregisterGraphRequest dreq;
      dreq.set_protocol_version(kProtocolVersion);
      dreq.set_graph_handle(part.handle);
      proto::DeregisterGraphResponse dresp;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      (void)stub->DeregisterGraph(&ctx, dreq, &dresp);  // A lost worker forgot it anyway.
    }
  }
}

grpc::Status Master::ListDevices(grpc::ServerContext* ctx, const proto::ListDevicesRequest* req,
                                 proto::ListDevicesResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  grpc::Status v = ToGrpc(CheckProtocolVersion(req->protocol_version(), "ListDevices"));
  if (!v.ok()) return v;
  for (const std::string& d : DeviceNames()) resp->add_devices(d);
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<Master::Prepared>> Master::Prepare(
    SessionState* session, const proto::RunStepRequest& req) {
  std::string signature;
  for (const auto& f : req.feeds()) absl::StrAppend(&signature, f.name(), ",");
  absl::StrAppend(&signature, ";", absl::StrJoin(req.fetches(), ","), ";",
                  absl::StrJoin(req.targets(), ","));
  {
    absl::MutexLock lock(&session->mu);
    auto it = session->prepared.find(signature);
    if (it != session->prepared.end()) return it->second;
  }
  const Graph& graph = *session->graph;
  std::vector<Endpoint> feeds, fetches;
  std::vector<const Node*> targets;
  for (const auto& f : req.feeds()) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, graph.ParseEndpoint(f.name()));
    feeds.push_back(e);
  }
  for (const auto& f : req.fetches()) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, graph.ParseEndpoint(f));
    fetches.push_back(e);
  }
  for (const auto& t : req.targets()) {
    const Node* n = graph.FindNode(t);
    if (n == nullptr)
      return absl::NotFoundError(absl::StrCat("target '", t, "' is not in the graph"));
    targets.push_back(n);
  }
  PartitionOptions popts;
  popts.nodes = PruneForFetches(graph, fetches, targets, feeds);
  popts.feeds = feeds;
  SLUICE_ASSIGN_OR_RETURN(PartitionedGraph parts, PartitionGraph(graph, session->placement, popts));
  auto prepared = std::make_shared<Prepared>();
  prepared->feeds = feeds;
  for (const GraphPartition& p : parts.partitions) {
    Prepared::Part part;
    part.worker = session->device_workers[p.device_index];  // One device per task.
    part.registration.set_protocol_version(kProtocolVersion);
    part.registration.set_session_handle(req.session_handle());  // Its memory budget's key.
    ToGraphDef(*p.graph, part.registration.mutable_partition());
    for (const auto& peer : options_.workers) *part.registration.add_peers() = peer;
    prepared->parts.push_back(std::move(part));
  }
  std::vector<bool> needed(graph.num_nodes(), false);
  for (const Node* n : popts.nodes) needed[n->id()] = true;
  for (size_t i = 0; i < feeds.size(); ++i) {
    if (!needed[feeds[i].node->id()]) continue;
    SLUICE_ASSIGN_OR_RETURN(auto where, parts.Locate(feeds[i]));
    prepared->parts[where.first].registration.add_feeds(EndpointName(where.second));
    prepared->parts[where.first].feed_positions.push_back(i);
  }
  for (const Endpoint& f : fetches) {
    SLUICE_ASSIGN_OR_RETURN(auto where, parts.Locate(f));
    proto::RegisterGraphRequest& r = prepared->parts[where.first].registration;
    prepared->fetch_slots.emplace_back(where.first, r.fetches_size());
    r.add_fetches(EndpointName(where.second));
  }
  absl::MutexLock lock(&session->mu);
  session->prepared[signature] = prepared;
  return prepared;
}

absl::Status Master::CheckFeeds(const Prepared& prepared, const proto::RunStepRequest& req) {
  for (int i = 0; i < req.feeds_size(); ++i) {
    const proto::TensorProto& value = req.feeds(i).tensor();
    SLUICE_ASSIGN_OR_RETURN(DType dtype, DTypeFromProto(value.dtype()));
    SLUICE_RETURN_IF_ERROR(CheckFeed(prepared.feeds, i, dtype, ShapeFromProto(value.shape())));
  }
  return absl::OkStatus();
}

absl::Status Master::NameLostTaskWork(const Prepared& prepared, const absl::Status& status) const {
  if (!absl::IsUnavailable(status)) return status;
  for (const Prepared::Part& part : prepared.parts) {
    const std::string& task = options_.workers[part.worker].task_prefix();
    if (!absl::StrContains(status.message(), absl::StrCat("lost ", task, " "))) continue;
    std::vector<std::string> scopes;
    std::vector<std::pair<std::string, int>> stages;  // Pipeline stages the task ran.
    for (const proto::NodeDef& node : part.registration.partition().node()) {
      std::string scope = ops::CollectiveScopeOf(node.name());
      if (!scope.empty() && std::find(scopes.begin(), scopes.end(), scope) == scopes.end()) {
        scopes.push_back(std::move(scope));
      }
      auto stage = pipeline::PipelineStageOf(node.name());
      if (stage && std::find(stages.begin(), stages.end(), *stage) == stages.end()) {
        stages.push_back(std::move(*stage));
      }
    }
    if (!stages.empty()) {
      std::sort(stages.begin(), stages.end());
      std::string ran;
      for (const auto& [pipe, stage] : stages) {
        absl::StrAppend(&ran, ran.empty() ? "" : ", ", "stage ", stage, " of pipeline '", pipe,
                        "'");
      }
      return absl::Status(status.code(),
                          absl::StrCat(status.message(), " (", task, " ran ", ran, ")"));
    }
    if (scopes.empty()) return status;
    const size_t shown = std::min<size_t>(scopes.size(), 3);
    std::string list =
        absl::StrCat("'", absl::StrJoin(scopes.begin(), scopes.begin() + shown, "', '"), "'");
    if (scopes.size() > shown) absl::StrAppend(&list, " and ", scopes.size() - shown, " more");
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (", task, " was a member of collective",
                                     scopes.size() > 1 ? "s " : " ", list, ")"));
  }
  return status;
}

absl::Status Master::EnsureRegistered(Prepared::Part* part) {
  const proto::PeerAddress& w = options_.workers[part->worker];
  const uint64_t inc = monitor_.incarnation(w.task_prefix());
  // Peers' data addresses as their heartbeats advertise them now: a task restarted on another
  // data port makes every partition that may send to it register again.
  bool peers_changed = false;
  for (proto::PeerAddress& peer : *part->registration.mutable_peers()) {
    proto::PeerAddress now = monitor_.peer(peer.task_prefix());
    if (!now.data_address().empty() && now.data_address() != peer.data_address()) {
      peer.set_data_address(now.data_address());
      peers_changed = true;
    }
  }
  if (!part->handle.empty() && part->incarnation == inc && !peers_changed) {
    return absl::OkStatus();
  }
  std::shared_ptr<proto::Control::Stub> stub = monitor_.stub(w.task_prefix());
  proto::RegisterGraphResponse resp;
  auto call = [&](absl::Duration timeout, bool wait_for_ready) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    ctx.set_wait_for_ready(wait_for_ready);
    return stub->RegisterGraph(&ctx, part->registration, &resp);
  };
  grpc::Status s = call(absl::Seconds(10), false);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && monitor_.answering(w.task_prefix())) {
    // The task answers heartbeats (say, it restarted) but this channel is still in its
    // reconnect backoff, and under gRPC's "poll" engine a connection attempt progresses only
    // while a call waits on it: wait for it briefly.
    s = call(absl::Seconds(2), true);
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      s = grpc::Status(grpc::StatusCode::UNAVAILABLE, "not reachable within 2s");
    }
  }
  if (!s.ok()) {
    return AnnotateStatus(FromGrpc(s), absl::StrCat("registering a partition on ", PeerName(w)));
  }
  part->handle = resp.graph_handle();
  // The worker may have restarted since the last heartbeat: learn its incarnation now.
  monitor_.NoteIncarnation(w.task_prefix(), resp.incarnation());
  part->incarnation = resp.incarnation();
  return absl::OkStatus();
}

absl::Status Master::RunStepImpl(const proto::RunStepRequest& req, proto::RunStepResponse* resp,
                                 const std::string& client, std::function<bool()> abandoned) {
  const int64_t received_ns = absl::GetCurrentTimeNanos();
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<SessionState> session,
                          FindSession(req.session_handle(), client));
  {
    absl::MutexLock lock(&mu_);
    ++session->running_steps;
  }
  absl::Cleanup done = [&] {
    absl::MutexLock lock(&mu_);
    --session->running_steps;
    session->last_used = absl::Now();
  };
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Prepared> prepared, Prepare(session.get(), req));
  SLUICE_RETURN_IF_ERROR(CheckFeeds(*prepared, req));
  // Random: a stranger cannot abort or feed a step before it exists by guessing its id, and
  // two masters (or one restarted) never give a worker the same id.
  const int64_t step_id = absl::Uniform<int64_t>(absl::BitGen(), 1, INT64_MAX);
  const absl::Duration timeout =
      req.timeout_ms() > 0 ? absl::Milliseconds(req.timeout_ms()) : options_.default_step_timeout;
  // A task the step needs may not be up yet (a master started before its workers).
  std::vector<std::string> tasks;
  for (const auto& part : prepared->parts) {
    tasks.push_back(options_.workers[part.worker].task_prefix());
  }
  SLUICE_RETURN_IF_ERROR(monitor_.AwaitFirstAnswers(
      tasks, options_.wait_for_tasks, absl::Seconds(5), [step_id](const std::string& line) {
        std::fprintf(stderr, "sluice master: step %lld is %s\n", static_cast<long long>(step_id),
                     line.c_str());
      }));
  std::vector<StepCoordinator::Partition> runs;
  {
    absl::MutexLock lock(&session->mu);  // Serialises (re)registration of this session's parts.
    for (auto& part : prepared->parts) {
      SLUICE_RETURN_IF_ERROR(monitor_.health(options_.workers[part.worker].task_prefix()));
      SLUICE_RETURN_IF_ERROR(EnsureRegistered(&part));
      StepCoordinator::Partition run;
      run.worker = options_.workers[part.worker];
      run.request.set_graph_handle(part.handle);
      run.request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
      run.request.set_trace(req.trace());
      for (int pos : part.feed_positions) *run.request.add_feeds() = req.feeds(pos);
      runs.push_back(std::move(run));
    }
  }
  StepRunOptions step_options;
  step_options.deadline = absl::Now() + timeout;
  step_options.abandoned = std::move(abandoned);
  std::vector<std::pair<int64_t, int64_t>> call_times;
  if (req.trace()) step_options.call_times = &call_times;
  watchdog_.Begin(step_id, tasks);
  absl::StatusOr<std::vector<proto::RunGraphResponse>> results =
      coordinator_.Run(step_id, std::move(runs), step_options);
  watchdog_.End(step_id);
  if (!results.ok()) {
    // A worker that restarted since the last heartbeat has none of our partitions (and had no
    // chance to tell us its new incarnation): register the one it named again next step.
    if (absl::IsNotFound(results.status())) {
      absl::MutexLock lock(&session->mu);
      for (auto& part : prepared->parts) {
        if (!part.handle.empty() &&
            absl::StrContains(results.status().message(),
                              absl::StrCat("unknown graph handle '", part.handle, "'"))) {
          part.handle.clear();
        }
      }
    }
    return NameLostTaskWork(*prepared, results.status());
  }
  for (size_t i = 0; i < prepared->fetch_slots.size(); ++i) {
    auto [part, index] = prepared->fetch_slots[i];
    proto::NamedTensor* out = resp->add_fetches();
    out->set_name(req.fetches(i));
    *out->mutable_tensor() = (*results)[part].fetches(index).tensor();
  }
  resp->set_step_id(step_id);
  if (req.trace()) FillStepStats(*prepared, call_times, received_ns, &*results, resp);
  return absl::OkStatus();
}

void Master::FillStepStats(const Prepared& prepared,
                           const std::vector<std::pair<int64_t, int64_t>>& call_times,
                           int64_t received_ns, std::vector<proto::RunGraphResponse>* results,
                           proto::RunStepResponse* resp) const {
  proto::StepStats* stats = resp->mutable_step_stats();
  stats->set_master_received_ns(received_ns);
  for (size_t i = 0; i < prepared.parts.size() && i < results->size(); ++i) {
    proto::RunGraphResponse& r = (*results)[i];
    proto::TaskStepStats* task = stats->add_tasks();
    task->set_task(options_.workers[prepared.parts[i].worker].task_prefix());
    const auto [sent, done] = call_times[i];
    task->set_call_sent_ns(sent);
    task->set_call_done_ns(done);
    task->set_received_ns(r.received_ns());
    task->set_replied_ns(r.replied_ns());
    // NTP: the call's two legs are assumed equally long.
    task->set_clock_offset_ns(((r.received_ns() - sent) + (r.replied_ns() - done)) / 2);
    task->set_clock_error_ns(((done - sent) - (r.replied_ns() - r.received_ns())) / 2);
    task->mutable_nodes()->Swap(r.mutable_node_stats());
  }
  stats->set_master_replied_ns(absl::GetCurrentTimeNanos());
}

grpc::Status Master::RunStep(grpc::ServerContext* ctx, const proto::RunStepRequest* req,
                             proto::RunStepResponse* resp) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  grpc::Status v = ToGrpc(CheckProtocolVersion(req->protocol_version(), "RunStep"));
  if (!v.ok()) return v;
  // A client that goes away (killed, or its deadline passed) cancels its step on the workers.
  return ToGrpc(RunStepImpl(*req, resp, ClientIdentity(ctx),
                            [ctx] { return ctx != nullptr && ctx->IsCancelled(); }));
}

}  // namespace sluice
