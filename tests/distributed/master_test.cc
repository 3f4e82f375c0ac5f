// The master's service, called directly over gRPC: ExtendSession adds nodes to a session.
#include "core/tensor_proto.h"
#include "distributed/chunk_codec.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "graph/graph_def.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StartCluster;
using test::TensorEq;

TEST(MasterTest, ExtendSessionAddsNodes) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = Scope::NewRootScope();
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

}  // namespace
}  // namespace sluice
