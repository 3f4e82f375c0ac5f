#include "distributed/remote_session.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "distributed/grpc_util.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "ops/state_ops.h"
#include "runtime/session/checkpoint.h"

namespace sluice {
namespace {

constexpr absl::string_view kCheckpointScope = "_checkpoint/";

std::string CheckpointNode(absl::string_view variable, absl::string_view role) {
  return absl::StrCat(kCheckpointScope, variable, "/", role);
}

// `graph` plus, for every variable, a handle to read it, a placeholder for a restored value and
// an Assign of that value; all on the variable's requested device (the placer colocates the
// Assign with the variable anyway).
absl::StatusOr<std::shared_ptr<const Graph>> WithCheckpointNodes(
    std::shared_ptr<const Graph> graph) {
  std::map<std::string, const Node*> variables;  // By variable name; the first node wins.
  for (const Node* n : graph->nodes()) {
    if (n->op() == "Variable") variables.emplace(VariableNameOf(*n), n);
  }
  if (variables.empty()) return graph;
  proto::GraphDef def;
  ToGraphDef(*graph, &def);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Graph> g, GraphFromGraphDefUnfinalized(def));
  for (const auto& [name, var] : variables) {
    const DType dtype = var->output_type(0);
    const TensorShape shape =
        var->GetAttr<TensorShape>("shape").value_or(TensorShape::UnknownRank());
    NodeSpec handle{.name = CheckpointNode(name, "handle"), .op = "Variable"};
    handle.attrs = {
        {"dtype", AttrValue(dtype)}, {"shape", AttrValue(shape)}, {"shared_name", AttrValue(name)}};
    handle.device = var->requested_device();
    SLUICE_ASSIGN_OR_RETURN(Node * h, g->AddNode(std::move(handle)));
    NodeSpec value{.name = CheckpointNode(name, "value"), .op = "Placeholder"};
    value.attrs = {{"dtype", AttrValue(dtype)}, {"shape", AttrValue(shape)}};
    value.device = var->requested_device();
    SLUICE_ASSIGN_OR_RETURN(Node * v, g->AddNode(std::move(value)));
    NodeSpec assign{.name = CheckpointNode(name, "restore"), .op = "Assign"};
    assign.inputs = {Endpoint{h, 0}, Endpoint{v, 0}};
    assign.attrs = {{"initializes", AttrValue(true)}};
    assign.device = var->requested_device();
    SLUICE_RETURN_IF_ERROR(g->AddNode(std::move(assign)).status());
  }
  SLUICE_RETURN_IF_ERROR(g->Finalize());
  return std::shared_ptr<const Graph>(std::move(g));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteSession>> RemoteSession::Create(
    const std::string& master_address, std::shared_ptr<const Graph> graph,
    const RemoteSessionOptions& options) {
  std::unique_ptr<RemoteSession> s(new RemoteSession);
  s->options_ = options;
  if (options.checkpoint_ops) {
    SLUICE_ASSIGN_OR_RETURN(s->graph_, WithCheckpointNodes(std::move(graph)));
  } else {
    s->graph_ = std::move(graph);
  }
  // RunStep responses carry whole fetched tensors: no message cap on this channel.
  std::shared_ptr<grpc::Channel> channel = MakeChannel(master_address, INT32_MAX);
  s->stub_ = proto::Master::NewStub(channel);
  proto::CreateSessionRequest req;
  req.set_protocol_version(kProtocolVersion);
  ToGraphDef(*s->graph_, req.mutable_graph());
  *req.mutable_config() = options.config;
  proto::CreateSessionResponse resp;
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);  // A master that is still starting gets connect_timeout.
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options.connect_timeout));
  grpc::Status status = s->stub_->CreateSession(&ctx, req, &resp);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
    // Never connected, and waiting hides why. A call that changes nothing (ListDevices) and
    // fails fast, on a fresh connection (the channel's own attempt may just have been cut
    // short), reports what connecting ran into, e.g. "Connection refused".
    grpc::ClientContext probe;
    probe.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    proto::ListDevicesRequest list;
    list.set_protocol_version(kProtocolVersion);
    proto::ListDevicesResponse devices;
    grpc::Status reach =
        proto::Master::NewStub(MakeChannel(master_address))->ListDevices(&probe, list, &devices);
    if (reach.error_code() == grpc::StatusCode::UNAVAILABLE) {
      status = grpc::Status(
          reach.error_code(),
          absl::StrCat("no answer within ", absl::FormatDuration(options.connect_timeout), ": ",
                       reach.error_message()));
    }
  }
  SLUICE_RETURN_IF_ERROR(AnnotateStatus(
      FromGrpc(status), absl::StrCat("creating a session on master ", master_address)));
  s->handle_ = resp.session_handle();
  return s;
}

