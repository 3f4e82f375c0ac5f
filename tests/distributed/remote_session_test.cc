// RemoteSession against a real local cluster: distributed steps give the local Session's
// results, also for two sessions at once; feeds are checked by the master as the local Session
// checks them, and checkpoints of variables on the workers round-trip with the local
// Save/Restore (same file format).
#include "distributed/remote_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/local_cluster.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/variables.h"
#include "runtime/session/checkpoint.h"
#include "runtime/session/session.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::kW0;
using test::kW1;
using test::Mlp;
using test::StartCluster;
using test::StartDefaultCluster;
using test::StatusHas;
using test::TensorEq;
using test::TensorNear;

// Variable "a" on worker 0 and "b" on worker 1, initialised to constants, and a step that
// adds one to both.
struct TwoVariables {
  Scope root = ops::NewRootScope();
  Output x, a, b, sum;
  std::shared_ptr<const Graph> graph;
  TwoVariables() {
    Scope w0 = root.WithDevice("/job:worker/task:0");
    Scope w1 = root.WithDevice("/job:worker/task:1");
    x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({2}));
    a = ops::VariableWithInit(w0.WithOpName("a"),
                              ops::Const(w0, Tensor::FromVector<float>({1, 2})));
    b = ops::VariableWithInit(w1.WithOpName("b"),
                              ops::Const(w1, Tensor::FromVector<float>({10, 20, 30})));
    ops::AssignAdd(w0.WithOpName("bump_a"), a, Tensor::FromVector<float>({1, 1}));
    ops::AssignAdd(w1.WithOpName("bump_b"), b, Tensor::FromVector<float>({1, 1, 1}));
    sum = ops::Add(w1.WithOpName("sum"), x, a);
    ops::GlobalVariablesInitializer(root.WithOpName("init"));
    graph = *root.Finalize();
  }
};

// Nothing listens on the master's port (a socket holds it, bound but not listening): after the
// connect timeout the error says why the connection failed, not only that time ran out.
TEST(RemoteSessionTest, AnUnreachableMasterIsReportedWithTheConnectionError) {
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(sa.sin_port));
  TwoVariables m;
  RemoteSessionOptions options;
  options.connect_timeout = absl::Milliseconds(500);
  absl::Status s = RemoteSession::Create(address, m.graph, options).status();
  close(holder);
  EXPECT_TRUE(StatusHas(
      s, absl::StatusCode::kUnavailable,
      absl::StrCat("creating a session on master ", address, ": no answer within 500ms: ")))
      << s;
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable, "Connection refused")) << s;
}

TEST(RemoteSessionTest, MasterChecksFeedsLikeTheLocalSession) {
  auto cluster = StartDefaultCluster();
  ASSERT_NE(cluster, nullptr);
  TwoVariables m;
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<Tensor> out;
  EXPECT_TRUE(
      StatusHas((*remote)->Run({{"x", Tensor::FromVector<int32_t>({1, 2})}}, {"x"}, {}, &out),
                absl::StatusCode::kInvalidArgument,
                "feed for 'x:0' has dtype int32 but the graph expects float32"));
  EXPECT_TRUE(
      StatusHas((*remote)->Run({{"x", Tensor::FromVector<float>({1, 2, 3})}}, {"x"}, {}, &out),
                absl::StatusCode::kInvalidArgument, "feed for 'x:0' has shape [3]"));
  ASSERT_TRUE((*remote)->Run({}, {}, {"init"}, &out).ok());
  ASSERT_TRUE((*remote)->Run({{"x", Tensor::FromVector<float>({5, 5})}}, {"sum"}, {}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({6, 7})));
}

