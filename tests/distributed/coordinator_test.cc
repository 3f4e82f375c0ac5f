// StepCoordinator and HeartbeatMonitor against real workers: steps across hand-made partitions
// complete or are aborted, a killed or hung worker fails the step in bounded time and rejoins,
// heartbeat rounds are not stretched by hung workers, a restart is reported once, and a
// worker's failure names the worker (and, for an oversized feed, the flag).
#include "distributed/coordinator.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/tensor_proto.h"
#include "distributed/data_plane.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/remote_session.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/kernel/rendezvous.h"
#include "runtime/session/session.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::ChainStep;
using test::kClient;
using test::kMaxMessage;
using test::kW0;
using test::MakeChain;
using test::Mlp;
using test::Ref;
using test::ServerBinary;
using test::StartCluster;
using test::StatusHas;
using test::TensorEq;
using test::TensorNear;
using test::WaitFor;

TEST(CoordinatorTest, StepAcrossHandMadePartitionsCompletes) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  ChainStep chain = MakeChain(*cluster);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(100), .timeout = absl::Seconds(2)});
  monitor.Watch(Ref(*cluster, 0));
  monitor.Watch(Ref(*cluster, 1));
  StepCoordinator coord(&monitor);
  absl::StatusOr<std::vector<proto::RunGraphResponse>> result;
  std::thread run([&] { result = coord.Run(77, chain.partitions); });
  // Play the client device: push `a` to task 0 over the data plane.
  DataClient client(MakeChannel(cluster->worker(0).data_address, kMaxMessage), {});
  ASSERT_TRUE(client
                  .Push(77, Rendezvous::CreateKey(77, kClient, kW0, chain.a_name),
                        Tensor::FromVector<float>({1.5f, -2}))
                  .ok());
  run.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(TensorEq(*TensorFromProto((*result)[1].fetches(0).tensor()),
                       Tensor::FromVector<float>({1.5f, -2})));
}

TEST(CoordinatorTest, AbortFailsPendingReceives) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  ChainStep chain = MakeChain(*cluster);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(100), .timeout = absl::Seconds(2)});
  monitor.Watch(Ref(*cluster, 0));
  monitor.Watch(Ref(*cluster, 1));
  StepCoordinator coord(&monitor);
  absl::StatusOr<std::vector<proto::RunGraphResponse>> result;
  std::thread run([&] { result = coord.Run(78, chain.partitions); });
  ASSERT_TRUE(WaitFor([&] {
    return Beat(cluster->worker(0).control_address).pending_receives() == 1 &&
           Beat(cluster->worker(1).control_address).pending_receives() == 1;
  }));
  coord.Abort(78, absl::CancelledError("client cancelled step 78"));
  run.join();
  EXPECT_TRUE(StatusHas(result.status(), absl::StatusCode::kCancelled, "client cancelled step 78"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        WaitFor([&] { return Beat(cluster->worker(i).control_address).active_steps() == 0; }));
    proto::HeartbeatResponse b = Beat(cluster->worker(i).control_address);
    EXPECT_EQ(b.pending_receives(), 0);
    EXPECT_EQ(b.buffered_bytes(), 0);
  }
}

