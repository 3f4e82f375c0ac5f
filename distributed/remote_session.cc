#include "distributed/remote_session.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "distributed/chunk_codec.h"
#include "distributed/grpc_util.h"
#include "graph/graph_def.h"

namespace sluice {

absl::StatusOr<std::unique_ptr<RemoteSession>> RemoteSession::Create(
    const std::string& master_address, std::shared_ptr<const Graph> graph,
    const RemoteSessionOptions& options) {
  std::unique_ptr<RemoteSession> s(new RemoteSession);
  s->options_ = options;
  // RunStep responses carry whole fetched tensors: no message cap on this channel.
  s->stub_ = proto::Master::NewStub(MakeChannel(master_address, /*max_message_bytes=*/INT32_MAX));
  proto::CreateSessionRequest req;
  req.set_protocol_version(kProtocolVersion);
  ToGraphDef(*graph, req.mutable_graph());
  proto::CreateSessionResponse resp;
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options.connect_timeout));
  RETURN_IF_ERROR(AnnotateStatus(FromGrpc(s->stub_->CreateSession(&ctx, req, &resp)),
                                 absl::StrCat("creating a session on master ", master_address)));
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
  proto::RunStepRequest req;
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
  RETURN_IF_ERROR(FromGrpc(stub_->RunStep(&ctx, req, &resp)));
  outputs->clear();
  for (const proto::NamedTensor& t : resp.fetches()) {
    ASSIGN_OR_RETURN(Tensor value, TensorFromProto(t.tensor()));
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
  RETURN_IF_ERROR(FromGrpc(stub_->ListDevices(&ctx, req, &resp)));
  return std::vector<std::string>(resp.devices().begin(), resp.devices().end());
}

}  // namespace sluice