// Feeds and fetches travel whole inside RunStep and RunGraph: with default flags they may be
// far larger than gRPC's 4 MiB default message cap (16 MiB here, each way, on both hops).
TEST(RemoteSessionTest, FeedsAndFetchesLargerThanGrpcsDefaultMessageCap) {
  auto cluster = StartDefaultCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1}));
  Output y = ops::Mul(root.WithOpName("y").WithDevice("/job:worker/task:1"), x,
                      ops::Const(root, Tensor::Scalar<float>(2)));
  auto remote = RemoteSession::Create(cluster->master_address(), *root.Finalize());
  ASSERT_TRUE(remote.ok()) << remote.status();
  const int64_t n = int64_t{4} << 20;  // 16 MiB of float32.
  std::vector<float> values(n), doubled(n);
  for (int64_t i = 0; i < n; ++i) {
    values[i] = static_cast<float>(i % 1000);
    doubled[i] = 2 * values[i];
  }
  std::vector<Tensor> out;
  absl::Status s = (*remote)->Run({{x, Tensor::FromVector<float>(values)}}, {y}, &out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>(doubled)));
  // One tensor fetched twice comes back twice (a guard for any future move of fetched tensors
  // into the master's response).
  ASSERT_TRUE((*remote)->Run({{x, Tensor::FromVector<float>({1, 2})}}, {y, y}, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({2, 4})));
  EXPECT_TRUE(TensorEq(out[1], Tensor::FromVector<float>({2, 4})));
}

TEST(RemoteSessionTest, CheckpointsRoundTripWithTheLocalSession) {
  auto cluster = StartDefaultCluster();
  ASSERT_NE(cluster, nullptr);
  TwoVariables m;
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/remote.ckpt");
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<Tensor> out;
  EXPECT_TRUE(
      StatusHas((*remote)->Save(path), absl::StatusCode::kFailedPrecondition, "not initialized"));
  ASSERT_TRUE((*remote)->Run({}, {}, {"init"}, &out).ok());
  ASSERT_TRUE((*remote)->Run({}, {}, {"bump_a", "bump_b"}, &out).ok());
  ASSERT_TRUE((*remote)->Save(path).ok());

  // The local session reads what the workers held.
  auto local = Session::Create(m.graph);
  ASSERT_TRUE(local.ok());
  ASSERT_TRUE(RestoreCheckpoint(**local, path).ok());
  ASSERT_TRUE((*local)->Run({}, {"a", "b"}, {}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({2, 3})));
  EXPECT_TRUE(TensorEq(out[1], Tensor::FromVector<float>({11, 21, 31})));

  // A local save restores onto the workers; a subset restores only that variable.
  ASSERT_TRUE((*local)->Run({}, {}, {"bump_a", "bump_b"}, &out).ok());
  ASSERT_TRUE(SaveCheckpoint(**local, path).ok());
  ASSERT_TRUE((*remote)->Run({}, {}, {"bump_a", "bump_b"}, &out).ok());  // a=3,4 b=12,22,32
  ASSERT_TRUE((*remote)->Restore(path, {"b"}).ok());
  ASSERT_TRUE((*remote)->Run({}, {"a", "b"}, {}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({3, 4})));
  EXPECT_TRUE(TensorEq(out[1], Tensor::FromVector<float>({12, 22, 32})));
  ASSERT_TRUE((*remote)->Restore(path).ok());
  ASSERT_TRUE((*remote)->Run({}, {"a"}, {}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({3, 4})));

  // Errors are the local ones, and nothing changes.
  EXPECT_TRUE(StatusHas((*remote)->Restore(path, {"nope"}), absl::StatusCode::kNotFound,
                        "no variable 'nope' in the graph"));
  EXPECT_TRUE(StatusHas((*remote)->Restore(path + ".missing"), absl::StatusCode::kNotFound, ""));
}

TEST(RemoteSessionTest, DistributedResultsEqualLocal) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Mlp m;
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok()) << remote.status();
  auto devices = (*remote)->ListDevices();
  ASSERT_TRUE(devices.ok());
  EXPECT_EQ(*devices, (std::vector<std::string>{kW0, kW1}));
  auto local = Session::Create(m.graph);
  ASSERT_TRUE(local.ok());
  for (int i = 0; i < 3; ++i) {  // Repeated steps reuse the registered partitions.
    Tensor batch = Mlp::Batch(5, 0.3f * (i + 1));
    std::vector<Tensor> got, want;
    ASSERT_TRUE((*remote)->Run({{m.x, batch}}, {m.y}, &got).ok());
    ASSERT_TRUE((*local)->Run({{m.x, batch}}, {m.y}, &want).ok());
    EXPECT_TRUE(TensorNear(got[0], want[0], 1e-6, 1e-6));
  }
  // Both workers ran a partition.
  EXPECT_GT(Beat(cluster->worker(0).control_address).identity().incarnation(), 0u);
}