TEST(CoordinatorTest, WorkerKilledMidStepFailsInBoundedTimeAndRejoins) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  ChainStep chain = MakeChain(*cluster);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(100), .timeout = absl::Seconds(2)});
  monitor.Watch(Ref(*cluster, 0));
  monitor.Watch(Ref(*cluster, 1));
  ASSERT_TRUE(WaitFor([&] { return monitor.incarnation("/job:worker/task:0") != 0; }));
  const uint64_t old_incarnation = monitor.incarnation("/job:worker/task:0");
  StepCoordinator coord(&monitor);
  absl::StatusOr<std::vector<proto::RunGraphResponse>> result;
  absl::Time finished;
  std::thread run([&] {
    result = coord.Run(79, chain.partitions);
    finished = absl::Now();
  });
  ASSERT_TRUE(WaitFor([&] {
    return Beat(cluster->worker(1).control_address).pending_receives() == 1 &&
           Beat(cluster->worker(0).control_address).pending_receives() == 1;
  }));
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster->KillWorker(0).ok());
  run.join();
  EXPECT_LT(finished - killed, absl::Seconds(5));
  EXPECT_TRUE(StatusHas(result.status(), absl::StatusCode::kUnavailable,
                        "step 79 failed: lost "
                        "/job:worker/task:0 at " +
                            cluster->worker(0).control_address));
  // The surviving worker's pending receive was aborted and it stays usable.
  EXPECT_TRUE(
      WaitFor([&] { return Beat(cluster->worker(1).control_address).active_steps() == 0; }));
  EXPECT_EQ(Beat(cluster->worker(1).control_address).pending_receives(), 0);
  Mlp m;
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok());
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas((*remote)->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &out),
                        absl::StatusCode::kUnavailable, "/job:worker/task:0"));

  // Restart: a new incarnation, seen within 2 s of the worker listening (pings to a task whose
  // last ping failed wait for the connection: an unpolled attempt took ~8 s); the master
  // re-registers and new steps succeed.
  ASSERT_TRUE(cluster->RestartWorker(0).ok());
  const absl::Time listening = absl::Now();
  ASSERT_TRUE(WaitFor([&] {
    uint64_t inc = monitor.incarnation("/job:worker/task:0");
    return inc != 0 && inc != old_incarnation;
  }));
  EXPECT_LT(absl::Now() - listening, absl::Seconds(2));
  absl::Status s;
  ASSERT_TRUE(WaitFor([&] {
    s = (*remote)->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &out);
    return s.ok();
  })) << s;
  std::vector<Tensor> want;
  ASSERT_TRUE((*Session::Create(m.graph))->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &want).ok());
  EXPECT_TRUE(TensorNear(out[0], want[0], 1e-6, 1e-6));
}

TEST(CoordinatorTest, HungWorkerIsDetectedByMissedHeartbeats) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  ChainStep chain = MakeChain(*cluster);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(100), .timeout = absl::Seconds(2)});
  monitor.Watch(Ref(*cluster, 0));
  monitor.Watch(Ref(*cluster, 1));
  StepCoordinator coord(&monitor);
  absl::StatusOr<std::vector<proto::RunGraphResponse>> result;
  absl::Time finished;
  std::thread run([&] {
    result = coord.Run(80, chain.partitions);
    finished = absl::Now();
  });
  ASSERT_TRUE(WaitFor([&] {
    return Beat(cluster->worker(0).control_address).pending_receives() == 1 &&
           Beat(cluster->worker(1).control_address).pending_receives() == 1;
  }));
  const absl::Time paused = absl::Now();
  ASSERT_TRUE(cluster->PauseWorker(0).ok());  // Connected but silent: only heartbeats tell.
  run.join();
  EXPECT_GE(finished - paused, absl::Seconds(1));
  EXPECT_LT(finished - paused, absl::Seconds(5));
  EXPECT_TRUE(StatusHas(result.status(), absl::StatusCode::kUnavailable,
                        "step 80 failed: lost /job:worker/task:0 at " +
                            cluster->worker(0).control_address + ": task /job:worker/task:0"));
  EXPECT_TRUE(StatusHas(result.status(), absl::StatusCode::kUnavailable, "missed heartbeats"));
  EXPECT_TRUE(
      WaitFor([&] { return Beat(cluster->worker(1).control_address).active_steps() == 0; }));
  EXPECT_EQ(Beat(cluster->worker(1).control_address).pending_receives(), 0);
  ASSERT_TRUE(cluster->ResumeWorker(0).ok());
}

