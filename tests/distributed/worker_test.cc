// The worker's logic driven in process, without a transport; and workers (real sluice_server
// processes) running hand-registered partitions whose _Send to a peer is stuck (waiting for a
// credit, connecting, or blocked in a data-plane write): an abort, a "step failed" notice on
// an edge's control stream, or the peer links' keepalive ends the step, and the next step
// reaches the peer afresh.
#include "distributed/worker.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/tensor_proto.h"
#include "distributed/coordinator.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::ExpectBigEdgeSum;
using test::RegisterBigEdge;
using test::RegisterTwoTensorEdge;
using test::RunBoth;
using test::RunPartition;
using test::SendAbort;
using test::StartCluster;
using test::StatusHas;
using test::TensorEq;
using test::WaitFor;

// Registering, running and heartbeats through the protocol's messages, with no gRPC in between:
// what a second transport (or an in-process fake) would do.
TEST(WorkerTest, RunsAPartitionInProcessWithoutATransport) {
  TensorMailbox mailbox;
  Worker worker(WorkerOptions{}, &mailbox);
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({2}));
  ops::Neg(root.WithOpName("y"), x);
  proto::RegisterGraphRequest reg;
  reg.set_protocol_version(kProtocolVersion);
  ToGraphDef(**root.Finalize(), reg.mutable_partition());
  reg.add_feeds("x:0");
  reg.add_fetches("y:0");
  proto::RegisterGraphResponse registered;
  absl::Status s = worker.RegisterGraph(reg, &registered);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(registered.incarnation(), worker.identity().incarnation());

  auto run = [&](const std::string& handle, proto::RunGraphResponse* resp) {
    proto::RunGraphRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_graph_handle(handle);
    req.set_step_id(7);
    proto::NamedTensor* feed = req.add_feeds();
    feed->set_name("x:0");
    TensorToProto(Tensor::FromVector<float>({1, -3}), feed->mutable_tensor());
    absl::Notification done;
    absl::Status status;
    worker.RunGraphAsync(&req, resp, std::make_shared<CancellationManager>(), [&](absl::Status st) {
      status = std::move(st);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  };
  proto::RunGraphResponse resp;
  s = run(registered.graph_handle(), &resp);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(resp.fetches_size(), 1);
  EXPECT_TRUE(
      TensorEq(*TensorFromProto(resp.fetches(0).tensor()), Tensor::FromVector<float>({-1, 3})));
  proto::RunGraphResponse unused;
  EXPECT_TRUE(StatusHas(run("g-nope", &unused), absl::StatusCode::kNotFound,
                        "/job:worker/task:0 step 7: unknown graph handle 'g-nope' on "
                        "/job:worker/task:0"));

  proto::HeartbeatRequest beat;
  beat.set_protocol_version(kProtocolVersion);
  proto::HeartbeatResponse answer;
  ASSERT_TRUE(worker.Heartbeat(beat, &answer).ok());
  EXPECT_EQ(answer.identity().job(), "worker");
  EXPECT_EQ(answer.active_steps(), 0);
  beat.set_protocol_version(7);
  EXPECT_TRUE(StatusHas(worker.Heartbeat(beat, &answer), absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("Heartbeat: protocol version mismatch: peer speaks 7, "
                                     "this server speaks ",
                                     kProtocolVersion)));
}

// A session's tensors on a worker are bounded (--max_session_bytes): a step whose outputs
// would pass the bound fails naming the session, the worker and the flag; what a step frees
// is given back, and another session has a budget of its own.
TEST(WorkerTest, ASessionsTensorsAreBoundedByItsBudget) {
  TensorMailbox mailbox;
  Worker worker(WorkerOptions{.max_session_bytes = 1000}, &mailbox);
  Scope root = ops::NewRootScope();
  Output n = ops::Placeholder(root.WithOpName("n"), DType::kInt32, TensorShape({1}));
  ops::Square(root.WithOpName("y"), ops::Fill(root.WithOpName("f"), n, 1.0f));
  auto register_for = [&](const std::string& session) {
    proto::RegisterGraphRequest reg;
    reg.set_protocol_version(kProtocolVersion);
    reg.set_session_handle(session);
    ToGraphDef(**root.Finalize(), reg.mutable_partition());
    reg.add_feeds("n:0");
    reg.add_fetches("f:0");  // Fetched, so Square cannot reuse its buffer: both are live.
    reg.add_fetches("y:0");
    proto::RegisterGraphResponse registered;
    EXPECT_TRUE(worker.RegisterGraph(reg, &registered).ok());
    return registered.graph_handle();
  };
  auto run = [&](const std::string& handle, int32_t elements) {
    proto::RunGraphRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_graph_handle(handle);
    req.set_step_id(11);
    proto::NamedTensor* feed = req.add_feeds();
    feed->set_name("n:0");
    TensorToProto(Tensor::FromVector<int32_t>({elements}), feed->mutable_tensor());
    proto::RunGraphResponse resp;
    absl::Notification done;
    absl::Status status;
    worker.RunGraphAsync(&req, &resp, std::make_shared<CancellationManager>(), [&](absl::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  };
  const std::string s1 = register_for("session-1");
  // Fill's 400 bytes and Square's 400 fit at once.
  EXPECT_TRUE(run(s1, 100).ok());
  EXPECT_TRUE(StatusHas(run(s1, 200), absl::StatusCode::kResourceExhausted,
                        "node 'y' (Square): output 0: session 'session-1' on /job:worker/task:0 "
                        "(--max_session_bytes) holds 800 bytes of tensors; 800 more would pass "
                        "its limit of 1000"));
  EXPECT_TRUE(run(s1, 100).ok());  // Everything the failed step held was given back.
  EXPECT_TRUE(run(register_for("session-2"), 120).ok());
}

// A worker with a cluster spec registers partitions only with peers of that spec, at their
// addresses: a request cannot make it connect anywhere else (server-side request forgery).
TEST(WorkerTest, RefusesPeersOutsideItsClusterSpec) {
  TensorMailbox mailbox;
  WorkerOptions options;
  options.cluster_tasks = {MakePeerAddress("/job:worker/task:0", "10.0.0.1:2222", ""),
                           MakePeerAddress("/job:worker/task:1", "10.0.0.2:2222", "")};
  Worker worker(options, &mailbox);
  Scope root = ops::NewRootScope();
  ops::Const(root.WithOpName("c"), Tensor::Scalar<float>(1));
  auto register_with = [&](proto::PeerAddress peer) {
    proto::RegisterGraphRequest reg;
    reg.set_protocol_version(kProtocolVersion);
    ToGraphDef(**root.Finalize(), reg.mutable_partition());
    *reg.add_peers() = std::move(peer);
    proto::RegisterGraphResponse registered;
    return worker.RegisterGraph(reg, &registered);
  };
  EXPECT_TRUE(
      register_with(MakePeerAddress("/job:worker/task:1", "10.0.0.2:2222", "10.0.0.2:40001")).ok());
  EXPECT_TRUE(StatusHas(
      register_with(MakePeerAddress("/job:worker/task:1", "169.254.169.254:80", "")),
      absl::StatusCode::kPermissionDenied,
      "RegisterGraph: peer /job:worker/task:1 at control 169.254.169.254:80, data  is not a task "
      "of /job:worker/task:0's cluster spec; this worker connects only to its cluster's tasks"));
  EXPECT_TRUE(StatusHas(
      register_with(MakePeerAddress("/job:worker/task:1", "10.0.0.2:2222", "10.9.9.9:40001")),
      absl::StatusCode::kPermissionDenied, "data 10.9.9.9:40001 is not a task"));
  EXPECT_TRUE(StatusHas(register_with(MakePeerAddress("/job:evil/task:0", "10.0.0.2:2222", "")),
                        absl::StatusCode::kPermissionDenied, "peer /job:evil/task:0 at control"));
}

// A step_failed notice whose status code is OK (or unknown to absl) still fails the step's
// receives, with an error that says so, instead of crashing the worker.
TEST(WorkerTest, AStepFailedNoticeWithAnInvalidCodeFailsTheStep) {
  TensorMailbox mailbox;
  Worker worker(WorkerOptions{}, &mailbox);
  for (int code : {0, 99}) {
    const int64_t step = 40 + code;
    mailbox.StartStep(step);
    absl::Notification received;
    absl::Status status;
    mailbox.RecvAsync(step, "a;b;t", [&](absl::StatusOr<Tensor> t) {
      status = t.status();
      received.Notify();
    });
    proto::EdgeControlMessage msg;
    msg.mutable_step_failed()->set_step_id(step);
    msg.mutable_step_failed()->set_code(code);
    msg.mutable_step_failed()->set_message("from a hostile peer");
    worker.OnEdgeMessage(msg);
    received.WaitForNotification();
    EXPECT_TRUE(
        StatusHas(status, absl::StatusCode::kUnknown,
                  absl::StrCat("peer reported step ", step, " failed with invalid status code ",
                               code, ": from a hostile peer")));
    mailbox.CleanupStep(step);
  }
}

// A receiver that is hung but still connected grants no credit: a step whose _Send waits for
// one must still end as soon as it is aborted, not at its deadline.
TEST(WorkerTest, AbortEndsASendWaitingForAHungPeersCredit) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterTwoTensorEdge(*cluster);
  // With one credit the second tensor waits until task 1 consumes the first; a healthy task 1
  // does. This also opens the edge, so the hung step below waits for a credit, not a connection.
  absl::StatusOr<proto::RunGraphResponse> r1 = RunBoth(parts, 90);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(
      TensorEq(*TensorFromProto(r1->fetches(0).tensor()), Tensor::FromVector<float>({2, 12})));

  ASSERT_TRUE(cluster->PauseWorker(1).ok());  // Connected but silent: it grants nothing.
  absl::StatusOr<proto::RunGraphResponse> hung;
  absl::Time returned;
  std::thread run([&] {
    hung = RunPartition(parts[0], 91);
    returned = absl::Now();
  });
  const std::string& w0 = cluster->worker(0).control_address;
  ASSERT_TRUE(WaitFor([&] { return Beat(w0).waiting_sends() == 1; }));
  // What the master's StepCoordinator sends once heartbeats find task 1 lost.
  const std::string reason =
      absl::StrCat("step 91 failed: lost /job:worker/task:1 at ",
                   cluster->worker(1).control_address, ": missed heartbeats");
  const absl::Time abort_sent = absl::Now();
  ASSERT_TRUE(SendAbort(w0, 91, reason).ok());
  run.join();
  EXPECT_LT(returned - abort_sent, absl::Seconds(10));  // The step's deadline is 60 s away.
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kAborted,
                        "/job:worker/task:0 step 91: " + reason));
  proto::HeartbeatResponse beat = Beat(w0);
  EXPECT_EQ(beat.active_steps(), 0);
  EXPECT_EQ(beat.waiting_sends(), 0);
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());
}

