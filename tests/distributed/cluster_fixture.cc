#include "tests/distributed/cluster_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/tensor_proto.h"
#include "distributed/grpc_util.h"
#include "distributed/protocol.h"
#include "graph/graph_def.h"
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/register.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace test {

std::string ServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/sluice/distributed/sluice_server");
}

namespace {

std::unique_ptr<LocalCluster> Start(const LocalClusterOptions& opts) {
  absl::StatusOr<std::unique_ptr<LocalCluster>> c = LocalCluster::Start(opts);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

}  // namespace

std::unique_ptr<LocalCluster> StartCluster(std::vector<std::string> worker_flags) {
  LocalClusterOptions opts;
  opts.server_binary = ServerBinary();
  opts.num_workers = 2;
  opts.worker_flags = {absl::StrCat("--max_message_bytes=", kMaxMessage), "--chunk_bytes=16384"};
  opts.worker_flags.insert(opts.worker_flags.end(), worker_flags.begin(), worker_flags.end());
  opts.master_flags = {"--heartbeat_interval_ms=100", "--heartbeat_timeout_ms=2000"};
  return Start(opts);
}

std::unique_ptr<LocalCluster> StartDefaultCluster() {
  LocalClusterOptions opts;
  opts.server_binary = ServerBinary();
  opts.num_workers = 2;
  return Start(opts);
}

absl::Status StartOneWorker(std::vector<std::string> flags, const std::string& server_binary) {
  LocalClusterOptions opts;
  opts.server_binary = server_binary;
  opts.num_workers = 1;
  opts.start_master = false;
  opts.worker_flags = std::move(flags);
  return LocalCluster::Start(opts).status();
}

proto::PeerAddress Ref(const LocalCluster& c, int i) {
  return MakePeerAddress(absl::StrCat("/job:worker/task:", i), c.worker(i).control_address,
                         c.worker(i).data_address);
}

proto::HeartbeatResponse Beat(const std::string& control_address) {
  auto stub = proto::Control::NewStub(MakeChannel(control_address));
  proto::HeartbeatRequest req;
  req.set_protocol_version(kProtocolVersion);
  proto::HeartbeatResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp;
}

Mlp::Mlp() {
  x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 8}));
  std::vector<float> w1v(8 * 16), w2v(16 * 4);
  for (size_t i = 0; i < w1v.size(); ++i) w1v[i] = 0.01f * ((i * 37) % 23) - 0.1f;
  for (size_t i = 0; i < w2v.size(); ++i) w2v[i] = 0.02f * ((i * 11) % 17) - 0.15f;
  Scope l1 = root.NewSubScope("layer1").WithDevice("/job:worker/task:0");
  Scope l2 = root.NewSubScope("layer2").WithDevice("/job:worker/task:1");
  Output h = ops::Relu(
      l1, ops::MatMul(l1, x, ops::Const(l1, Tensor::FromVector<float>(w1v, TensorShape({8, 16})))));
  y = ops::Softmax(
      l2, ops::MatMul(l2, h, ops::Const(l2, Tensor::FromVector<float>(w2v, TensorShape({16, 4})))));
  graph = *root.Finalize();
}

Tensor Mlp::Batch(int n, float scale) {
  std::vector<float> v(n * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = scale * (static_cast<float>(i % 13) - 6.0f);
  return Tensor::FromVector<float>(v, TensorShape({n, 8}));
}

void SendGarbage(const std::string& address, const std::string& bytes) {
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  char buf[256];
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 100};
    if (poll(&p, 1, 100) > 0 && read(fd, buf, sizeof(buf)) <= 0) break;  // Closed by the peer.
  }
  close(fd);
}

std::vector<StepCoordinator::Partition> RegisterOnWorkers(const LocalCluster& cluster,
                                                          const Graph& graph,
                                                          const std::vector<std::string>& devices,
                                                          const Endpoint& fetch) {
  Placement placement = *PlaceGraph(graph, devices);
  PartitionedGraph parts = *PartitionGraph(graph, placement);
  std::vector<StepCoordinator::Partition> out;
  for (int w = 0; w < 2; ++w) {
    const GraphPartition* part = nullptr;
    for (const auto& p : parts.partitions) {
      if (p.device == (w == 0 ? kW0 : kW1)) part = &p;
    }
    EXPECT_NE(part, nullptr);
    proto::RegisterGraphRequest reg;
    reg.set_protocol_version(kProtocolVersion);
    ToGraphDef(*part->graph, reg.mutable_partition());
    for (int i = 0; i < 2; ++i) {
      proto::PeerAddress* peer = reg.add_peers();
      peer->set_task_prefix(absl::StrCat("/job:worker/task:", i));
      peer->set_control_address(cluster.worker(i).control_address);
      peer->set_data_address(cluster.worker(i).data_address);
    }
    if (w == 1) reg.add_fetches(parts.Locate(fetch)->second.DebugString());
    auto stub = proto::Control::NewStub(MakeChannel(cluster.worker(w).control_address));
    proto::RegisterGraphResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub->RegisterGraph(&ctx, reg, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    StepCoordinator::Partition run;
    run.worker = Ref(cluster, w);
    run.request.set_graph_handle(resp.graph_handle());
    run.request.set_timeout_ms(30000);
    out.push_back(run);
  }
  return out;
}

ChainStep MakeChain(const LocalCluster& cluster) {
  RegisterAllOps();
  ChainStep out;
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a").WithDevice("/job:client/task:0"),
                              DType::kFloat32, TensorShape({2}));
  Output b = ops::Neg(root.WithOpName("b").WithDevice("/job:worker/task:0"), a);
  Output c = ops::Neg(root.WithOpName("c").WithDevice("/job:worker/task:1"), b);
  out.graph = *root.Finalize();
  out.partitions = RegisterOnWorkers(cluster, *out.graph, {kClient, kW0, kW1}, c.endpoint());
  out.a_name = "a:0";
  return out;
}

