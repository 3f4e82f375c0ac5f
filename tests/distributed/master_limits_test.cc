// The master's bounds, on an in-process Master over two real sluice_server workers: sessions
// beyond --max_sessions are refused until one closes, a session nobody uses is closed after
// --session_idle_timeout_ms (its partitions deregistered from the workers), and a graph over
// --max_graph_bytes is refused at creation and at extension. Each error names its flag.
#include <memory>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/tensor_proto.h"
#include "distributed/local_cluster.h"
#include "distributed/master.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Beat;
using test::WaitFor;

// b = Neg(a) on task 1, a fed.
proto::CreateSessionRequest NegGraph() {
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a"), DType::kFloat32, TensorShape({2}));
  ops::Neg(root.WithOpName("b").WithDevice("/job:worker/task:1"), a);
  proto::CreateSessionRequest create;
  create.set_protocol_version(kProtocolVersion);
  ToGraphDef(**root.Finalize(), create.mutable_graph());
  return create;
}

grpc::Status RunNeg(Master& master, const std::string& handle) {
  proto::RunStepRequest run;
  run.set_protocol_version(kProtocolVersion);
  run.set_session_handle(handle);
  proto::NamedTensor* feed = run.add_feeds();
  feed->set_name("a:0");
  TensorToProto(Tensor::FromVector<float>({1, -3}), feed->mutable_tensor());
  run.add_fetches("b:0");
  proto::RunStepResponse ran;
  return master.RunStep(nullptr, &run, &ran);
}

class MasterLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions opts;
    opts.server_binary = test::ServerBinary();
    opts.start_master = false;
    auto cluster = LocalCluster::Start(opts);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }
  std::unique_ptr<Master> StartMaster(MasterOptions options) {
    for (int i = 0; i < 2; ++i) {
      options.workers.push_back(MakePeerAddress(absl::StrCat("/job:worker/task:", i),
                                                cluster_->worker(i).control_address,
                                                cluster_->worker(i).data_address));
    }
    return std::make_unique<Master>(options);
  }
  std::unique_ptr<LocalCluster> cluster_;
};

TEST_F(MasterLimitsTest, SessionsBeyondTheLimitAreRefusedUntilOneCloses) {
  auto master = StartMaster({.max_sessions = 2});
  proto::CreateSessionRequest create = NegGraph();
  proto::CreateSessionResponse s1, s2, s3;
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &s1).ok());
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &s2).ok());
  grpc::Status refused = master->CreateSession(nullptr, &create, &s3);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(),
            "CreateSession: the master holds 2 sessions, its limit (--max_sessions); close the "
            "sessions you no longer use");
  proto::CloseSessionRequest close;
  close.set_protocol_version(kProtocolVersion);
  close.set_session_handle(s1.session_handle());
  proto::CloseSessionResponse closed;
  ASSERT_TRUE(master->CloseSession(nullptr, &close, &closed).ok());
  EXPECT_TRUE(master->CreateSession(nullptr, &create, &s3).ok());
}

// Session handles carry 128 random bits: knowing one's own does not tell another's.
TEST_F(MasterLimitsTest, SessionHandlesAreUnguessable) {
  auto master = StartMaster({});
  proto::CreateSessionRequest create = NegGraph();
  proto::CreateSessionResponse s1, s2;
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &s1).ok());
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &s2).ok());
  const std::regex form("session-[0-9]+-[0-9a-f]{32}");
  EXPECT_TRUE(std::regex_match(s1.session_handle(), form)) << s1.session_handle();
  EXPECT_TRUE(std::regex_match(s2.session_handle(), form)) << s2.session_handle();
  EXPECT_NE(s1.session_handle().substr(s1.session_handle().rfind('-')),
            s2.session_handle().substr(s2.session_handle().rfind('-')));
}

TEST_F(MasterLimitsTest, AnIdleSessionIsClosedAndItsPartitionsDeregistered) {
  auto master = StartMaster({.session_idle_timeout = absl::Milliseconds(500)});
  proto::CreateSessionRequest create = NegGraph();
  proto::CreateSessionResponse created;
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &created).ok());
  ASSERT_TRUE(RunNeg(*master, created.session_handle()).ok());  // Registers the partitions.
  EXPECT_EQ(Beat(cluster_->worker(1).control_address).registered_graphs(), 1);
  // PlacementOf does not count as a use.
  ASSERT_TRUE(WaitFor([&] { return !master->PlacementOf(created.session_handle()).ok(); }));
  EXPECT_TRUE(
      WaitFor([&] { return Beat(cluster_->worker(1).control_address).registered_graphs() == 0; }));
  grpc::Status gone = RunNeg(*master, created.session_handle());
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gone.error_message(),
            absl::StrCat("unknown session handle '", created.session_handle(),
                         "' (never created, closed, or closed by the master after 500ms "
                         "unused: --session_idle_timeout_ms)"));
}

TEST_F(MasterLimitsTest, AGraphOverTheLimitIsRefused) {
  proto::CreateSessionRequest create = NegGraph();
  const int64_t bytes = static_cast<int64_t>(create.graph().ByteSizeLong());
  auto master = StartMaster({.max_graph_bytes = bytes + 10});
  proto::CreateSessionResponse created;
  ASSERT_TRUE(master->CreateSession(nullptr, &create, &created).ok());
  // Extending it past the limit is refused; the session stays as it was.
  proto::ExtendSessionRequest extend;
  extend.set_protocol_version(kProtocolVersion);
  extend.set_session_handle(created.session_handle());
  *extend.mutable_graph()->add_node() = create.graph().node(1);
  extend.mutable_graph()->mutable_node(0)->set_name("c");
  proto::ExtendSessionResponse extended;
  grpc::Status refused = master->ExtendSession(nullptr, &extend, &extended);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find(absl::StrCat(
                "ExtendSession: the graph is ", bytes + create.graph().node(1).ByteSizeLong() + 2,
                " bytes, over the master's limit of ", bytes + 10, " (--max_graph_bytes)")),
            std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(RunNeg(*master, created.session_handle()).ok());

  auto small = StartMaster({.max_graph_bytes = bytes - 1});
  refused = small->CreateSession(nullptr, &create, &created);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(), absl::StrCat("CreateSession: the graph is ", bytes,
                                                  " bytes, over the master's limit "
                                                  "of ",
                                                  bytes - 1, " (--max_graph_bytes)"));
}

}  // namespace
}  // namespace sluice