// A "step failed" notice on an edge's control stream aborts the whole step on that worker, not
// only its receives: a _Send of the step waiting for a credit (from a hung peer) ends too.
TEST(WorkerTest, StepFailedNoticeEndsTheStepsWaitingSends) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterTwoTensorEdge(*cluster);
  absl::StatusOr<proto::RunGraphResponse> opened = RunBoth(parts, 95);  // Opens the edge.
  ASSERT_TRUE(opened.ok()) << opened.status();

  ASSERT_TRUE(cluster->PauseWorker(1).ok());  // Grants nothing: the second tensor waits.
  absl::StatusOr<proto::RunGraphResponse> hung;
  std::thread run([&] { hung = RunPartition(parts[0], 96); });
  const std::string& w0 = cluster->worker(0).control_address;
  ASSERT_TRUE(WaitFor([&] { return Beat(w0).waiting_sends() == 1; }));
  // Task 0's own control port gets the notice, as a peer sending to it would send it.
  std::unique_ptr<test::EdgeControlStream> edge =
      test::OpenEdgeControl(w0, "/job:worker/task:1->/job:worker/task:0");
  ASSERT_NE(edge, nullptr);
  proto::EdgeControlMessage failed;
  failed.mutable_step_failed()->set_step_id(96);
  failed.mutable_step_failed()->set_code(static_cast<int>(absl::StatusCode::kInternal));
  failed.mutable_step_failed()->set_message("step 96 failed on /job:worker/task:1: boom");
  ASSERT_TRUE(edge->stream->Write(failed));
  const bool ended = WaitFor([&] { return Beat(w0).active_steps() == 0; });
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Frees the sender if it is still waiting.
  run.join();
  edge->stream->WritesDone();
  ASSERT_TRUE(ended) << "the step's Send kept waiting after the notice";
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kInternal,
                        "step 96 failed on /job:worker/task:1: boom"));
}