absl::StatusOr<proto::RunGraphResponse> RunPartition(StepCoordinator::Partition partition,
                                                     int64_t step) {
  auto stub = proto::Control::NewStub(MakeChannel(partition.worker.control_address()));
  partition.request.set_protocol_version(kProtocolVersion);
  partition.request.set_step_id(step);
  proto::RunGraphResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  grpc::Status s = stub->RunGraph(&ctx, partition.request, &resp);
  if (!s.ok()) return FromGrpc(s);
  return resp;
}

absl::StatusOr<proto::RunGraphResponse> RunBoth(
    const std::vector<StepCoordinator::Partition>& parts, int64_t step) {
  absl::StatusOr<proto::RunGraphResponse> r0;
  std::thread sender([&] { r0 = RunPartition(parts[0], step); });
  absl::StatusOr<proto::RunGraphResponse> r1 = RunPartition(parts[1], step);
  sender.join();
  if (!r0.ok()) return r0.status();
  return r1;
}

std::vector<StepCoordinator::Partition> RegisterTwoTensorEdge(const LocalCluster& cluster) {
  RegisterAllOps();
  Scope root = ops::NewRootScope();
  Scope s0 = root.WithDevice("/job:worker/task:0");
  Output k = ops::Const(s0.WithOpName("k"), Tensor::FromVector<float>({2, -3}));
  Output c = ops::Add(root.WithOpName("c").WithDevice("/job:worker/task:1"),
                      ops::Neg(s0.WithOpName("neg"), k), ops::Square(s0.WithOpName("sq"), k));
  std::shared_ptr<const Graph> graph = *root.Finalize();
  std::vector<StepCoordinator::Partition> parts =
      RegisterOnWorkers(cluster, *graph, {kW0, kW1}, c.endpoint());
  for (auto& p : parts) p.request.set_timeout_ms(60000);
  return parts;
}

std::vector<StepCoordinator::Partition> RegisterBigEdge(const LocalCluster& cluster) {
  RegisterAllOps();
  Scope root = ops::NewRootScope();
  Scope s0 = root.WithDevice("/job:worker/task:0");
  Output big =
      ops::Fill(s0.WithOpName("big"), ops::Const(s0, Tensor::FromVector<int64_t>({kBigEdgeFloats})),
                ops::Const(s0, Tensor::Scalar<float>(0.5f)));
  Output sum = ops::ReduceSum(root.WithOpName("sum").WithDevice("/job:worker/task:1"), big, {0});
  std::shared_ptr<const Graph> graph = *root.Finalize();
  std::vector<StepCoordinator::Partition> parts =
      RegisterOnWorkers(cluster, *graph, {kW0, kW1}, sum.endpoint());
  for (auto& p : parts) p.request.set_timeout_ms(120000);
  return parts;
}

void ExpectBigEdgeSum(const absl::StatusOr<proto::RunGraphResponse>& r) {
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(TensorEq(*TensorFromProto(r->fetches(0).tensor()),
                       Tensor::Scalar<float>(0.5f * kBigEdgeFloats)));
}

grpc::Status SendAbort(const std::string& control_address, int64_t step, const std::string& reason,
                       const std::string& lost_task) {
  proto::AbortStepRequest abort;
  abort.set_protocol_version(kProtocolVersion);
  abort.set_step_id(step);
  abort.set_reason(reason);
  abort.set_lost_task(lost_task);
  proto::AbortStepResponse aborted;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return proto::Control::NewStub(MakeChannel(control_address))->AbortStep(&ctx, abort, &aborted);
}

std::unique_ptr<EdgeControlStream> OpenEdgeControl(const std::string& control_address,
                                                   const std::string& edge) {
  auto out = std::make_unique<EdgeControlStream>();
  out->stub = proto::Control::NewStub(MakeChannel(control_address));
  out->stream = out->stub->EdgeControl(&out->ctx);
  proto::EdgeControlMessage open;
  open.mutable_open()->set_protocol_version(kProtocolVersion);
  open.mutable_open()->set_edge(edge);
  if (!out->stream->Write(open)) {
    ADD_FAILURE() << "cannot open edge " << edge << " on " << control_address;
    return nullptr;
  }
  return out;
}

}  // namespace test
}  // namespace sluice
