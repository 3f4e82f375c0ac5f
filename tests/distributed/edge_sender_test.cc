// EdgeSender against a real receiving worker: credits bound the tensors in flight, a cancelled
// edge stays cancelled, and a cancelled step ends its wait for a credit.
#include "distributed/edge_sender.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/data_plane.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "gtest/gtest.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/rendezvous.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/distributed/tcp_proxy.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::kClient;
using test::kMaxMessage;
using test::kW1;
using test::StartCluster;
using test::StatusHas;
using test::TensorEq;
using test::WaitFor;

TEST(EdgeSenderTest, CreditsBoundTensorsInFlight) {
  auto cluster = StartCluster({"--credit_window=2"});
  ASSERT_NE(cluster, nullptr);
  const std::string& data = cluster->worker(1).data_address;
  DataClient client(MakeChannel(data, kMaxMessage), {.chunk_bytes = 16384});
  EdgeSender edge(MakeChannel(cluster->worker(1).control_address), &client,
                  "/job:client/task:0->/job:worker/task:1");
  auto key = [](int i) {
    return Rendezvous::CreateKey(9, kClient, kW1, absl::StrCat("t", i, ":0"));
  };
  Tensor v = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(edge.Send(9, key(0), v, absl::Now() + absl::Seconds(10)).ok());
  ASSERT_TRUE(edge.Send(9, key(1), v, absl::Now() + absl::Seconds(10)).ok());
  EXPECT_TRUE(StatusHas(edge.Send(9, key(2), v, absl::Now() + absl::Milliseconds(300)),
                        absl::StatusCode::kDeadlineExceeded, "no credit from the receiver"));
  // Consuming one tensor on the receiver grants one credit back.
  DataClient puller(MakeChannel(data, kMaxMessage), {.chunk_bytes = 16384});
  absl::StatusOr<Tensor> got = puller.Pull(9, key(0), absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, v));
  ASSERT_TRUE(edge.Send(9, key(2), v, absl::Now() + absl::Seconds(10)).ok());
  EXPECT_EQ(edge.credits(9), 0);
}

// Windows are per step: tensors of one step that nobody consumes yet (its receiver has not
// started, or is slow) hold up no other step on the edge, while that step stays bounded. (With
// one window per edge, concurrent clients starved each other for 30 s at a time.)
TEST(EdgeSenderTest, OneStepsUnconsumedTensorsDoNotHoldUpAnotherStep) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  const std::string& data = cluster->worker(1).data_address;
  DataClient client(MakeChannel(data, kMaxMessage), {.chunk_bytes = 16384});
  EdgeSender edge(MakeChannel(cluster->worker(1).control_address), &client,
                  "/job:client/task:0->/job:worker/task:1");
  auto key = [](int64_t step, int i) {
    return Rendezvous::CreateKey(step, kClient, kW1, absl::StrCat("t", i, ":0"));
  };
  Tensor v = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(edge.Send(9, key(9, 0), v, absl::Now() + absl::Seconds(10)).ok());
  // Step 9 used its window and nobody consumes its tensor; a waiting step 9 Send must not
  // hold up the others either.
  absl::Status blocked;
  std::thread waiter(
      [&] { blocked = edge.Send(9, key(9, 1), v, absl::Now() + absl::Milliseconds(1500)); });
  ASSERT_TRUE(WaitFor([&] { return edge.waiting() == 1; }));
  for (int64_t step = 10; step < 20; ++step) {
    ASSERT_TRUE(edge.Send(step, key(step, 0), v, absl::Now() + absl::Milliseconds(500)).ok())
        << "step " << step;
  }
  waiter.join();
  EXPECT_TRUE(StatusHas(blocked, absl::StatusCode::kDeadlineExceeded,
                        "no credit from the receiver for tensor '" + key(9, 1) +
                            "' of step 9 (1 in flight, window 1)"));
  // Consuming step 9's tensor credits step 9 back.
  DataClient puller(MakeChannel(data, kMaxMessage), {.chunk_bytes = 16384});
  ASSERT_TRUE(puller.Pull(9, key(9, 0), absl::Seconds(10)).ok());
  EXPECT_TRUE(WaitFor([&] { return edge.credits(9) == 1; }));
  EXPECT_EQ(edge.credits(10), 0);  // Its tensor is still unconsumed.
}