// The master gives up on a RunGraph call (its step failed elsewhere, or it was cancelled): the
// worker's half of the step ends at once, though its own timeout is a minute away.
TEST(WorkerTest, ACancelledRunGraphCallCancelsItsStep) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterTwoTensorEdge(*cluster);
  // Only task 1's half runs: its receives wait for tensors task 0 never sends.
  StepCoordinator::Partition receiver = parts[1];
  receiver.request.set_protocol_version(kProtocolVersion);
  receiver.request.set_step_id(97);
  auto stub = proto::Control::NewStub(MakeChannel(receiver.worker.control_address()));
  grpc::ClientContext ctx;
  proto::RunGraphResponse resp;
  grpc::Status status;
  absl::Notification answered;
  stub->async()->RunGraph(&ctx, &receiver.request, &resp, [&](grpc::Status s) {
    status = s;
    answered.Notify();
  });
  const std::string& w1 = cluster->worker(1).control_address;
  ASSERT_TRUE(WaitFor([&] { return Beat(w1).pending_receives() == 2; }));
  ctx.TryCancel();
  answered.WaitForNotification();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor([&] {
    proto::HeartbeatResponse beat = Beat(w1);
    return beat.active_steps() == 0 && beat.pending_receives() == 0;
  })) << "the step kept running after its RunGraph call was cancelled";
}

