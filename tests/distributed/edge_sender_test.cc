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

// The data plane has its own connection: when it dies with tensors on it that the receiver
// has not credited (a keepalive that gave up after a partition healed), nothing else would
// notice, and they may be lost. The sender pushes them again on a new connection as copies:
// the receiver drops a copy of a tensor that did arrive, and takes one whose first push was
// lost, so the step goes on. Only a copy that cannot be pushed ends its step, naming the edge.
class LostDataConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = StartCluster();
    ASSERT_NE(cluster_, nullptr);
    absl::StatusOr<std::unique_ptr<test::TcpProxy>> proxy =
        test::TcpProxy::Start(cluster_->worker(1).data_address);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = *std::move(proxy);
    channel_ = MakeDataChannel(proxy_->address(), kMaxMessage);
    client_ = std::make_unique<DataClient>(channel_, ChunkOptions{.chunk_bytes = 16384});
    edge_ = std::make_unique<EdgeSender>(MakeChannel(cluster_->worker(1).control_address),
                                         client_.get(), kEdge,
                                         [this](int64_t step, const absl::Status& why) {
                                           absl::MutexLock lock(&mu_);
                                           lost_.emplace_back(step, why);
                                         });
  }
  void TearDown() override {
    edge_.reset();
    client_.reset();
  }
  static std::string Key(int64_t step) { return Rendezvous::CreateKey(step, kClient, kW1, "t:0"); }
  // The receiver's tensor of `step` (a receive there, over its own connection).
  absl::StatusOr<Tensor> Receive(int64_t step) {
    DataClient puller(MakeChannel(cluster_->worker(1).data_address, kMaxMessage),
                      {.chunk_bytes = 16384});
    return puller.Pull(step, Key(step), absl::Seconds(10));
  }
  std::vector<std::pair<int64_t, absl::Status>> Lost() {
    absl::MutexLock lock(&mu_);
    return lost_;
  }

  static constexpr char kEdge[] = "/job:client/task:0->/job:worker/task:1";
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<test::TcpProxy> proxy_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<DataClient> client_;
  std::unique_ptr<EdgeSender> edge_;
  absl::Mutex mu_;
  std::vector<std::pair<int64_t, absl::Status>> lost_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LostDataConnectionTest, UncreditedTensorsArePushedAgainAndArriveOnce) {
  const Tensor v = Tensor::FromVector<float>({1, 2, 3});
  const Tensor w = Tensor::FromVector<float>({4, 5});
  // Step 9's tensor arrives (the receiver holds it, uncredited), then its connection dies.
  ASSERT_TRUE(edge_->Send(9, Key(9), v, absl::Now() + absl::Seconds(10)).ok());
  proxy_->Sever();
  ASSERT_TRUE(WaitFor([&] { return edge_->resent() == 1; }));
  // Step 10's tensor goes into a connection that silently drops it, which then dies.
  proxy_->DropTraffic();
  ASSERT_TRUE(edge_->Send(10, Key(10), w, absl::Now() + absl::Seconds(10)).ok());
  proxy_->Sever();
  // Both are pushed again: step 9's is still uncredited (nobody took it yet).
  ASSERT_TRUE(WaitFor([&] { return edge_->resent() == 3; }));
  // The copies of step 9's were dropped (the stream went on to carry step 10's); step 10's
  // copy was the one that arrived.
  absl::StatusOr<Tensor> got = Receive(9);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, v));
  got = Receive(10);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, w));
  ASSERT_TRUE(WaitFor([&] { return edge_->in_flight() == 0; }));  // Both credited, once.
  EXPECT_EQ(proxy_->connections_accepted(), 3);
  for (const auto& [step, why] : Lost()) ADD_FAILURE() << "step " << step << " lost: " << why;
}

TEST_F(LostDataConnectionTest, ACopyThatCannotBePushedEndsItsStep) {
  const Tensor v = Tensor::FromVector<float>({1, 2, 3});
  proxy_->DropTraffic();
  ASSERT_TRUE(edge_->Send(9, Key(9), v, absl::Now() + absl::Seconds(10)).ok());
  proxy_->RefuseNew(true);
  proxy_->Sever();
  ASSERT_TRUE(WaitFor([&] { return !Lost().empty(); }));
  std::vector<std::pair<int64_t, absl::Status>> lost = Lost();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].first, 9);
  EXPECT_TRUE(
      StatusHas(lost[0].second, absl::StatusCode::kUnavailable,
                absl::StrCat("edge '", kEdge, "' lost its data connection under tensor '", Key(9),
                             "' of step 9 before the receiver consumed it, and pushing "
                             "it again failed: ")));
  EXPECT_EQ(edge_->in_flight(), 0);
  // Once the receiver can be reached again (the channel's reconnect backoff over), the next
  // step's tensor travels and arrives.
  proxy_->RefuseNew(false);
  ASSERT_TRUE(WaitFor([&] { return channel_->GetState(true) == GRPC_CHANNEL_READY; }));
  absl::Status sent = edge_->Send(10, Key(10), v, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(sent.ok()) << sent;
  absl::StatusOr<Tensor> got = Receive(10);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, v));
  EXPECT_EQ(Lost().size(), 1u);
}

}  // namespace
}  // namespace sluice
