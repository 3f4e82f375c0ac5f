// The sluice_server binary: bad input on its ports is an error, not a crash; its flags take
// effect or are refused with the reason; SIGTERM shuts it down cleanly.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/chunk_codec.h"
#include "distributed/data_plane.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.h"
#include "distributed/remote_session.h"
#include "gtest/gtest.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::kMaxMessage;
using test::Mlp;
using test::SendGarbage;
using test::StartCluster;
using test::StartOneWorker;
using test::StatusHas;
using test::WaitFor;

TEST(SluiceServerTest, BadInputOnBothPortsIsAnErrorNotACrash) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  const LocalCluster::Process& w = cluster->worker(0);
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131) ^ 0x5a);
  SendGarbage(w.control_address, junk);
  SendGarbage(w.data_address, junk);
  SendGarbage(cluster->master_address(), "GET / HTTP/1.1\r\n\r\n");

  // Garbage inside a well-formed gRPC stream on the data port.
  auto raw_push = [&](const std::vector<grpc::ByteBuffer>& msgs) {
    grpc::ClientContext ctx;
    grpc::ByteBuffer resp;
    auto channel = MakeChannel(w.data_address, kMaxMessage);
    grpc::internal::RpcMethod method(kDataPushMethod, grpc::internal::RpcMethod::CLIENT_STREAMING);
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
        grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel.get(), method, &ctx,
                                                                      &resp));
    for (const auto& m : msgs) writer->Write(m);
    writer->WritesDone();
    return FromGrpc(writer->Finish());
  };
  grpc::Slice junk_slice(junk);
  EXPECT_TRUE(StatusHas(raw_push({grpc::ByteBuffer(&junk_slice, 1)}),
                        absl::StatusCode::kInvalidArgument, "data-plane chunk"));
  // A truncated tensor: only the first of its chunks, then the stream ends.
  Tensor t(DType::kFloat32, TensorShape({10000}));
  ChunkEncoder enc(3, "partial", t, {.chunk_bytes = 16384});
  grpc::ByteBuffer first;
  ASSERT_TRUE(enc.Next(&first));
  EXPECT_TRUE(StatusHas(raw_push({first}), absl::StatusCode::kInvalidArgument,
                        "truncated tensor 'partial' (step 3): stream ended after 16384 of 40000"));
  // An oversized chunk (more than the message cap) is refused by gRPC itself.
  ChunkEncoder huge(3, "huge", t, {.chunk_bytes = 40000});
  grpc::ByteBuffer one;
  ASSERT_TRUE(huge.Next(&one));
  Tensor big(DType::kFloat32, TensorShape({1 << 16}));
  ChunkEncoder huge2(4, "huge", big, {.chunk_bytes = 1 << 18});
  ASSERT_TRUE(huge2.Next(&one));
  EXPECT_TRUE(StatusHas(raw_push({one}), absl::StatusCode::kResourceExhausted, ""));

  // Mismatched protocol version, unknown handles.
  auto stub = proto::Control::NewStub(MakeChannel(w.control_address));
  {
    proto::HeartbeatRequest req;
    req.set_protocol_version(7);
    proto::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(
        FromGrpc(stub->Heartbeat(&ctx, req, &resp)), absl::StatusCode::kFailedPrecondition,
        absl::StrCat("Heartbeat: protocol version mismatch: peer speaks 7, this server speaks ",
                     kProtocolVersion)));
  }
  {
    proto::RunGraphRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_graph_handle("no-such-graph");
    proto::RunGraphResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(FromGrpc(stub->RunGraph(&ctx, req, &resp)), absl::StatusCode::kNotFound,
                          "unknown graph handle 'no-such-graph' on /job:worker/task:0"));
  }
  {
    auto master = proto::Master::NewStub(MakeChannel(cluster->master_address()));
    proto::RunStepRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_session_handle("no-such-session");
    proto::RunStepResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(FromGrpc(master->RunStep(&ctx, req, &resp)), absl::StatusCode::kNotFound,
                          "unknown session handle 'no-such-session'"));
  }
  // Still serving, nothing of the bad streams kept.
  proto::HeartbeatResponse beat = Beat(w.control_address);
  EXPECT_EQ(beat.buffered_bytes(), 0);
  EXPECT_EQ(beat.pending_receives(), 0);
  Mlp m;
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok());
  std::vector<Tensor> out;
  EXPECT_TRUE((*remote)->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &out).ok());
}

