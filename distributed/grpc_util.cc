#include "distributed/grpc_util.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "distributed/auth.h"
#include "distributed/tls.h"
#include "grpc/grpc.h"

namespace sluice {

void SelectGrpcPollingEngine() {
  static absl::once_flag once;
  absl::call_once(once, [] {
    // setenv while gRPC's threads may read the environment would race; before init none run.
    if (!grpc_is_initialized()) setenv("GRPC_POLL_STRATEGY", "poll", /*overwrite=*/0);
  });
}

absl::Status KeepFreedHeapMemoryForReuse() {
#if defined(__has_feature)  // clang: no __SANITIZE_*__ macros.
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(SLUICE_SANITIZED)
  return absl::OkStatus();  // The sanitizer's allocator replaces glibc's; nothing to tune.
#else
  // Either setting also turns off glibc's dynamic threshold, so both are set explicitly.
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 || mallopt(M_TRIM_THRESHOLD, 256 << 20) != 1) {
    return absl::InternalError("glibc refused the malloc settings (mallopt)");
  }
  return absl::OkStatus();
#endif
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // The message travels in a trailer; one over the peer's metadata limit (8 KiB by default)
  // would replace the error with "metadata size exceeds limit".
  constexpr size_t kMaxMessage = 4096;
  std::string message(s.message());
  if (message.size() > kMaxMessage) {
    const size_t full = message.size();
    message.resize(kMaxMessage - 64);
    absl::StrAppend(&message, "... (", full, " bytes, cut)");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message));
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  if (s.error_message().empty()) {
    // gRPC's own refusals can come without text (say, a service the server does not offer).
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        "no message from the peer (is the address that of the right kind of "
                        "Sluice task?)");
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

namespace {

// The channel arguments of TuneForBulkData.
constexpr std::pair<const char*, int> kBulkSettings[] = {
    {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20},  // The receive window.
    {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1},    // HTTP/2's largest frame.
    {GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10},     {GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20},
    {GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 1 << 20},
};

grpc::ChannelArguments BaseArgs(int max_message_bytes, absl::Duration keepalive) {
  grpc::ChannelArguments args;
  if (keepalive > absl::ZeroDuration()) {
    const int ms =
        static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(keepalive), 1, INT32_MAX));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // A stalled call keeps pinging.
  }
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A restarted peer is reached again within a second (gRPC's default backoff grows to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (max_message_bytes >= 0) {
    args.SetMaxReceiveMessageSize(max_message_bytes);
    args.SetMaxSendMessageSize(max_message_bytes);
  }
  return args;
}

}  // namespace

void TuneForBulkData(grpc::ChannelArguments* args) {
  for (const auto& [key, value] : kBulkSettings) args->SetInt(key, value);
}

void TuneForBulkData(grpc::ServerBuilder* builder) {
  for (const auto& [key, value] : kBulkSettings) builder->AddChannelArgument(key, value);
}

void AcceptKeepalivePings(grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);  // 0: no limit.
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_message_bytes,
                                           absl::Duration keepalive) {
  SelectGrpcPollingEngine();
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, ChannelCredentials(), BaseArgs(max_message_bytes, keepalive),
      ClusterTokenInterceptors());
}

std::shared_ptr<grpc::Channel> MakeDataChannel(const std::string& address, int max_message_bytes,
                                               absl::Duration keepalive) {
  SelectGrpcPollingEngine();
  grpc::ChannelArguments args = BaseArgs(max_message_bytes, keepalive);
  TuneForBulkData(&args);
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, ChannelCredentials(),
                                                                 args, ClusterTokenInterceptors());
}

grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& msg) {
  grpc::Slice slice(msg.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool ParseFromByteBuffer(const grpc::ByteBuffer& buf, google::protobuf::Message* msg) {
  std::vector<grpc::Slice> slices;
  if (!buf.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return msg->ParseFromString(bytes);
}

}  // namespace sluice
