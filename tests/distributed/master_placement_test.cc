// The distributed master and the local multi-device Session place one graph by one rule: which
// inputs are variable references comes from the OpDef ("Ref(T)"), not from a callback that only
// the Session supplied nor from the names of ops and arguments.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor_proto.h"
#include "distributed/local_cluster.h"
#include "distributed/master.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

std::string ServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/sluice/distributed/sluice_server");
}

Tensor Filled(TensorShape shape, float v) {
  Tensor t(DType::kFloat32, shape);
  t.flat<float>().setConstant(v);
  return t;
}

// ApplyMomentum's "accum" is input 1 and its Variable node is also read by another op: no name
// or position says it is a reference; only the OpDef does.
struct MomentumGraph {
  std::shared_ptr<const Graph> graph;
};

MomentumGraph Build() {
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
  MomentumGraph g;
  g.graph = *root.Finalize();
  return g;
}

TEST(MasterPlacementTest, MasterAndSessionPlaceAGraphAlikeAndColocateEveryUpdater) {
  MomentumGraph built = Build();
  // Both sides place the graph the master receives: one GraphDef, imported alike.
  proto::CreateSessionRequest create;
  create.set_protocol_version(kProtocolVersion);
  ToGraphDef(*built.graph, create.mutable_graph());
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
  cluster_opts.server_binary = ServerBinary();
  cluster_opts.num_workers = 2;
  cluster_opts.start_master = false;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(cluster_opts);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  MasterOptions master_opts;
  for (int i = 0; i < 2; ++i) {
    master_opts.workers.push_back({absl::StrCat("/job:worker/task:", i),
                                   (*cluster)->worker(i).control_address,
                                   (*cluster)->worker(i).data_address});
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
