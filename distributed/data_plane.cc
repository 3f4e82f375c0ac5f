#include "distributed/data_plane.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"
#include "distributed/auth.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/support/method_handler.h"

namespace sluice {

DataPlaneService::DataPlaneService(TensorMailbox* mailbox, ChunkOptions options,
                                   AssemblerLimits limits, Metrics* metrics)
    : mailbox_(mailbox), options_(options), limits_(limits), metrics_(metrics) {
  // Hand-registered raw methods: the payload never passes through a protobuf message.
  AddMethod(new grpc::internal::RpcServiceMethod(
      kDataPushMethod, grpc::internal::RpcMethod::CLIENT_STREAMING,
      new grpc::internal::ClientStreamingHandler<DataPlaneService, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](DataPlaneService* s, grpc::ServerContext* ctx,
             grpc::ServerReader<grpc::ByteBuffer>* reader,
             grpc::ByteBuffer* resp) { return s->Push(ctx, reader, resp); },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kDataPullMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<DataPlaneService, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](DataPlaneService* s, grpc::ServerContext* ctx, const grpc::ByteBuffer* req,
             grpc::ServerWriter<grpc::ByteBuffer>* writer) { return s->Pull(ctx, req, writer); },
          this)));
}

grpc::Status DataPlaneService::Push(grpc::ServerContext* ctx,
                                    grpc::ServerReader<grpc::ByteBuffer>* reader,
                                    grpc::ByteBuffer* response) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  ChunkAssembler assembler(limits_);
  grpc::ByteBuffer msg;
  int64_t count = 0;
  std::string from = "unknown";  // The sending task, as its DataClient names itself.
  auto named = ctx->client_metadata().find(kDataSenderMetadata);
  if (named != ctx->client_metadata().end())
    from.assign(named->second.data(), named->second.size());
  while (reader->Read(&msg)) {
    if (metrics_ != nullptr) {
      metrics_->Add("sluice_bytes_received_total", {{"plane", "data"}, {"peer", from}},
                    static_cast<double>(msg.Length()));
    }
    const int64_t abandoned = assembler.abandoned();
    absl::StatusOr<bool> done = assembler.Add(msg);
    if (!done.ok()) {
      // The partial tensor is dropped with the assembler; the peer gets the reason.
      bad_streams_.fetch_add(1);
      return ToGrpc(done.status());
    }
    if (assembler.abandoned() != abandoned) {
      mailbox_->NotifyAbandoned(assembler.last_abandoned_key());  // Its credit comes back.
      continue;
    }
    if (*done) {
      ChunkAssembler::Received r = assembler.Take();
      absl::Status put = mailbox_->Put(r.step_id, r.key, std::move(r.tensor), r.resent);
      // A tensor for an aborted or ended step is dropped; the stream stays usable for others.
      if (!put.ok() && !absl::IsAlreadyExists(put)) continue;
      if (!put.ok()) return ToGrpc(put);
      ++count;
      tensors_received_.fetch_add(1);
    }
  }
  absl::Status finish = assembler.Finish();
  if (!finish.ok()) {
    bad_streams_.fetch_add(1);
    return ToGrpc(finish);
  }
  proto::PushResponse out;
  out.set_tensors(count);
  *response = SerializeToByteBuffer(out);
  return grpc::Status::OK;
}

grpc::Status DataPlaneService::Pull(grpc::ServerContext* ctx, const grpc::ByteBuffer* request,
                                    grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  if (grpc::Status auth = CheckClusterToken(ctx); !auth.ok()) return auth;
  proto::PullRequest req;
  if (!ParseFromByteBuffer(*request, &req)) {
    bad_streams_.fetch_add(1);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Pull request is not a PullRequest");
  }
  grpc::Status version = ToGrpc(CheckProtocolVersion(req.protocol_version(), "data-plane Pull"));
  if (!version.ok()) return version;
  struct Wait {
    absl::Notification n;
    absl::StatusOr<Tensor> t;
  };
  auto wait = std::make_shared<Wait>();
  mailbox_->RecvAsync(req.step_id(), req.key(), [wait](absl::StatusOr<Tensor> t) {
    wait->t = std::move(t);
    wait->n.Notify();
  });
  // Poll for the caller giving up (deadline, cancel, server shutdown): the sync API has no
  // cancellation callback. Giving up aborts the step's receives on this worker.
  while (!wait->n.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
    if (ctx->IsCancelled()) {
      mailbox_->AbortStep(req.step_id(),
                          absl::CancelledError(absl::StrCat("Pull of '", req.key(), "' of step ",
                                                            req.step_id(), " was cancelled")));
    }
  }
  absl::StatusOr<Tensor> t = std::move(wait->t);
  if (!t.ok()) return ToGrpc(t.status());  // Aborted, or the step has ended here.
  ChunkEncoder enc(req.step_id(), req.key(), *std::move(t), options_);
  grpc::ByteBuffer msg;
  while (enc.Next(&msg)) {
    if (!writer->Write(msg)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "puller went away");
    }
  }
  return grpc::Status::OK;
}

