// The master's service, called directly over gRPC (ExtendSession adds nodes to a session) and
// in process (it places a graph as the local Session does: variable references come from the
// OpDef, "Ref(T)", not from the names of ops or arguments).
#include "distributed/master.h"

#include "core/tensor_proto.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "runtime/session/session.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Filled;
using test::StartCluster;
using test::TensorEq;

TEST(MasterTest, ExtendSessionAddsNodes) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a"), DType::kFloat32, TensorShape({2}));
  ops::Neg(root.WithOpName("b").WithDevice("/job:worker/task:1"), a);
  proto::GraphDef full;
  ToGraphDef(**root.Finalize(), &full);
  proto::GraphDef first, rest;
  for (const auto& n : full.node()) *(n.name() == "b" ? rest.add_node() : first.add_node()) = n;
  auto master = proto::Master::NewStub(MakeChannel(cluster->master_address()));
  proto::CreateSessionRequest create;
  create.set_protocol_version(kProtocolVersion);
  *create.mutable_graph() = first;
  proto::CreateSessionResponse created;
  grpc::ClientContext c1;
  ASSERT_TRUE(master->CreateSession(&c1, create, &created).ok());
  proto::RunStepRequest run;
  run.set_protocol_version(kProtocolVersion);
  run.set_session_handle(created.session_handle());
  proto::NamedTensor* feed = run.add_feeds();
  feed->set_name("a:0");
  TensorToProto(Tensor::FromVector<float>({1, -3}), feed->mutable_tensor());
  run.add_fetches("b:0");
  proto::RunStepResponse ran;
  grpc::ClientContext c2;
  EXPECT_FALSE(master->RunStep(&c2, run, &ran).ok());  // No node 'b' yet.
  proto::ExtendSessionRequest extend;
  extend.set_protocol_version(kProtocolVersion);
  extend.set_session_handle(created.session_handle());
  *extend.mutable_graph() = rest;
  proto::ExtendSessionResponse extended;
  grpc::ClientContext c3;
  ASSERT_TRUE(master->ExtendSession(&c3, extend, &extended).ok());
  grpc::ClientContext c4;
  grpc::Status s = master->RunStep(&c4, run, &ran);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(
      TensorEq(*TensorFromProto(ran.fetches(0).tensor()), Tensor::FromVector<float>({-1, 3})));
}

// ApplyMomentum's "accum" is input 1 and its Variable node is also read by another op: no name
// or position says it is a reference; only the OpDef does.
std::shared_ptr<const Graph> BuildMomentumGraph() {
  Scope root = ops::NewRootScope();
  Output w = ops::Variable(root.WithOpName("w"), TensorShape({64, 64}), DType::kFloat32);
  Output acc = ops::Variable(root.WithOpName("acc"), TensorShape({64, 64}), DType::kFloat32);
  ops::Assign(root.WithOpName("init_w"), w, Filled(TensorShape({64, 64}), 1.0f));
  ops::Assign(root.WithOpName("init_acc"), acc, Filled(TensorShape({64, 64}), 0.5f));
  Output x = ops::Const(root.WithOpName("x"), Filled(TensorShape({64, 64}), 0.25f));
  Output grad = ops::MatMul(root.WithOpName("grad"), x, ops::MatMul(root, x, x));
  ops::BuildNode(root.WithOpName("update"), "ApplyMomentum",
                 {w, acc, Tensor::Scalar<float>(0.1f), grad, Tensor::Scalar<float>(0.9f)}, {}, {});
  ops::Neg(root.WithOpName("read_acc"), acc);
  return *root.Finalize();
}

TEST(MasterTest, MasterAndSessionPlaceAGraphAlikeAndColocateEveryUpdater) {
  std::shared_ptr<const Graph> built = BuildMomentumGraph();
  // Both sides place the graph the master receives: one GraphDef, imported alike.
  proto::CreateSessionRequest create;
  create.set_protocol_version(kProtocolVersion);
  ToGraphDef(*built, create.mutable_graph());
  absl::StatusOr<std::unique_ptr<Graph>> imported = GraphFromGraphDef(create.graph());
  ASSERT_TRUE(imported.ok()) << imported.status();
  std::shared_ptr<const Graph> graph(*std::move(imported));
  const Node* update = graph->FindNode("update");
  ASSERT_NE(update, nullptr);
  EXPECT_TRUE(update->IsRefInput(0));
  EXPECT_TRUE(update->IsRefInput(1));
  EXPECT_FALSE(update->IsRefInput(3));
  const std::vector<std::pair<const Node*, const Node*>> updaters = {
      {graph->FindNode("w"), update}, {graph->FindNode("acc"), update}};

  SessionOptions local_opts;
  local_opts.num_devices = 2;
  absl::StatusOr<std::unique_ptr<Session>> local = Session::Create(graph, local_opts);
  ASSERT_TRUE(local.ok()) << local.status();
  const Placement& local_placement = *(*local)->placement();

  LocalClusterOptions cluster_opts;
  cluster_opts.server_binary = test::ServerBinary();
  cluster_opts.num_workers = 2;
  cluster_opts.start_master = false;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(cluster_opts);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  MasterOptions master_opts;
  for (int i = 0; i < 2; ++i) {
    master_opts.workers.push_back(MakePeerAddress(absl::StrCat("/job:worker/task:", i),
                                                  (*cluster)->worker(i).control_address,
                                                  (*cluster)->worker(i).data_address));
  }
  Master master(master_opts);
  proto::CreateSessionResponse created;
  grpc::Status s = master.CreateSession(nullptr, &create, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  absl::StatusOr<Placement> remote_placement = master.PlacementOf(created.session_handle());
  ASSERT_TRUE(remote_placement.ok()) << remote_placement.status();

  for (const Node* n : graph->nodes()) {
    EXPECT_EQ(remote_placement->device_of[n->id()], local_placement.DeviceIndexOf(n)) << n->name();
  }
  for (auto [variable, updater] : updaters) {
    EXPECT_EQ(local_placement.DeviceIndexOf(variable), local_placement.DeviceIndexOf(updater))
        << variable->name();
    EXPECT_EQ(remote_placement->device_of[variable->id()],
              remote_placement->device_of[updater->id()])
        << variable->name();
  }

  // And the step runs on the cluster with the local Session's result.
  auto run = [&](std::vector<std::string> fetches, std::vector<std::string> targets) {
    proto::RunStepRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_session_handle(created.session_handle());
    for (auto& f : fetches) req.add_fetches(f);
    for (auto& t : targets) req.add_targets(t);
    proto::RunStepResponse resp;
    grpc::Status st = master.RunStep(nullptr, &req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<Tensor> out;
    for (const auto& f : resp.fetches()) out.push_back(*TensorFromProto(f.tensor()));
    return out;
  };
  run({}, {"init_w", "init_acc"});
  run({}, {"update"});
  std::vector<Tensor> remote_w = run({"w"}, {});
  ASSERT_EQ(remote_w.size(), 1u);

  std::vector<Tensor> local_w;
  ASSERT_TRUE((*local)->Run({}, {}, {"init_w", "init_acc"}, &local_w).ok());
  ASSERT_TRUE((*local)->Run({}, {}, {"update"}, &local_w).ok());
  ASSERT_TRUE((*local)->Run({}, {"w"}, {}, &local_w).ok());
  EXPECT_TRUE(test::TensorNear(remote_w[0], local_w[0]));
}

}  // namespace
}  // namespace sluice