// A peer hung before anything connected to it: the _Send is stuck opening the edge (gRPC waits
// for the peer's HTTP/2 handshake). Aborting the step, without or with naming the lost peer,
// must end it.
TEST(WorkerTest, AbortEndsASendStuckConnectingToAHungPeer) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterTwoTensorEdge(*cluster);
  const std::string& w0 = cluster->worker(0).control_address;
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  for (const bool name_the_peer : {false, true}) {
    const int64_t step = name_the_peer ? 98 : 97;
    absl::StatusOr<proto::RunGraphResponse> hung;
    std::atomic<bool> returned{false};
    std::thread run([&] {
      hung = RunPartition(parts[0], step);
      returned = true;
    });
    ASSERT_TRUE(WaitFor([&] { return Beat(w0).active_steps() == 1; }));
    grpc::Status sent = SendAbort(w0, step, absl::StrCat("step ", step, " aborted by the test"),
                                  name_the_peer ? "/job:worker/task:1" : "");
    const bool ended = WaitFor([&] { return returned.load(); });
    if (!ended) {
      ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Unblocks it, to end the test.
    }
    run.join();
    ASSERT_TRUE(sent.ok()) << sent.error_message();
    ASSERT_TRUE(ended) << "the send stayed stuck after the abort (lost peer named: "
                       << name_the_peer << ")";
    EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kAborted,
                          absl::StrCat("step ", step, " aborted by the test")));
  }
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());
}