DataClient::DataClient(std::shared_ptr<grpc::Channel> channel, ChunkOptions options,
                       Metrics* metrics, std::string self, std::string peer)
    : channel_(std::move(channel)),
      options_(options),
      metrics_(metrics),
      self_(std::move(self)),
      peer_(std::move(peer)) {}

DataClient::~DataClient() {
  {
    absl::MutexLock lock(&listener_mu_);
    stop_watching_ = true;
    listener_ = nullptr;
  }
  if (watcher_.joinable()) watcher_.join();
  (void)Close();
}

bool DataClient::Cancelled() {
  absl::MutexLock lock(&cancel_mu_);
  return cancelled_;
}

bool DataClient::StreamLost() {
  absl::MutexLock lock(&cancel_mu_);
  return stream_lost_;
}

void DataClient::SetConnectionLostListener(std::function<void()> listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
  if (listener_ && !watcher_.joinable()) watcher_ = std::thread([this] { WatchConnection(); });
  // A listener being replaced may be running: wait for it (never called under listener_mu_,
  // which the caller may take under locks of its own).
  listener_mu_.Await(absl::Condition(
      +[](int* calls) { return *calls == 0; }, &listener_calls_));
}

void DataClient::WatchConnection() {
  // A connection's loss shows as the channel out of READY while a stream that has carried a
  // write is open. The watcher checks that state, not a READY -> not-READY transition: a
  // watcher starved on a busy machine can miss a connection's whole life (connect, write,
  // cut). The short wait bounds how long the destructor waits for this thread and how late a
  // loss is seen; a wake-up costs a few microseconds.
  grpc_connectivity_state last = channel_->GetState(/*try_to_connect=*/false);
  while (true) {
    {
      absl::MutexLock lock(&listener_mu_);
      if (stop_watching_) return;
    }
    channel_->WaitForStateChange(last, absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
    last = channel_->GetState(/*try_to_connect=*/false);
    if (last != GRPC_CHANNEL_READY) ConnectionLost();
  }
}

void DataClient::ConnectionLost() {
  {
    absl::MutexLock lock(&cancel_mu_);
    // No stream, or one that never carried a write (it may still be connecting), or one whose
    // loss was already reported: nothing new was lost.
    if (live_ctx_ == nullptr || !stream_written_ || stream_lost_) return;
    stream_lost_ = true;
    live_ctx_->TryCancel();  // A Push blocked in a write returns; the next one reopens.
  }
  std::function<void()> listener;
  {
    absl::MutexLock lock(&listener_mu_);
    if (!listener_) return;
    listener = listener_;
    ++listener_calls_;
  }
  listener();
  absl::MutexLock lock(&listener_mu_);
  --listener_calls_;
}

absl::Status DataClient::OpenLocked() {
  if (Cancelled()) {
    (void)CloseLocked();  // The stream CancelStream broke, if one is open.
    return absl::UnavailableError("the data stream to this peer was cancelled (peer lost)");
  }
  if (push_) return absl::OkStatus();
  push_ctx_ = std::make_unique<grpc::ClientContext>();
  if (!self_.empty()) push_ctx_->AddMetadata(kDataSenderMetadata, self_);
  push_response_.Clear();
  grpc::internal::RpcMethod method(kDataPushMethod, grpc::internal::RpcMethod::CLIENT_STREAMING);
  {
    // Before the call starts, which waits for a hung peer's handshake: CancelStream ends that.
    absl::MutexLock lock(&cancel_mu_);
    if (cancelled_) {
      push_ctx_.reset();
      return absl::UnavailableError("the data stream to this peer was cancelled (peer lost)");
    }
    live_ctx_ = push_ctx_.get();
    stream_lost_ = false;
    stream_written_ = false;
  }
  push_.reset(grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
      channel_.get(), method, push_ctx_.get(), &push_response_));
  return absl::OkStatus();
}

absl::Status DataClient::CloseLocked() {
  if (!push_) return absl::OkStatus();
  push_->WritesDone();
  grpc::Status s = push_->Finish();
  {
    absl::MutexLock lock(&cancel_mu_);
    live_ctx_ = nullptr;
  }
  push_.reset();
  push_ctx_.reset();
  return FromGrpc(s);
}