// A worker marked lost (hung past the timeout) is still pinged; when it answers again with the
// same incarnation it is healthy again, and no restart is reported.
TEST(CoordinatorTest, ALostWorkerThatAnswersAgainHeals) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  HeartbeatMonitor monitor(
      {.interval = absl::Milliseconds(50), .timeout = absl::Milliseconds(500)});
  absl::Mutex mu;
  std::vector<std::string> reports;
  monitor.AddListener([&](const proto::PeerAddress&, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    reports.push_back(std::string(why.message()));
  });
  monitor.Watch(Ref(*cluster, 1));
  const std::string task = "/job:worker/task:1";
  ASSERT_TRUE(WaitFor([&] { return monitor.answers(task) > 0; }));
  const uint64_t incarnation = monitor.incarnation(task);
  ASSERT_TRUE(cluster->PauseWorker(1).ok());
  ASSERT_TRUE(WaitFor([&] { return !monitor.health(task).ok(); }));
  EXPECT_TRUE(StatusHas(monitor.health(task), absl::StatusCode::kUnavailable,
                        "task /job:worker/task:1 at " + cluster->worker(1).control_address +
                            " answered no heartbeat for "));
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());
  ASSERT_TRUE(WaitFor([&] { return monitor.health(task).ok(); }));
  EXPECT_EQ(monitor.incarnation(task), incarnation);
  absl::MutexLock lock(&mu);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("missed heartbeats; timeout 500ms"), std::string::npos) << reports[0];
}

// Heartbeats go to every worker at once: hung workers, each using up its whole heartbeat
// deadline, do not stretch the rounds (one at a time, five hung workers would make every round
// last 5 x 200 ms, and a worker hanging later would be noticed that much later).
TEST(CoordinatorTest, HungWorkersDoNotStretchHeartbeatRounds) {
  LocalClusterOptions opts;
  opts.server_binary = ServerBinary();
  opts.num_workers = 6;
  opts.start_master = false;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(opts);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(200), .timeout = absl::Seconds(1)});
  absl::Mutex mu;
  std::vector<std::string> lost;
  monitor.AddListener([&](const proto::PeerAddress& w, const absl::Status&) {
    absl::MutexLock lock(&mu);
    lost.push_back(w.task_prefix());
  });
  for (int i = 0; i < 6; ++i) monitor.Watch(Ref(**cluster, i));
  ASSERT_TRUE(WaitFor([&] { return monitor.incarnation("/job:worker/task:5") != 0; }));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*cluster)->PauseWorker(i).ok());
  // Ten rounds: about 10 x (200 ms deadline + 200 ms pause) = 4 s when concurrent, 12 s when
  // one at a time. A liveness bound with wide margins on both sides, not a benchmark.
  const int64_t first = monitor.rounds();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return monitor.rounds() >= first + 10; }));
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  EXPECT_TRUE(monitor.health("/job:worker/task:5").ok()) << monitor.health("/job:worker/task:5");
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(lost.size(), 5u);
    EXPECT_EQ(std::count(lost.begin(), lost.end(), "/job:worker/task:5"), 0);
  }
  for (int i = 0; i < 5; ++i) EXPECT_TRUE((*cluster)->ResumeWorker(i).ok());
}

