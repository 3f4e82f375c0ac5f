// Every step ends, on every worker, whatever stops it: a node that fails while its partition
// (and a peer's) waits for a transfer, the step's deadline passing while a worker hangs, and a
// client that goes away mid-step. Real sluice_server processes on loopback; a hung worker is a
// SIGSTOPped one, and heartbeats are given a minute, so only the mechanism under test can end
// the step.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor_proto.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.h"
#include "distributed/remote_session.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::StatusHas;
using test::TensorEq;
using test::WaitFor;

// h = Square(Neg(Reshape(x, shape))) with the reshape and h on task 0 and the Neg on task 1: a
// transfer each way. When the reshape fails, task 0 waits for Neg's result and task 1 for the
// reshape's, neither of which will ever come.
struct RoundTrip {
  Scope root = ops::NewRootScope();
  Output x, shape, h;
  std::shared_ptr<const Graph> graph;
  RoundTrip() {
    Scope w0 = root.WithDevice("/job:worker/task:0");
    Scope w1 = root.WithDevice("/job:worker/task:1");
    x = ops::Placeholder(w0.WithOpName("x"), DType::kFloat32);
    shape = ops::Placeholder(w0.WithOpName("shape"), DType::kInt64);
    Output r = ops::Reshape(w0.WithOpName("bad"), x, shape);
    h = ops::Square(w0.WithOpName("h"), ops::Neg(w1.WithOpName("g"), r));
    graph = *root.Finalize();
  }
  std::vector<std::pair<Output, Tensor>> Feeds(int64_t n) const {
    return {{x, Tensor::FromVector<float>({1, -2})}, {shape, Tensor::FromVector<int64_t>({n})}};
  }
};

// Heartbeats every 100 ms but a worker is lost only after a minute.
std::unique_ptr<LocalCluster> StartPatientCluster(std::vector<std::string> worker_flags = {}) {
  LocalClusterOptions opts;
  opts.server_binary = test::ServerBinary();
  opts.worker_flags = std::move(worker_flags);
  opts.master_flags = {"--heartbeat_interval_ms=100", "--heartbeat_timeout_ms=60000"};
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(opts);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  return cluster.ok() ? *std::move(cluster) : nullptr;
}

bool NoActiveSteps(const LocalCluster& cluster, int worker) {
  return Beat(cluster.worker(worker).control_address).active_steps() == 0;
}

// A session of `m` whose first step ran (partitions registered, links between the workers up).
std::unique_ptr<RemoteSession> WarmSession(const LocalCluster& cluster, const RoundTrip& m,
                                           absl::Duration step_timeout) {
  auto session =
      RemoteSession::Create(cluster.master_address(), m.graph, {.step_timeout = step_timeout});
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return nullptr;
  std::vector<Tensor> out;
  absl::Status first = (*session)->Run(m.Feeds(2), {m.h}, &out);
  EXPECT_TRUE(first.ok()) << first;
  return first.ok() ? *std::move(session) : nullptr;
}

// Once worker 1 runs again, no step is left on either worker and the next step succeeds.
void ExpectHealedAfterResume(LocalCluster& cluster, RemoteSession& session, const RoundTrip& m) {
  EXPECT_TRUE(WaitFor([&] { return NoActiveSteps(cluster, 0); }));
  ASSERT_TRUE(cluster.ResumeWorker(1).ok());
  EXPECT_TRUE(WaitFor([&] { return NoActiveSteps(cluster, 1); }));
  std::vector<Tensor> out;
  ASSERT_TRUE(session.Run(m.Feeds(2), {m.h}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({1, 4})));
}

TEST(StepEndTest, AFailingNodeEndsTheStepOnEveryWorker) {
  auto cluster = StartPatientCluster();
  ASSERT_NE(cluster, nullptr);
  RoundTrip m;
  // A step that hangs instead would end at this deadline, with DeadlineExceeded.
  auto session = RemoteSession::Create(cluster->master_address(), m.graph,
                                       {.step_timeout = absl::Seconds(30)});
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas((*session)->Run(m.Feeds(3), {m.h}, &out),
                        absl::StatusCode::kInvalidArgument,
                        "node 'bad' (Reshape): cannot reshape a tensor of shape [2] (2 elements) "
                        "into shape [3] (3 elements)"));
  EXPECT_TRUE(NoActiveSteps(*cluster, 0));
  EXPECT_TRUE(WaitFor([&] { return NoActiveSteps(*cluster, 1); }));
  ASSERT_TRUE((*session)->Run(m.Feeds(2), {m.h}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({1, 4})));
}

