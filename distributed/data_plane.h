// Data plane: the worker's tensor-transfer service and its client, on their own gRPC port and
// channel so bulk bytes never queue ahead of control messages.
//
// Both methods are raw byte-buffer methods framed by chunk_codec.h: Push streams chunks of any
// number of tensors into the server's TensorMailbox; Pull streams back the chunks of one tensor
// the server holds (waiting for it until the call's deadline; failing at once when the step
// was aborted or has ended there). DataClient keeps one Push stream per peer open and
// serialises writers on it. Thread-safe.
//
// A push returns once gRPC accepted the tensor's bytes, not once the peer has them: when the
// connection under the stream dies afterwards (a keepalive gives up after a partition healed),
// the bytes may be lost without any call failing. So a client with a connection-lost listener
// watches its channel and calls the listener when the connection under an open push stream
// goes away; the listener (the edge's EdgeSender) pushes the tensors the peer had not
// credited again, as copies the peer drops if the first push did arrive.
//
//   DataPlaneService service(&mailbox, {.chunk_bytes = 256 << 10});  // RegisterService(&service)
//   DataClient client(channel, {.chunk_bytes = 256 << 10});
//   SLUICE_RETURN_IF_ERROR(client.Push(step, "a->b", tensor));
//   SLUICE_ASSIGN_OR_RETURN(Tensor t, client.Pull(step, "b->c", absl::Seconds(5)));
#ifndef SLUICE_DISTRIBUTED_DATA_PLANE_H_
#define SLUICE_DISTRIBUTED_DATA_PLANE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/chunk_codec.h"
#include "distributed/grpc_util.h"
#include "distributed/metrics.h"
#include "distributed/tensor_mailbox.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/support/sync_stream.h"

namespace sluice {

inline constexpr char kDataPushMethod[] = "/sluice.proto.Data/Push";
inline constexpr char kDataPullMethod[] = "/sluice.proto.Data/Pull";
// Push-stream metadata naming the sending task (for the receiver's byte counts).
inline constexpr char kDataSenderMetadata[] = "sluice-sender";

class DataPlaneService : public grpc::Service {
 public:
  // `metrics` (optional, outliving the service) counts the bytes received per sending task.
  DataPlaneService(TensorMailbox* mailbox, ChunkOptions options, AssemblerLimits limits = {},
                   Metrics* metrics = nullptr);

  int64_t tensors_received() const { return tensors_received_.load(); }
  int64_t bad_streams() const { return bad_streams_.load(); }

 private:
  grpc::Status Push(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                    grpc::ByteBuffer* response);
  grpc::Status Pull(grpc::ServerContext* ctx, const grpc::ByteBuffer* request,
                    grpc::ServerWriter<grpc::ByteBuffer>* writer);

  TensorMailbox* mailbox_;
  ChunkOptions options_;
  AssemblerLimits limits_;
  Metrics* metrics_;
  std::atomic<int64_t> tensors_received_{0};
  std::atomic<int64_t> bad_streams_{0};
};

class DataClient {
 public:
  // `metrics` (optional, outliving the client) counts the bytes pushed to `peer`; `self` (this
  // task) goes with every push stream, so the receiver counts them per sender too.
  DataClient(std::shared_ptr<grpc::Channel> channel, ChunkOptions options,
             Metrics* metrics = nullptr, std::string self = "", std::string peer = "");
  ~DataClient();

  // Streams `tensor` to the peer's mailbox under (step_id, key). Returns once gRPC accepted
  // every chunk; the peer's arrival is confirmed by the stream's final response (Close()).
  // `stop`, if given, is asked before each chunk: when it says true the push ends there
  // (CANCELLED), and a tensor already partly sent is abandoned so the peer drops it while
  // the stream stays usable. `resent`: a copy of a tensor pushed before on a connection that
  // was lost (the peer drops it if the first push arrived; ChunkHeader.resent).
  absl::Status Push(int64_t step_id, const std::string& key, const Tensor& tensor,
                    const std::function<bool()>& stop = nullptr, bool resent = false);
  // Ends the push stream and returns the peer's verdict (e.g. a rejected chunk).
  absl::Status Close();
  // Abandons the push stream (the next Push opens a new one). For a peer whose connection
  // broke: a write on a stream whose connection died can still report success once, and the
  // tensor would be lost without an error (the receiver restarted, say).
  void ResetStream();
  // Breaks the push stream for good, from any thread, so a Push blocked in a write (a hung peer
  // stops reading) returns and later Pushes fail at once. For a peer found lost: tensors not
  // yet delivered on the stream are lost with it.
  void CancelStream();
  // Fetches the tensor the peer holds (or will receive) under (step_id, key).
  absl::StatusOr<Tensor> Pull(int64_t step_id, const std::string& key, absl::Duration timeout);

  // Calls `listener` (on a watcher thread) each time the connection under an open push stream
  // is lost; the stream is abandoned (the next Push opens a new one). Tensors pushed on it may
  // not have arrived. Setting nullptr waits for a call in progress; set once per client (the
  // watcher starts with the first listener).
  void SetConnectionLostListener(std::function<void()> listener);

 private:
  bool Cancelled() ABSL_LOCKS_EXCLUDED(cancel_mu_);   // CancelStream ran.
  bool StreamLost() ABSL_LOCKS_EXCLUDED(cancel_mu_);  // The open stream's connection was lost.
  void WatchConnection();
  void ConnectionLost();
  absl::Status OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PushLocked(int64_t step_id, const std::string& key, const Tensor& tensor,
                          const std::function<bool()>& stop, bool resent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<grpc::Channel> channel_;
  ChunkOptions options_;
  Metrics* metrics_;
  const std::string self_, peer_;
  absl::Mutex mu_;
  std::unique_ptr<grpc::ClientContext> push_ctx_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer push_response_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> push_ ABSL_GUARDED_BY(mu_);
  // push_ctx_ for CancelStream, which must not wait for mu_ (a blocked Push holds it).
  absl::Mutex cancel_mu_ ABSL_ACQUIRED_AFTER(mu_);
  grpc::ClientContext* live_ctx_ ABSL_GUARDED_BY(cancel_mu_) = nullptr;
  bool cancelled_ ABSL_GUARDED_BY(cancel_mu_) = false;    // CancelStream ran.
  bool stream_lost_ ABSL_GUARDED_BY(cancel_mu_) = false;  // live_ctx_'s connection went away.
  // A write on live_ctx_'s stream succeeded, so a connection carried it.
  bool stream_written_ ABSL_GUARDED_BY(cancel_mu_) = false;

  absl::Mutex listener_mu_;
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
  int listener_calls_ ABSL_GUARDED_BY(listener_mu_) = 0;  // Calls running now.
  bool stop_watching_ ABSL_GUARDED_BY(listener_mu_) = false;
  std::thread watcher_;  // Started by the first SetConnectionLostListener.
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_DATA_PLANE_H_