// Tensors pushed for a step that never runs on the receiver are freed after --orphan_ttl_ms.
// A master-only task serves its Control methods on the sync pool: it answers heartbeats and
// inspection like a worker, and refuses to run a partition, naming itself.
TEST(SluiceServerTest, AMasterOnlyTaskAnswersHeartbeatsAndRefusesPartitions) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  const std::string& master = cluster->master_address();
  EXPECT_NE(Beat(master).identity().incarnation(), 0u);
  auto stub = proto::Control::NewStub(MakeChannel(master));
  proto::RunGraphRequest req;
  req.set_protocol_version(kProtocolVersion);
  req.set_step_id(5);
  proto::RunGraphResponse resp;
  grpc::ClientContext ctx;
  EXPECT_TRUE(StatusHas(FromGrpc(stub->RunGraph(&ctx, req, &resp)),
                        absl::StatusCode::kFailedPrecondition,
                        "/job:master/task:0 is a master-only task: it runs no graph partitions"));
}

TEST(SluiceServerTest, OrphanTensorsExpireAfterTheConfiguredTtl) {
  auto cluster = StartCluster({"--orphan_ttl_ms=300"});
  ASSERT_NE(cluster, nullptr);
  const std::string& w1 = cluster->worker(1).control_address;
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  Tensor orphan(DType::kFloat32, TensorShape({25000}));  // 100,000 bytes for step 700.
  ASSERT_TRUE(client.Push(700, "orphan", orphan).ok());
  ASSERT_TRUE(client.Close().ok());  // Returns once the server has it.
  EXPECT_EQ(Beat(w1).buffered_bytes(), 100000);
  // Expiry is checked by later mailbox calls: keep them coming with 4-byte tensors.
  int i = 0;
  EXPECT_TRUE(WaitFor([&] {
    EXPECT_TRUE(client.Push(701, absl::StrCat("tick", i++), Tensor::Scalar<float>(1)).ok());
    EXPECT_TRUE(client.Close().ok());
    return Beat(w1).buffered_bytes() < 100000;
  }));
}

TEST(SluiceServerTest, ServerRefusesANonPositiveTtl) {
  const absl::Status s = StartOneWorker({"--orphan_ttl_ms=0"});
  // The server prints the reason to its stderr and exits with status 1; the launcher's error
  // quotes it.
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "--orphan_ttl_ms=0: the server exited before it was ready (exit "
                        "status 1); its stderr ended with:\n"));
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "\nsluice_server: INVALID_ARGUMENT: --ended_step_ttl_ms and "
                        "--orphan_ttl_ms must be > 0"));
}

TEST(SluiceServerTest, ServerRefusesANegativeKeepalive) {
  EXPECT_TRUE(StatusHas(StartOneWorker({"--peer_keepalive_ms=-1"}), absl::StatusCode::kUnavailable,
                        "sluice_server: INVALID_ARGUMENT: --peer_keepalive_ms must be >= 0"));
}

TEST(SluiceServerTest, ServerRefusesAChunkThatCannotFitAMessage) {
  absl::Status s = StartOneWorker({"--max_message_bytes=65536", "--chunk_bytes=65536"});
  EXPECT_TRUE(
      StatusHas(s, absl::StatusCode::kUnavailable,
                "sluice_server: INVALID_ARGUMENT: --chunk_bytes=65536 must be > 0 and leave "
                "4096 bytes of the 65536-byte message cap (--max_message_bytes) for the "
                "chunk header"))
      << s;
  s = StartOneWorker({"--chunk_bytes=4194304"});  // gRPC's default cap is 4 MiB.
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "of the 4194304-byte message cap (--max_message_bytes, gRPC's default)"))
      << s;
}

TEST(SluiceServerTest, SigtermShutsDownCleanly) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<int> code = cluster->StopWorker(1);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace sluice