RemoteSession::~RemoteSession() {
  if (handle_.empty()) return;
  proto::CloseSessionRequest req;
  req.set_protocol_version(kProtocolVersion);
  req.set_session_handle(handle_);
  proto::CloseSessionResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  (void)stub_->CloseSession(&ctx, req, &resp);
}

absl::Status RemoteSession::Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                                const std::vector<std::string>& fetches,
                                const std::vector<std::string>& targets,
                                std::vector<Tensor>* outputs) {
  return Run(feeds, fetches, targets, outputs, nullptr);
}

absl::Status RemoteSession::Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                                const std::vector<std::string>& fetches,
                                const std::vector<std::string>& targets,
                                std::vector<Tensor>* outputs, RunMetadata* metadata) {
  proto::RunStepRequest req;
  req.set_trace(metadata != nullptr);
  req.set_protocol_version(kProtocolVersion);
  req.set_session_handle(handle_);
  req.set_timeout_ms(absl::ToInt64Milliseconds(options_.step_timeout));
  for (const auto& [name, value] : feeds) {
    proto::NamedTensor* f = req.add_feeds();
    f->set_name(name);
    TensorToProto(value, f->mutable_tensor());
  }
  for (const auto& f : fetches) req.add_fetches(f);
  for (const auto& t : targets) req.add_targets(t);
  proto::RunStepResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.step_timeout + absl::Seconds(5)));
  const int64_t sent = absl::GetCurrentTimeNanos();
  SLUICE_RETURN_IF_ERROR(FromGrpc(stub_->RunStep(&ctx, req, &resp)));
  if (metadata != nullptr) {
    metadata->client_done_ns = absl::GetCurrentTimeNanos();
    metadata->client_sent_ns = sent;
    metadata->step_stats = std::move(*resp.mutable_step_stats());
  }
  outputs->clear();
  for (const proto::NamedTensor& t : resp.fetches()) {
    SLUICE_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(t.tensor()));
    outputs->push_back(std::move(value));
  }
  return absl::OkStatus();
}

absl::Status RemoteSession::Run(const std::vector<std::pair<Output, Tensor>>& feeds,
                                const std::vector<Output>& fetches, std::vector<Tensor>* outputs,
                                const std::vector<Output>& targets) {
  std::vector<std::pair<std::string, Tensor>> f;
  for (const auto& [o, t] : feeds) f.emplace_back(o.name(), t);
  std::vector<std::string> names, target_names;
  for (const Output& o : fetches) names.push_back(o.name());
  for (const Output& o : targets) target_names.push_back(o.node()->name());
  return Run(f, names, target_names, outputs);
}

absl::StatusOr<std::vector<std::string>> RemoteSession::ListDevices() {
  proto::ListDevicesRequest req;
  req.set_protocol_version(kProtocolVersion);
  proto::ListDevicesResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.connect_timeout));
  SLUICE_RETURN_IF_ERROR(FromGrpc(stub_->ListDevices(&ctx, req, &resp)));
  return std::vector<std::string>(resp.devices().begin(), resp.devices().end());
}

absl::Status RemoteSession::Save(const std::string& path, const std::vector<std::string>& names) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> wanted, VariablesToSave(*graph_, path, names));
  if (wanted.empty()) return WriteCheckpoint(path, {});
  if (graph_->FindNode(CheckpointNode(wanted[0], "handle")) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "saving checkpoint '", path, "': the session was created without checkpoint_ops"));
  }
  std::vector<std::string> fetches;
  for (const std::string& name : wanted) fetches.push_back(CheckpointNode(name, "handle"));
  std::vector<Tensor> values;
  SLUICE_RETURN_IF_ERROR(
      AnnotateStatus(Run({}, fetches, {}, &values),
                     absl::StrCat("saving checkpoint '", path, "'; nothing was saved")));
  std::vector<std::pair<std::string, Tensor>> entries;
  for (size_t i = 0; i < wanted.size(); ++i) entries.emplace_back(wanted[i], values[i]);
  return WriteCheckpoint(path, std::move(entries));
}

absl::Status RemoteSession::Restore(const std::string& path,
                                    const std::vector<std::string>& names) {
  SLUICE_ASSIGN_OR_RETURN(auto values, ReadCheckpointForRestore(*graph_, path, names));
  if (values.empty()) return absl::OkStatus();
  if (graph_->FindNode(CheckpointNode(values[0].first, "restore")) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restoring checkpoint '", path, "': the session was created without checkpoint_ops"));
  }
  std::vector<std::pair<std::string, Tensor>> feeds;
  std::vector<std::string> targets;
  for (auto& [name, value] : values) {
    feeds.emplace_back(CheckpointNode(name, "value"), std::move(value));
    targets.push_back(CheckpointNode(name, "restore"));
  }
  std::vector<Tensor> unused;
  return AnnotateStatus(Run(feeds, {}, targets, &unused),
                        absl::StrCat("restoring checkpoint '", path, "'"));
}

}  // namespace sluice