// A peer that hangs after granting a credit stops reading mid-tensor: the sender is blocked in
// a data-plane write, not in a credit wait. The master's abort naming the lost task must end
// it (the worker drops its links to that task), and the next step connects afresh.
TEST(WorkerTest, AbortForALostPeerEndsASendBlockedInADataWrite) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterBigEdge(*cluster);
  // Opens the edge: task 1 has granted credits.
  ASSERT_NO_FATAL_FAILURE(ExpectBigEdgeSum(RunBoth(parts, 90)));

  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  absl::StatusOr<proto::RunGraphResponse> hung;
  std::atomic<bool> returned{false};
  std::thread run([&] {
    hung = RunPartition(parts[0], 91);
    returned = true;
  });
  const std::string& w0 = cluster->worker(0).control_address;
  ASSERT_TRUE(WaitFor([&] { return Beat(w0).pushing_sends() == 1; }));
  const std::string reason =
      absl::StrCat("step 91 failed: lost /job:worker/task:1 at ",
                   cluster->worker(1).control_address, ": missed heartbeats");
  ASSERT_TRUE(SendAbort(w0, 91, reason, "/job:worker/task:1").ok());
  const bool ended = WaitFor([&] { return returned.load(); });
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Also frees a sender still blocked on failure.
  run.join();
  ASSERT_TRUE(ended) << "the send stayed blocked after the abort";
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kAborted, "/job:worker/task:0 step 91: "));
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kAborted, reason));
  proto::HeartbeatResponse beat = Beat(w0);
  EXPECT_EQ(beat.active_steps(), 0);
  EXPECT_EQ(beat.pushing_sends(), 0);
  // The resumed peer is reached over new links.
  ASSERT_NO_FATAL_FAILURE(ExpectBigEdgeSum(RunBoth(parts, 92)));
}

// No master in the loop: the step runs on the workers directly, so nothing would abort it. A
// Send blocked in a data-plane write to a hung peer ends through the link's keepalive
// (--peer_keepalive_ms: unanswered pings or, with writes stuck, TCP_USER_TIMEOUT) with
// Unavailable, and the next step reaches the resumed peer afresh.
TEST(WorkerTest, KeepaliveEndsASendToAHungPeerWithNoAbort) {
  auto cluster = StartCluster({"--peer_keepalive_ms=1000"});  // Ample for healthy steps.
  ASSERT_NE(cluster, nullptr);
  std::vector<StepCoordinator::Partition> parts = RegisterBigEdge(*cluster);
  ASSERT_NO_FATAL_FAILURE(ExpectBigEdgeSum(RunBoth(parts, 95)));  // Opens the links.

  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  absl::StatusOr<proto::RunGraphResponse> hung;
  std::atomic<bool> returned{false};
  std::thread run([&] {
    hung = RunPartition(parts[0], 96);
    returned = true;
  });
  const bool ended = WaitFor([&] { return returned.load(); });
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Also frees a sender still blocked on failure.
  run.join();
  ASSERT_TRUE(ended) << "the send to the hung peer stayed blocked";
  // The keepalive breaks the data stream the _Send is blocked in (gRPC's own words follow, here
  // "keepalive watchdog timeout"), the data connection under it (which the sender watches) and
  // the edge's control stream, each of which ends the step on the sender as it has a tensor in
  // flight; whichever comes first is the step's error.
  const bool send_failed = StatusHas(hung.status(), absl::StatusCode::kUnavailable,
                                     "/job:worker/task:0 step 96: node 'big/_send_0_to_1' (_Send): "
                                     "sending 'big:0' to /job:worker/task:1/device:cpu:0 failed: ");
  const bool edge_broke = StatusHas(
      hung.status(), absl::StatusCode::kUnavailable,
      "/job:worker/task:0 step 96: edge '/job:worker/task:0->/job:worker/task:1' broke (the "
      "connection to the receiver was lost) with 1 tensor(s) of step 96");
  const bool data_lost = StatusHas(
      hung.status(), absl::StatusCode::kUnavailable,
      "/job:worker/task:0 step 96: edge '/job:worker/task:0->/job:worker/task:1' lost its data "
      "connection to the receiver with 1 tensor(s) of step 96");
  EXPECT_TRUE(send_failed || edge_broke || data_lost) << hung.status();
  ASSERT_NO_FATAL_FAILURE(ExpectBigEdgeSum(RunBoth(parts, 97)));
}

}  // namespace
}  // namespace sluice