absl::Status DataClient::Push(int64_t step_id, const std::string& key, const Tensor& tensor,
                              const std::function<bool()>& stop, bool resent) {
  absl::MutexLock lock(&mu_);
  const bool fresh = push_ == nullptr;
  absl::Status s = PushLocked(step_id, key, tensor, stop, resent);
  // A new stream's first write can fail on a connection the channel had not yet seen die (the
  // peer restarted while the link was idle): nothing was delivered, so try once on another.
  if (absl::IsUnavailable(s) && fresh && push_ == nullptr && !Cancelled()) {
    s = PushLocked(step_id, key, tensor, stop, resent);
  }
  return s;
}

absl::Status DataClient::PushLocked(int64_t step_id, const std::string& key, const Tensor& tensor,
                                    const std::function<bool()>& stop, bool resent) {
  // A stream is reused only while its connection is up: a write into a connection that died
  // (a keepalive gave up, the peer restarted) can still report success, losing the tensor.
  if (push_ &&
      (channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY || StreamLost())) {
    push_ctx_->TryCancel();
    (void)CloseLocked();
  }
  SLUICE_RETURN_IF_ERROR(OpenLocked());
  ChunkEncoder enc(step_id, key, tensor, options_, resent);
  grpc::ByteBuffer msg;
  bool wrote = false;
  while (enc.has_more()) {
    if (stop && stop()) {
      const int64_t sent = enc.sent_bytes();
      if (sent > 0) {
        enc.Abandon(&msg);
        push_->Write(msg);  // A broken stream shows up at the next Push or Close.
      }
      return absl::CancelledError(absl::StrCat("push of tensor '", key, "' of step ", step_id,
                                               " stopped after ", sent, " of ", tensor.TotalBytes(),
                                               " bytes"));
    }
    enc.Next(&msg);
    const size_t bytes = msg.Length();
    if (!push_->Write(msg)) {
      // The stream broke: its final status says why (peer gone, chunk rejected, ...), unless
      // the watcher cancelled it because its connection was lost.
      const bool lost = StreamLost();
      absl::Status s = CloseLocked();
      if (lost) s = absl::UnavailableError("the data connection to the peer was lost");
      if (s.ok()) s = absl::UnavailableError("data-plane stream closed by the peer");
      return AnnotateStatus(s, absl::StrCat("pushing tensor '", key, "' of step ", step_id));
    }
    if (metrics_ != nullptr) {
      metrics_->Add("sluice_bytes_sent_total", {{"plane", "data"}, {"peer", peer_}},
                    static_cast<double>(bytes));
    }
    if (!wrote) {
      wrote = true;
      absl::MutexLock lock(&cancel_mu_);
      stream_written_ = true;
    }
  }
  return absl::OkStatus();
}

absl::Status DataClient::Close() {
  absl::MutexLock lock(&mu_);
  return CloseLocked();
}

void DataClient::ResetStream() {
  absl::MutexLock lock(&mu_);
  if (!push_) return;
  push_ctx_->TryCancel();  // Finish must not wait for a peer that may never answer.
  (void)CloseLocked();
}

void DataClient::CancelStream() {
  absl::MutexLock lock(&cancel_mu_);
  cancelled_ = true;
  if (live_ctx_ != nullptr) live_ctx_->TryCancel();
}

absl::StatusOr<Tensor> DataClient::Pull(int64_t step_id, const std::string& key,
                                        absl::Duration timeout) {
  proto::PullRequest req;
  req.set_protocol_version(kProtocolVersion);
  req.set_step_id(step_id);
  req.set_key(key);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::internal::RpcMethod method(kDataPullMethod, grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel_.get(), method, &ctx,
                                                                    SerializeToByteBuffer(req)));
  ChunkAssembler assembler;
  grpc::ByteBuffer msg;
  bool complete = false;
  absl::Status bad;
  while (reader->Read(&msg)) {
    if (complete || !bad.ok()) continue;  // Drain.
    absl::StatusOr<bool> done = assembler.Add(msg);
    if (!done.ok()) {
      bad = done.status();
      ctx.TryCancel();
      continue;
    }
    complete = *done;
  }
  grpc::Status s = reader->Finish();
  SLUICE_RETURN_IF_ERROR(bad);
  SLUICE_RETURN_IF_ERROR(FromGrpc(s));
  if (!complete) SLUICE_RETURN_IF_ERROR(assembler.Finish());
  if (!complete) return absl::InternalError("Pull ended without a tensor");
  return assembler.Take().tensor;
}

}  // namespace sluice
