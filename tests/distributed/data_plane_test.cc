// The data plane between real sluice_server processes: tensors larger than the gRPC message cap
// travel in chunks (between workers, and pushed and pulled by a DataClient), a chunk over the
// cap is refused, and a push stopped midway abandons its tensor without breaking the stream.
#include "distributed/data_plane.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/remote_session.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/kernel/rendezvous.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::kClient;
using test::kMaxMessage;
using test::kW1;
using test::StartCluster;
using test::StatusHas;
using test::TensorEq;

TEST(DataPlaneTest, TensorLargerThanTheMessageLimitCrossesWorkers) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = ops::NewRootScope();
  Output v = ops::Placeholder(root.WithOpName("v"), DType::kFloat32, TensorShape({}));
  Scope s0 = root.WithDevice("/job:worker/task:0");
  Scope s1 = root.WithDevice("/job:worker/task:1");
  // 4 MiB produced on task 0, 64x the 64 KiB message cap, summed on task 1.
  Output big = ops::Mul(
      s0, ops::Fill(s0, ops::Const(s0, Tensor::FromVector<int32_t>({1024, 1024})), v), 3.0f);
  Output sum = ops::ReduceSum(s1, big, {0, 1});
  auto graph = *root.Finalize();
  auto remote = RemoteSession::Create(cluster->master_address(), graph);
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*remote)->Run({{v, Tensor::Scalar<float>(0.5f)}}, {sum}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::Scalar<float>(1.5f * 1024 * 1024)));
}

TEST(DataPlaneTest, DataPlaneChunksUnderTheMessageLimitAndPullsBack) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Tensor t(DType::kFloat32, TensorShape({1 << 20}));  // 4 MiB.
  for (int i = 0; i < (1 << 20); ++i) t.data<float>()[i] = static_cast<float>(i % 1000) * 0.25f;
  const std::string& addr = cluster->worker(0).data_address;
  DataClient client(MakeChannel(addr, kMaxMessage), {.chunk_bytes = 16384});
  ASSERT_TRUE(client.Push(5, "big", t).ok());
  ASSERT_TRUE(client.Close().ok());
  DataClient puller(MakeChannel(addr, kMaxMessage), {.chunk_bytes = 16384});
  absl::StatusOr<Tensor> back = puller.Pull(5, "big", absl::Seconds(10));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(TensorEq(*back, t));
  // The cap is real: one 1 MiB chunk is refused.
  DataClient whole(MakeChannel(addr, -1), {.chunk_bytes = 1 << 20});
  absl::Status s = whole.Push(6, "big", t);
  if (s.ok()) s = whole.Close();
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kResourceExhausted, "")) << s;
  EXPECT_EQ(Beat(cluster->worker(0).control_address).buffered_bytes(), 0);
}

// A Send whose step is cancelled midway abandons its tensor between chunks: the receiver drops
// the partial tensor, the stream stays usable, and the edge gets that credit back.
TEST(DataPlaneTest, AStoppedPushAbandonsItsTensorAndKeepsTheStreamAndTheCredit) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  const std::string& w1 = cluster->worker(1).control_address;
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  Tensor big(DType::kFloat32, TensorShape({32768}));  // 131072 bytes: 8 chunks.
  int asked = 0;
  absl::Status stopped = client.Push(9, "big", big, [&] { return ++asked > 2; });
  EXPECT_TRUE(StatusHas(stopped, absl::StatusCode::kCancelled,
                        "push of tensor 'big' of step 9 stopped after 32768 of 131072 bytes"));
  Tensor small = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(client.Push(9, "small", small).ok());
  ASSERT_TRUE(client.Close().ok());          // The stream's verdict: no bad chunk.
  EXPECT_EQ(Beat(w1).buffered_bytes(), 12);  // Only the small tensor arrived.

  // The receiver gives the edge its credit back for an abandoned tensor, as for one freed
  // unread: a credit on the edge's control stream naming the tensor.
  std::unique_ptr<test::EdgeControlStream> edge =
      test::OpenEdgeControl(w1, "/job:client/task:0->/job:worker/task:1");
  ASSERT_NE(edge, nullptr);
  proto::EdgeControlMessage msg;
  ASSERT_TRUE(edge->stream->Read(&msg));  // The window: from now on the receiver credits it.
  EXPECT_EQ(msg.window().tensors_per_step(), 1);
  const std::string key = Rendezvous::CreateKey(10, kClient, kW1, "t:0");
  int n = 0;
  EXPECT_FALSE(client.Push(10, key, big, [&] { return ++n > 1; }).ok());  // Abandoned.
  ASSERT_TRUE(edge->stream->Read(&msg));
  EXPECT_EQ(msg.credit().step_id(), 10);
  EXPECT_EQ(msg.credit().key(), key);
  EXPECT_EQ(msg.credit().grant(), 1);
}

}  // namespace
}  // namespace sluice