// A restart the master learns of outside a heartbeat (RegisterGraph returns the incarnation) is
// reported to listeners once, then, and the heartbeats that see the same incarnation later report
// nothing: they would otherwise fail steps already running on the new incarnation.
TEST(CoordinatorTest, AnIncarnationLearnedAtRegistrationIsNotReportedAgainByHeartbeats) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(50), .timeout = absl::Seconds(10)});
  absl::Mutex mu;
  std::vector<std::string> reports;
  monitor.AddListener([&](const proto::PeerAddress&, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    reports.push_back(std::string(why.message()));
  });
  monitor.Watch(Ref(*cluster, 1));
  const uint64_t old_incarnation =
      Beat(cluster->worker(1).control_address).identity().incarnation();
  ASSERT_TRUE(
      WaitFor([&] { return monitor.incarnation("/job:worker/task:1") == old_incarnation; }));
  monitor.NoteIncarnation("/job:worker/task:1", old_incarnation);  // Known: nothing to report.
  ASSERT_TRUE(cluster->KillWorker(1).ok());
  ASSERT_TRUE(cluster->RestartWorker(1).ok());
  // What the master does with a RegisterGraph response from the restarted worker.
  const uint64_t new_incarnation =
      Beat(cluster->worker(1).control_address).identity().incarnation();
  ASSERT_NE(new_incarnation, old_incarnation);
  monitor.NoteIncarnation("/job:worker/task:1", new_incarnation);
  EXPECT_EQ(monitor.incarnation("/job:worker/task:1"), new_incarnation);
  const int64_t seen = monitor.answers("/job:worker/task:1");
  // Heartbeats see it too.
  ASSERT_TRUE(WaitFor([&] { return monitor.answers("/job:worker/task:1") >= seen + 5; }));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("restarted (new incarnation)"), std::string::npos) << reports[0];
}

// NoteIncarnation itself, with heartbeats an hour apart (so none interferes): a first sighting
// is recorded silently, a new incarnation is reported at once and only once.
TEST(CoordinatorTest, NoteIncarnationReportsARestartAtOnce) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  HeartbeatMonitor monitor({.interval = absl::Hours(1), .timeout = absl::Hours(2)});
  absl::Mutex mu;
  std::vector<std::string> reports;
  monitor.AddListener([&](const proto::PeerAddress& w, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    reports.push_back(absl::StrCat(w.task_prefix(), ": ", why.message()));
  });
  monitor.Watch(Ref(*cluster, 1));
  const std::string& w1 = cluster->worker(1).control_address;
  const uint64_t old_incarnation = Beat(w1).identity().incarnation();
  monitor.NoteIncarnation("/job:worker/task:1", old_incarnation);
  EXPECT_EQ(monitor.incarnation("/job:worker/task:1"), old_incarnation);
  ASSERT_TRUE(cluster->KillWorker(1).ok());
  ASSERT_TRUE(cluster->RestartWorker(1).ok());
  const uint64_t new_incarnation = Beat(w1).identity().incarnation();
  monitor.NoteIncarnation("/job:worker/task:1", new_incarnation);
  monitor.NoteIncarnation("/job:worker/task:1", new_incarnation);
  EXPECT_EQ(monitor.incarnation("/job:worker/task:1"), new_incarnation);
  EXPECT_TRUE(monitor.health("/job:worker/task:1").ok());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], absl::StrCat("/job:worker/task:1: task /job:worker/task:1 at ", w1,
                                     " restarted (new incarnation)"));
}

// The workers of StartCluster cap gRPC messages at 64 KiB (--max_message_bytes), and a step's feeds
// for a worker travel whole inside its RunGraph request: a bigger feed fails the step, naming the
// worker and the flag.
TEST(CoordinatorTest, AFeedOverAWorkersMessageCapNamesTheWorkerAndTheFlag) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1}));
  Output y = ops::Neg(root.WithOpName("y").WithDevice("/job:worker/task:1"), x);
  auto remote = RemoteSession::Create(cluster->master_address(), *root.Finalize());
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<Tensor> out;
  absl::Status s =
      (*remote)->Run({{x, Tensor(DType::kFloat32, TensorShape({1 << 18}))}}, {y}, &out);
  EXPECT_TRUE(StatusHas(
      s, absl::StatusCode::kResourceExhausted,
      absl::StrCat("failed on /job:worker/task:1 at ", cluster->worker(1).control_address, ": ")))
      << s;
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kResourceExhausted,
                        "(a step's feeds and fetches of a worker travel whole in its RunGraph "
                        "call; see that worker's --max_message_bytes)"))
      << s;
  // Small feeds still run.
  ASSERT_TRUE((*remote)->Run({{x, Tensor::FromVector<float>({1, -2})}}, {y}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({-1, 2})));
}

}  // namespace
}  // namespace sluice
