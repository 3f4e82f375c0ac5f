// Small gRPC helpers shared by the distributed runtime: status conversion, channel creation
// with a dedicated connection, and protobuf <-> raw ByteBuffer. Thread-safe: stateless.
//
//   auto channel = MakeChannel("127.0.0.1:5001", /*max_message_bytes=*/64 << 10);
//   return FromGrpc(stub->Heartbeat(&ctx, req, &resp));
#ifndef SLUICE_DISTRIBUTED_GRPC_UTIL_H_
#define SLUICE_DISTRIBUTED_GRPC_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace sluice {

// Makes gRPC use its "poll" polling engine in this process unless GRPC_POLL_STRATEGY is set.
// Linux's default, epoll1, shares one epoll set among all of a process's polling threads, so the
// data plane's bulk reads and a control message's wake-up bounce between threads; on a busy
// machine that cost half the data-plane throughput and made control round trips 3-4x slower
// under a transfer (docs/benchmarks.md). gRPC reads the choice when it initialises, so this
// runs before the first channel or server is built (MakeChannel, MakeDataChannel and Server
// call it); once gRPC is initialised it changes nothing. Thread-safe.
void SelectGrpcPollingEngine();

// Makes glibc keep freed heap memory for reuse; for server processes (sluice_server calls it
// first thing). gRPC reads each incoming message into fresh heap buffers of up to 1 MiB, and by
// default glibc hands such memory back to the kernel as soon as it is freed (per-thread arenas
// are trimmed with madvise; larger blocks are mapped and unmapped), so every read page-faulted
// and zeroed its buffer afresh: about a third of a receiving server's CPU at 1 MiB tensors.
// Blocks under 32 MiB (glibc's largest allowed mmap threshold) now come from the heap, and up
// to 256 MiB of free heap top is kept. Fails when glibc refuses a setting; does nothing in
// sanitizer builds (their allocator replaces glibc's).
absl::Status KeepFreedHeapMemoryForReuse();

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// A channel on its own TCP connection (a local subchannel pool, so the control and data
// channels to one worker never share a connection). max_message_bytes < 0: gRPC's default.
// keepalive > 0: while a call is open, the channel pings the peer every `keepalive` and breaks
// the connection (its calls fail with Unavailable) when an answer takes longer than `keepalive`;
// gRPC also sets the socket's TCP_USER_TIMEOUT to `keepalive`, which (Linux 5.11 and later)
// breaks a connection whose writes have been stuck that long, e.g. on a peer that stopped
// reading. So a call to a hung peer ends by itself. The peer's server must AcceptKeepalivePings.
// Every call carries the process's cluster token, if it has one (auth.h).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_message_bytes = -1,
                                           absl::Duration keepalive = absl::ZeroDuration());

// The same for the data plane, tuned for bulk transfer (see TuneForBulkData).
std::shared_ptr<grpc::Channel> MakeDataChannel(const std::string& address,
                                               int max_message_bytes = -1,
                                               absl::Duration keepalive = absl::ZeroDuration());

// Lets clients ping this server as often as they like: gRPC's default refuses pings more often
// than every 5 minutes without data and closes the connection of a client that keeps trying.
void AcceptKeepalivePings(grpc::ServerBuilder* builder);

// Transport settings for bulk tensor bytes, applied on both ends of a data-plane connection:
// a large HTTP/2 receive window, so a sender is not stalled waiting for window updates every
// 64 KiB; large frames; and large TCP reads, so a 1 MiB chunk arrives in a few reads instead
// of hundreds of 8 KiB ones.
void TuneForBulkData(grpc::ChannelArguments* args);
void TuneForBulkData(grpc::ServerBuilder* builder);

grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& msg);
bool ParseFromByteBuffer(const grpc::ByteBuffer& buf, google::protobuf::Message* msg);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_GRPC_UTIL_H_