// An edge cancelled because its receiver was found lost stays dead: later Sends fail at once
// instead of reopening streams that nothing would cancel again.
TEST(EdgeSenderTest, ACancelledEdgeStaysCancelled) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  EdgeSender edge(MakeChannel(cluster->worker(1).control_address), &client,
                  "/job:client/task:0->/job:worker/task:1");
  auto key = [](int i) {
    return Rendezvous::CreateKey(9, kClient, kW1, absl::StrCat("t", i, ":0"));
  };
  Tensor v = Tensor::FromVector<float>({1, 2, 3});
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  ASSERT_TRUE(edge.Send(9, key(0), v, deadline).ok());
  edge.Cancel();
  EXPECT_TRUE(StatusHas(edge.Send(9, key(1), v, deadline), absl::StatusCode::kUnavailable,
                        "edge '/job:client/task:0->/job:worker/task:1': the receiver was found "
                        "lost; its links were dropped"));
  EXPECT_TRUE(StatusHas(client.Push(9, key(2), v), absl::StatusCode::kUnavailable,
                        "the data stream to this peer was cancelled (peer lost)"));
}

// A Send waiting for a credit from a receiver that grants none: cancelling the step's
// CancellationManager ends the wait at once, with the cancellation's code and a message naming
// the edge, the step and the tensor.
TEST(EdgeSenderTest, CancellingAStepEndsItsWaitForACredit) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  EdgeSender edge(MakeChannel(cluster->worker(1).control_address), &client,
                  "/job:client/task:0->/job:worker/task:1");
  auto key = [](int i) {
    return Rendezvous::CreateKey(9, kClient, kW1, absl::StrCat("t", i, ":0"));
  };
  Tensor v = Tensor::FromVector<float>({1, 2, 3});
  CancellationManager cm;
  ASSERT_TRUE(edge.Send(9, key(0), v, absl::Now() + absl::Seconds(10), &cm).ok());
  // Nobody consumes t0 on task 1, so no credit comes back and the next Send waits.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status sent;
  absl::Time returned;
  std::thread sender([&] {
    sent = edge.Send(9, key(1), v, deadline, &cm);
    returned = absl::Now();
  });
  ASSERT_TRUE(WaitFor([&] { return edge.waiting() == 1; }));
  const absl::Time cancelled = absl::Now();
  cm.StartCancel(absl::AbortedError("step 9 aborted: lost /job:worker/task:1"));
  sender.join();
  EXPECT_LT(returned - cancelled, absl::Seconds(5));
  EXPECT_TRUE(StatusHas(sent, absl::StatusCode::kAborted,
                        absl::StrCat("edge '/job:client/task:0->/job:worker/task:1': step 9 was "
                                     "cancelled before tensor '",
                                     key(1),
                                     "' got a credit (1 in flight): step 9 aborted: lost "
                                     "/job:worker/task:1")));
  EXPECT_EQ(edge.waiting(), 0);
  EXPECT_EQ(edge.credits(9), 0);
  // A step cancelled before its Send fails at once.
  EXPECT_TRUE(StatusHas(edge.Send(9, key(2), v, deadline, &cm), absl::StatusCode::kAborted,
                        "step 9 aborted: lost /job:worker/task:1"));
}

// The data plane has its own connection: when it dies with a tensor on it (a keepalive that
// gave up after a partition healed) while the control stream stays up, the tensor may be lost
// and nothing else would notice: the receiver's step waited until its deadline. The sender
// ends the steps with tensors in flight, naming the edge, and the edge goes on working.
TEST(EdgeSenderTest, LosingTheDataConnectionEndsTheStepsWithTensorsOnIt) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::unique_ptr<test::TcpProxy>> proxy =
      test::TcpProxy::Start(cluster->worker(1).data_address);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  DataClient client(MakeDataChannel((*proxy)->address(), kMaxMessage), {.chunk_bytes = 16384});
  absl::Mutex mu;
  std::vector<std::pair<int64_t, absl::Status>> lost;
  const std::string edge_name = "/job:client/task:0->/job:worker/task:1";
  EdgeSender edge(MakeChannel(cluster->worker(1).control_address), &client, edge_name,
                  [&](int64_t step, const absl::Status& why) {
                    absl::MutexLock lock(&mu);
                    lost.emplace_back(step, why);
                  });
  auto key = [](int64_t step) { return Rendezvous::CreateKey(step, kClient, kW1, "t:0"); };
  Tensor v = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(edge.Send(9, key(9), v, absl::Now() + absl::Seconds(10)).ok());
  (*proxy)->Sever();
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mu);
    return !lost.empty();
  }));
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].first, 9);
    EXPECT_TRUE(StatusHas(lost[0].second, absl::StatusCode::kUnavailable,
                          "edge '" + edge_name +
                              "' lost its data connection to the receiver with 1 tensor(s) of "
                              "step 9 not yet consumed by the receiver"));
  }
  EXPECT_EQ(edge.in_flight(), 0);
  // The next step's tensor travels on a new connection and arrives.
  ASSERT_TRUE(edge.Send(10, key(10), v, absl::Now() + absl::Seconds(10)).ok());
  DataClient puller(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  absl::StatusOr<Tensor> got = puller.Pull(10, key(10), absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, v));
  EXPECT_EQ((*proxy)->connections_accepted(), 2);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(lost.size(), 1u);
}

}  // namespace
}  // namespace sluice