TEST(RemoteSessionTest, ConcurrentStepsOfTwoSessions) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Mlp m;
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a"), DType::kFloat32, TensorShape({3}));
  Output b = ops::Neg(root.WithDevice("/job:worker/task:1"),
                      ops::Square(root.WithDevice("/job:worker/task:0"), a));
  auto g2 = *root.Finalize();
  auto s1 = RemoteSession::Create(cluster->master_address(), m.graph);
  auto s2 = RemoteSession::Create(cluster->master_address(), g2);
  ASSERT_TRUE(s1.ok() && s2.ok());
  auto local = *Session::Create(m.graph);
  std::vector<Tensor> want;
  ASSERT_TRUE(local->Run({{m.x, Mlp::Batch(2, 0.5f)}}, {m.y}, &want).ok());
  std::thread t1([&] {
    for (int i = 0; i < 10; ++i) {
      std::vector<Tensor> got;
      ASSERT_TRUE((*s1)->Run({{m.x, Mlp::Batch(2, 0.5f)}}, {m.y}, &got).ok());
      EXPECT_TRUE(TensorNear(got[0], want[0], 1e-6, 1e-6));
    }
  });
  std::thread t2([&] {
    for (int i = 0; i < 10; ++i) {
      std::vector<Tensor> got;
      float f = static_cast<float>(i);
      ASSERT_TRUE((*s2)->Run({{a, Tensor::FromVector<float>({f, 1, -2})}}, {b}, &got).ok());
      EXPECT_TRUE(TensorEq(got[0], Tensor::FromVector<float>({-f * f, -1, -4})));
    }
  });
  t1.join();
  t2.join();
}

// Twelve clients at once, on the servers' default flags: every one finishes its steps (credit
// windows are per step, so no client's tensors hold up another's), and the step times' spread
// is reported.
TEST(RemoteSessionTest, TwelveConcurrentClientsAllProgress) {
  auto cluster = StartDefaultCluster();
  ASSERT_NE(cluster, nullptr);
  Mlp m;
  constexpr int kClients = 12, kSteps = 10;
  std::vector<std::vector<double>> step_ms(kClients);
  std::vector<absl::Status> failures(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto session = RemoteSession::Create(cluster->master_address(), m.graph,
                                           {.step_timeout = absl::Seconds(20)});
      if (!session.ok()) {
        failures[c] = session.status();
        return;
      }
      for (int i = 0; i < kSteps; ++i) {
        std::vector<Tensor> out;
        const absl::Time start = absl::Now();
        absl::Status s = (*session)->Run({{m.x, Mlp::Batch(4, 0.1f * c)}}, {m.y}, &out);
        step_ms[c].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        if (!s.ok()) {
          failures[c] = s;
          return;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  std::vector<double> all;
  for (int c = 0; c < kClients; ++c) {
    EXPECT_TRUE(failures[c].ok()) << "client " << c << ": " << failures[c];
    EXPECT_EQ(step_ms[c].size(), static_cast<size_t>(kSteps)) << "client " << c;
    all.insert(all.end(), step_ms[c].begin(), step_ms[c].end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_FALSE(all.empty());
  const double p50 = all[all.size() / 2], p99 = all[(all.size() * 99) / 100];
  std::cout << kClients << " clients x " << kSteps << " steps: p50 " << p50 << " ms, p99 " << p99
            << " ms, max " << all.back() << " ms" << std::endl;
  RecordProperty("step_ms_p50", static_cast<int>(p50));
  RecordProperty("step_ms_p99", static_cast<int>(p99));
}

}  // namespace
}  // namespace sluice