TEST(StepEndTest, TheStepDeadlineEndsItOnEveryWorkerWhileOneHangs) {
  auto cluster = StartPatientCluster();
  ASSERT_NE(cluster, nullptr);
  RoundTrip m;
  auto session = WarmSession(*cluster, m, absl::Seconds(2));
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  std::vector<Tensor> out;
  absl::Status hung = session->Run(m.Feeds(2), {m.h}, &out);
  EXPECT_TRUE(StatusHas(hung, absl::StatusCode::kDeadlineExceeded,
                        "did not finish within its deadline (2s); still running on "));
  EXPECT_TRUE(StatusHas(hung, absl::StatusCode::kDeadlineExceeded,
                        "/job:worker/task:1 at " + cluster->worker(1).control_address));
  // The master's deadline reached task 0: its half of the step ended too.
  ExpectHealedAfterResume(*cluster, *session, m);
}

// Task 0's tensor went onto the link (its _Send returned) but task 1, hung, never took it; task 0
// then waits for task 1's answer. When a link's keepalive gives up on task 1, the tensor may
// be lost, so task 0 ends the step (naming the edge), and the master ends it everywhere: long
// before the step's deadline or the heartbeat timeout.
TEST(StepEndTest, ALinkThatBreaksWithATensorInFlightEndsTheStep) {
  auto cluster = StartPatientCluster({"--peer_keepalive_ms=500"});
  ASSERT_NE(cluster, nullptr);
  RoundTrip m;
  auto session = WarmSession(*cluster, m, absl::Seconds(30));  // The link from task 0 is up.
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  std::vector<Tensor> out;
  absl::Status broke = session->Run(m.Feeds(2), {m.h}, &out);
  // The control and data connections have keepalives of their own: whichever gives up first
  // ends the step.
  const std::string edge = "edge '/job:worker/task:0->/job:worker/task:1' ";
  EXPECT_TRUE(StatusHas(broke, absl::StatusCode::kUnavailable,
                        edge + "broke (the connection to the receiver was lost) with 1 "
                               "tensor(s) of step ") ||
              StatusHas(broke, absl::StatusCode::kUnavailable,
                        edge + "lost its data connection to the receiver with 1 tensor(s) of "
                               "step "))
      << broke;
  EXPECT_TRUE(StatusHas(broke, absl::StatusCode::kUnavailable,
                        "failed on /job:worker/task:0 at " + cluster->worker(0).control_address));
  ExpectHealedAfterResume(*cluster, *session, m);
}

// SIGTERM to a worker whose step waits for a hung peer: the worker cancels the step and exits
// cleanly, promptly (a hung step never holds up the shutdown).
TEST(StepEndTest, SigtermStopsAWorkerWhoseStepWaitsForAHungPeer) {
  auto cluster = StartPatientCluster();
  ASSERT_NE(cluster, nullptr);
  RoundTrip m;
  auto session = WarmSession(*cluster, m, absl::Seconds(60));
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  std::vector<Tensor> out;
  absl::Status hung;
  std::thread step([&] { hung = session->Run(m.Feeds(2), {m.h}, &out); });
  ASSERT_TRUE(
      WaitFor([&] { return Beat(cluster->worker(0).control_address).pending_receives() == 1; }));
  const absl::Time term = absl::Now();
  absl::StatusOr<int> code = cluster->StopWorker(0);
  EXPECT_LT(absl::Now() - term, absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  step.join();
  EXPECT_FALSE(hung.ok());
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());
}

TEST(StepEndTest, AClientThatGoesAwayCancelsItsStep) {
  auto cluster = StartPatientCluster();
  ASSERT_NE(cluster, nullptr);
  RoundTrip m;
  auto session = WarmSession(*cluster, m, absl::Seconds(60));
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  // A step allowed a minute, whose client gives up after half a second.
  auto master = proto::Master::NewStub(MakeChannel(cluster->master_address()));
  proto::RunStepRequest req;
  req.set_protocol_version(kProtocolVersion);
  req.set_session_handle(session->handle());
  req.set_timeout_ms(60000);
  for (const auto& [output, value] : m.Feeds(2)) {
    proto::NamedTensor* feed = req.add_feeds();
    feed->set_name(output.name());
    TensorToProto(value, feed->mutable_tensor());
  }
  req.add_fetches(m.h.name());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  proto::RunStepResponse resp;
  EXPECT_EQ(master->RunStep(&ctx, req, &resp).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Task 0's half, waiting for the hung task 1, is cancelled well before the minute is up.
  ExpectHealedAfterResume(*cluster, *session, m);
}

}  // namespace
}  // namespace sluice
