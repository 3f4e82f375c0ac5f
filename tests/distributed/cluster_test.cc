// Multi-process tests of the distributed runtime: real sluice_server processes on loopback,
// started by LocalCluster. Every wait is bounded (deadline polling or RPC deadlines); nothing
// is ordered by sleeping.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/tensor_proto.h"
#include "distributed/coordinator.h"
#include "distributed/data_plane.h"
#include "distributed/edge_sender.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/remote_session.h"
#include "graph/graph_def.h"
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/register.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/rendezvous.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;
using test::TensorEq;
using test::TensorNear;

constexpr char kW0[] = "/job:worker/task:0/device:cpu:0";
constexpr char kW1[] = "/job:worker/task:1/device:cpu:0";
constexpr char kClient[] = "/job:client/task:0/device:cpu:0";
constexpr int kMaxMessage = 64 << 10;  // Every server's gRPC message cap in these tests.

std::string ServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/sluice/distributed/sluice_server");
}

std::unique_ptr<LocalCluster> StartCluster(std::vector<std::string> worker_flags = {}) {
  LocalClusterOptions opts;
  opts.server_binary = ServerBinary();
  opts.num_workers = 2;
  opts.worker_flags = {absl::StrCat("--max_message_bytes=", kMaxMessage), "--chunk_bytes=16384"};
  opts.worker_flags.insert(opts.worker_flags.end(), worker_flags.begin(), worker_flags.end());
  opts.master_flags = {"--heartbeat_interval_ms=100", "--heartbeat_timeout_ms=2000"};
  absl::StatusOr<std::unique_ptr<LocalCluster>> c = LocalCluster::Start(opts);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Starts one worker and no master with these flags; the status of the start (for tests of a
// server that must refuse to start).
absl::Status StartOneWorker(std::vector<std::string> flags,
                            const std::string& server_binary = ServerBinary()) {
  LocalClusterOptions opts;
  opts.server_binary = server_binary;
  opts.num_workers = 1;
  opts.start_master = false;
  opts.worker_flags = std::move(flags);
  return LocalCluster::Start(opts).status();
}

WorkerRef Ref(const LocalCluster& c, int i) {
  return WorkerRef{absl::StrCat("/job:worker/task:", i), c.worker(i).control_address,
                   c.worker(i).data_address};
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

// Polls `cond` until true or 20 s passed.
template <typename F>
bool WaitFor(F cond) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (cond()) return true;
    std::this_thread::yield();
  }
  return cond();
}

// A two-layer model split across the workers: layer 1 on task 0, layer 2 on task 1.
struct Mlp {
  Scope root = ops::NewRootScope();
  Output x, y;
  std::shared_ptr<const Graph> graph;
  Mlp() {
    x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 8}));
    std::vector<float> w1v(8 * 16), w2v(16 * 4);
    for (size_t i = 0; i < w1v.size(); ++i) w1v[i] = 0.01f * ((i * 37) % 23) - 0.1f;
    for (size_t i = 0; i < w2v.size(); ++i) w2v[i] = 0.02f * ((i * 11) % 17) - 0.15f;
    Scope l1 = root.NewSubScope("layer1").WithDevice("/job:worker/task:0");
    Scope l2 = root.NewSubScope("layer2").WithDevice("/job:worker/task:1");
    Output h = ops::Relu(
        l1,
        ops::MatMul(l1, x, ops::Const(l1, Tensor::FromVector<float>(w1v, TensorShape({8, 16})))));
    y = ops::Softmax(
        l2,
        ops::MatMul(l2, h, ops::Const(l2, Tensor::FromVector<float>(w2v, TensorShape({16, 4})))));
    graph = *root.Finalize();
  }
  static Tensor Batch(int n, float scale) {
    std::vector<float> v(n * 8);
    for (size_t i = 0; i < v.size(); ++i) v[i] = scale * (static_cast<float>(i % 13) - 6.0f);
    return Tensor::FromVector<float>(v, TensorShape({n, 8}));
  }
};

TEST(ClusterTest, DistributedResultsEqualLocal) {
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

TEST(ClusterTest, TensorLargerThanTheMessageLimitCrossesWorkers) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scope root = ops::NewRootScope();
  Output v = ops::Placeholder(root.WithOpName("v"), DType::kFloat32, TensorShape({}));
  Scope s0 = root.WithDevice("/job:worker/task:0");
  Scope s1 = root.WithDevice("/job:worker/task:1");
  // 4 MiB produced on task 0, 64x the 64 KiB message cap, summed on task 1.
  Output big = ops::Mul(
      s0, ops::Fill(s0, ops::Const(s0, Tensor::FromVector<int32_t>({1024, 1024})), v), 3.0f);
  Output sum = ops::ReduceSum(s1, big, {0, 1});
  auto graph = *root.Finalize();
  auto remote = RemoteSession::Create(cluster->master_address(), graph);
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*remote)->Run({{v, Tensor::Scalar<float>(0.5f)}}, {sum}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::Scalar<float>(1.5f * 1024 * 1024)));
}

TEST(ClusterTest, ConcurrentStepsOfTwoSessions) {
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

TEST(ClusterTest, DataPlaneChunksUnderTheMessageLimitAndPullsBack) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Tensor t(DType::kFloat32, TensorShape({1 << 20}));  // 4 MiB.
  for (int i = 0; i < (1 << 20); ++i) t.data<float>()[i] = static_cast<float>(i % 1000) * 0.25f;
  const std::string& addr = cluster->worker(0).data_address;
  DataClient client(MakeChannel(addr, kMaxMessage), {.chunk_bytes = 16384});
  ASSERT_TRUE(client.Push(5, "big", t).ok());
  ASSERT_TRUE(client.Close().ok());
  DataClient puller(MakeChannel(addr, kMaxMessage), {.chunk_bytes = 16384});
  absl::StatusOr<Tensor> back = puller.Pull(5, "big", absl::Seconds(10));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(TensorEq(*back, t));
  // The cap is real: one 1 MiB chunk is refused.
  DataClient whole(MakeChannel(addr, -1), {.chunk_bytes = 1 << 20});
  absl::Status s = whole.Push(6, "big", t);
  if (s.ok()) s = whole.Close();
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kResourceExhausted, "")) << s;
  EXPECT_EQ(Beat(cluster->worker(0).control_address).buffered_bytes(), 0);
}

TEST(ClusterTest, CreditsBoundTensorsInFlight) {
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
  EXPECT_EQ(edge.credits(), 0);
}

// Writes `bytes` to a raw TCP connection and waits (bounded) for the server to close it.
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

TEST(ClusterTest, BadInputOnBothPortsIsAnErrorNotACrash) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  const LocalCluster::Process& w = cluster->worker(0);
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131) ^ 0x5a);
  SendGarbage(w.control_address, junk);
  SendGarbage(w.data_address, junk);
  SendGarbage(cluster->master_address(), "GET / HTTP/1.1\r\n\r\n");

  // Garbage inside a well-formed gRPC stream on the data port.
  auto raw_push = [&](const std::vector<grpc::ByteBuffer>& msgs) {
    grpc::ClientContext ctx;
    grpc::ByteBuffer resp;
    auto channel = MakeChannel(w.data_address, kMaxMessage);
    grpc::internal::RpcMethod method(kDataPushMethod, grpc::internal::RpcMethod::CLIENT_STREAMING);
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
        grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel.get(), method, &ctx,
                                                                      &resp));
    for (const auto& m : msgs) writer->Write(m);
    writer->WritesDone();
    return FromGrpc(writer->Finish());
  };
  grpc::Slice junk_slice(junk);
  EXPECT_TRUE(StatusHas(raw_push({grpc::ByteBuffer(&junk_slice, 1)}),
                        absl::StatusCode::kInvalidArgument, "data-plane chunk"));
  // A truncated tensor: only the first of its chunks, then the stream ends.
  Tensor t(DType::kFloat32, TensorShape({10000}));
  ChunkEncoder enc(3, "partial", t, {.chunk_bytes = 16384});
  grpc::ByteBuffer first;
  ASSERT_TRUE(enc.Next(&first));
  EXPECT_TRUE(StatusHas(raw_push({first}), absl::StatusCode::kInvalidArgument,
                        "truncated tensor 'partial' (step 3): stream ended after 16384 of 40000"));
  // An oversized chunk (more than the message cap) is refused by gRPC itself.
  ChunkEncoder huge(3, "huge", t, {.chunk_bytes = 40000});
  grpc::ByteBuffer one;
  ASSERT_TRUE(huge.Next(&one));
  Tensor big(DType::kFloat32, TensorShape({1 << 16}));
  ChunkEncoder huge2(4, "huge", big, {.chunk_bytes = 1 << 18});
  ASSERT_TRUE(huge2.Next(&one));
  EXPECT_TRUE(StatusHas(raw_push({one}), absl::StatusCode::kResourceExhausted, ""));

  // Mismatched protocol version, unknown handles.
  auto stub = proto::Control::NewStub(MakeChannel(w.control_address));
  {
    proto::HeartbeatRequest req;
    req.set_protocol_version(7);
    proto::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(
        FromGrpc(stub->Heartbeat(&ctx, req, &resp)), absl::StatusCode::kFailedPrecondition,
        "Heartbeat: protocol version mismatch: peer speaks 7, this server speaks 1"));
  }
  {
    proto::RunGraphRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_graph_handle("no-such-graph");
    proto::RunGraphResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(FromGrpc(stub->RunGraph(&ctx, req, &resp)), absl::StatusCode::kNotFound,
                          "unknown graph handle 'no-such-graph' on /job:worker/task:0"));
  }
  {
    auto master = proto::Master::NewStub(MakeChannel(cluster->master_address()));
    proto::RunStepRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_session_handle("no-such-session");
    proto::RunStepResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(StatusHas(FromGrpc(master->RunStep(&ctx, req, &resp)), absl::StatusCode::kNotFound,
                          "unknown session handle 'no-such-session'"));
  }
  // Still serving, nothing of the bad streams kept.
  proto::HeartbeatResponse beat = Beat(w.control_address);
  EXPECT_EQ(beat.buffered_bytes(), 0);
  EXPECT_EQ(beat.pending_receives(), 0);
  Mlp m;
  auto remote = RemoteSession::Create(cluster->master_address(), m.graph);
  ASSERT_TRUE(remote.ok());
  std::vector<Tensor> out;
  EXPECT_TRUE((*remote)->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &out).ok());
}

// Places `graph` on `devices`, partitions it and registers the partitions of the two workers;
// returns their RunGraph requests (task 0, task 1). `fetch` is fetched on task 1.
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

// Partitions of c = Neg(Neg(a)) with `a` on a client device that nobody runs: task 0 waits for
// `a` from the data plane, then sends Neg(a) to task 1, which fetches Neg(Neg(a)).
struct ChainStep {
  std::shared_ptr<const Graph> graph;
  std::vector<StepCoordinator::Partition> partitions;  // Task 0, task 1.
  std::string a_name;
};

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

// Runs one worker's partition of `step` by calling its RunGraph directly, as the master does.
absl::StatusOr<proto::RunGraphResponse> RunPartition(StepCoordinator::Partition partition,
                                                     int64_t step) {
  auto stub = proto::Control::NewStub(MakeChannel(partition.worker.control_address));
  partition.request.set_protocol_version(kProtocolVersion);
  partition.request.set_step_id(step);
  proto::RunGraphResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  grpc::Status s = stub->RunGraph(&ctx, partition.request, &resp);
  if (!s.ok()) return FromGrpc(s);
  return resp;
}

// Runs both partitions of `step` (task 0 on a thread): task 1's response, or the first error.
absl::StatusOr<proto::RunGraphResponse> RunBoth(
    const std::vector<StepCoordinator::Partition>& parts, int64_t step) {
  absl::StatusOr<proto::RunGraphResponse> r0;
  std::thread sender([&] { r0 = RunPartition(parts[0], step); });
  absl::StatusOr<proto::RunGraphResponse> r1 = RunPartition(parts[1], step);
  sender.join();
  if (!r0.ok()) return r0.status();
  return r1;
}

// Registers c = Neg(k) + Square(k) with k = [2, -3] on task 0: task 0 sends two tensors over
// its edge to task 1, which adds them and fetches c = [2, 12]. RunGraph timeouts of 60 s.
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

// Task 0 fills kBigEdgeFloats floats of 0.5 (64 MiB: far more than HTTP/2 windows and socket
// buffers hold) and task 1 sums them: a step whose Send can block in a data-plane write.
constexpr int64_t kBigEdgeFloats = int64_t{16} << 20;
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

// Sends AbortStep to one worker, as the master's StepCoordinator does.
grpc::Status SendAbort(const std::string& control_address, int64_t step, const std::string& reason,
                       const std::string& lost_task = "") {
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

TEST(ClusterTest, StepAcrossHandMadePartitionsCompletes) {
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

TEST(ClusterTest, AbortFailsPendingReceives) {
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

TEST(ClusterTest, WorkerKilledMidStepFailsInBoundedTimeAndRejoins) {
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

  // Restart: a new incarnation; the master re-registers and new steps succeed.
  ASSERT_TRUE(cluster->RestartWorker(0).ok());
  ASSERT_TRUE(WaitFor([&] {
    uint64_t inc = monitor.incarnation("/job:worker/task:0");
    return inc != 0 && inc != old_incarnation;
  }));
  absl::Status s;
  ASSERT_TRUE(WaitFor([&] {
    s = (*remote)->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &out);
    return s.ok();
  })) << s;
  std::vector<Tensor> want;
  ASSERT_TRUE((*Session::Create(m.graph))->Run({{m.x, Mlp::Batch(1, 1.0f)}}, {m.y}, &want).ok());
  EXPECT_TRUE(TensorNear(out[0], want[0], 1e-6, 1e-6));
}

TEST(ClusterTest, HungWorkerIsDetectedByMissedHeartbeats) {
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

// Heartbeats go to every worker at once: hung workers, each using up its whole heartbeat
// deadline, do not stretch the rounds (one at a time, five hung workers would make every round
// last 5 x 200 ms, and a worker hanging later would be noticed that much later).
TEST(ClusterTest, HungWorkersDoNotStretchHeartbeatRounds) {
  LocalClusterOptions opts;
  opts.server_binary = ServerBinary();
  opts.num_workers = 6;
  opts.start_master = false;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(opts);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(200), .timeout = absl::Seconds(1)});
  absl::Mutex mu;
  std::vector<std::string> lost;
  monitor.AddListener([&](const WorkerRef& w, const absl::Status&) {
    absl::MutexLock lock(&mu);
    lost.push_back(w.task_prefix);
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
TEST(ClusterTest, AnIncarnationLearnedAtRegistrationIsNotReportedAgainByHeartbeats) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  HeartbeatMonitor monitor({.interval = absl::Milliseconds(50), .timeout = absl::Seconds(10)});
  absl::Mutex mu;
  std::vector<std::string> reports;
  monitor.AddListener([&](const WorkerRef&, const absl::Status& why) {
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
  const int64_t seen = monitor.rounds();
  ASSERT_TRUE(WaitFor([&] { return monitor.rounds() >= seen + 5; }));  // Heartbeats see it too.
  absl::MutexLock lock(&mu);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("restarted (new incarnation)"), std::string::npos) << reports[0];
}

// NoteIncarnation itself, with heartbeats an hour apart (so none interferes): a first sighting
// is recorded silently, a new incarnation is reported at once and only once.
TEST(ClusterTest, NoteIncarnationReportsARestartAtOnce) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  HeartbeatMonitor monitor({.interval = absl::Hours(1), .timeout = absl::Hours(2)});
  absl::Mutex mu;
  std::vector<std::string> reports;
  monitor.AddListener([&](const WorkerRef& w, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    reports.push_back(absl::StrCat(w.task_prefix, ": ", why.message()));
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

// A receiver that is hung but still connected grants no credit: a step whose _Send waits for
// one must still end as soon as it is aborted, not at its deadline.
TEST(ClusterTest, AbortEndsASendWaitingForAHungPeersCredit) {
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
TEST(ClusterTest, StepFailedNoticeEndsTheStepsWaitingSends) {
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
  auto stub = proto::Control::NewStub(MakeChannel(w0));
  grpc::ClientContext ctx;
  auto stream = stub->EdgeControl(&ctx);
  proto::EdgeControlMessage open;
  open.mutable_open()->set_protocol_version(kProtocolVersion);
  open.mutable_open()->set_edge("/job:worker/task:1->/job:worker/task:0");
  ASSERT_TRUE(stream->Write(open));
  proto::EdgeControlMessage failed;
  failed.mutable_step_failed()->set_step_id(96);
  failed.mutable_step_failed()->set_code(static_cast<int>(absl::StatusCode::kInternal));
  failed.mutable_step_failed()->set_message("step 96 failed on /job:worker/task:1: boom");
  ASSERT_TRUE(stream->Write(failed));
  const bool ended = WaitFor([&] { return Beat(w0).active_steps() == 0; });
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Frees the sender if it is still waiting.
  run.join();
  stream->WritesDone();
  ctx.TryCancel();
  ASSERT_TRUE(ended) << "the step's Send kept waiting after the notice";
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kInternal,
                        "step 96 failed on /job:worker/task:1: boom"));
}

// Tensors pushed for a step that never runs on the receiver are freed after --orphan_ttl_ms.
TEST(ClusterTest, OrphanTensorsExpireAfterTheConfiguredTtl) {
  auto cluster = StartCluster({"--orphan_ttl_ms=300"});
  ASSERT_NE(cluster, nullptr);
  const std::string& w1 = cluster->worker(1).control_address;
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  Tensor orphan(DType::kFloat32, TensorShape({25000}));  // 100,000 bytes for step 700.
  ASSERT_TRUE(client.Push(700, "orphan", orphan).ok());
  ASSERT_TRUE(client.Close().ok());  // Returns once the server has it.
  EXPECT_EQ(Beat(w1).buffered_bytes(), 100000);
  // Expiry is checked by later mailbox calls: keep them coming with 4-byte tensors.
  int i = 0;
  EXPECT_TRUE(WaitFor([&] {
    EXPECT_TRUE(client.Push(701, absl::StrCat("tick", i++), Tensor::Scalar<float>(1)).ok());
    EXPECT_TRUE(client.Close().ok());
    return Beat(w1).buffered_bytes() < 100000;
  }));
}

// The workers here cap gRPC messages at 64 KiB (--max_message_bytes), and a step's feeds for a
// worker travel whole inside its RunGraph request: a bigger feed fails the step, naming the
// worker and the flag.
TEST(ClusterTest, AFeedOverAWorkersMessageCapNamesTheWorkerAndTheFlag) {
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

TEST(ClusterTest, ServerRefusesANonPositiveTtl) {
  const absl::Status s = StartOneWorker({"--orphan_ttl_ms=0"});
  // The server prints the reason to its stderr and exits with status 1; the launcher's error
  // quotes it.
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "--orphan_ttl_ms=0: the server exited before it was ready (exit "
                        "status 1); its stderr ended with:\n"));
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "\nsluice_server: INVALID_ARGUMENT: --ended_step_ttl_ms and "
                        "--orphan_ttl_ms must be > 0"));
}

TEST(ClusterTest, ServerRefusesANegativeKeepalive) {
  EXPECT_TRUE(StatusHas(StartOneWorker({"--peer_keepalive_ms=-1"}), absl::StatusCode::kUnavailable,
                        "sluice_server: INVALID_ARGUMENT: --peer_keepalive_ms must be >= 0"));
}

TEST(ClusterTest, ServerRefusesAChunkThatCannotFitAMessage) {
  absl::Status s = StartOneWorker({"--max_message_bytes=65536", "--chunk_bytes=65536"});
  EXPECT_TRUE(
      StatusHas(s, absl::StatusCode::kUnavailable,
                "sluice_server: INVALID_ARGUMENT: --chunk_bytes=65536 must be > 0 and leave "
                "4096 bytes of the 65536-byte message cap (--max_message_bytes) for the "
                "chunk header"))
      << s;
  s = StartOneWorker({"--chunk_bytes=4194304"});  // gRPC's default cap is 4 MiB.
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "of the 4194304-byte message cap (--max_message_bytes, gRPC's default)"))
      << s;
}

// A server that writes more than the launcher keeps before it fails: the error quotes whole
// lines from the end of its stderr.
TEST(ClusterTest, AFailedServersLastWholeLinesAreQuoted) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string script = absl::StrCat(tmp, "/noisy_server.sh");
  {
    std::ofstream f(script);
    f << "#!/bin/sh\ni=1\nwhile [ $i -le 300 ]; do echo \"log line $i of a failing server\" >&2; "
         "i=$((i+1)); done\nexit 3\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  const absl::Status s = StartOneWorker({}, script);
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "(exit status 3); its stderr ended with:\nlog line "));
  EXPECT_TRUE(absl::EndsWith(s.message(), "\nlog line 300 of a failing server")) << s;
  EXPECT_FALSE(absl::StrContains(s.message(), "log line 1 of")) << s;
  // 2 KiB kept: 60-odd of these 33-byte lines, each whole.
  const std::string quoted(s.message().substr(s.message().find("ended with:\n") + 12));
  for (absl::string_view line : absl::StrSplit(quoted, '\n')) {
    EXPECT_TRUE(absl::StartsWith(line, "log line ") && absl::EndsWith(line, " of a failing server"))
        << "a cut line: '" << line << "'";
  }
}

TEST(ClusterTest, AServerBinaryThatCannotRunIsNamed) {
  const std::string missing = ServerBinary() + ".missing";
  EXPECT_TRUE(StatusHas(StartOneWorker({}, missing), absl::StatusCode::kUnavailable,
                        absl::StrCat("the server exited before it was ready (exit status 127: "
                                     "cannot run ",
                                     missing, ")")));
}

// A peer hung before anything connected to it: the _Send is stuck opening the edge (gRPC waits
// for the peer's HTTP/2 handshake). Aborting the step, without or with naming the lost peer,
// must end it.
TEST(ClusterTest, AbortEndsASendStuckConnectingToAHungPeer) {
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
    if (!ended) ASSERT_TRUE(cluster->ResumeWorker(1).ok());  // Unblocks it, to end the test.
    run.join();
    ASSERT_TRUE(sent.ok()) << sent.error_message();
    ASSERT_TRUE(ended) << "the send stayed stuck after the abort (lost peer named: "
                       << name_the_peer << ")";
    EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kAborted,
                          absl::StrCat("step ", step, " aborted by the test")));
  }
  ASSERT_TRUE(cluster->ResumeWorker(1).ok());
}

// An edge cancelled because its receiver was found lost stays dead: later Sends fail at once
// instead of reopening streams that nothing would cancel again.
TEST(ClusterTest, ACancelledEdgeStaysCancelled) {
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

// A Send whose step is cancelled midway abandons its tensor between chunks: the receiver drops
// the partial tensor, the stream stays usable, and the edge gets that credit back.
TEST(ClusterTest, AStoppedPushAbandonsItsTensorAndKeepsTheStreamAndTheCredit) {
  auto cluster = StartCluster({"--credit_window=1"});
  ASSERT_NE(cluster, nullptr);
  const std::string& w1 = cluster->worker(1).control_address;
  DataClient client(MakeChannel(cluster->worker(1).data_address, kMaxMessage),
                    {.chunk_bytes = 16384});
  Tensor big(DType::kFloat32, TensorShape({32768}));  // 131072 bytes: 8 chunks.
  int asked = 0;
  absl::Status stopped = client.Push(9, "big", big, [&] { return ++asked > 2; });
  EXPECT_TRUE(StatusHas(stopped, absl::StatusCode::kCancelled,
                        "push of tensor 'big' of step 9 stopped after 32768 of 131072 bytes"));
  Tensor small = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(client.Push(9, "small", small).ok());
  ASSERT_TRUE(client.Close().ok());          // The stream's verdict: no bad chunk.
  EXPECT_EQ(Beat(w1).buffered_bytes(), 12);  // Only the small tensor arrived.

  // The receiver gives the edge its credit back for an abandoned tensor, as for one freed
  // unread: with one credit, taken by a tensor nobody consumes, the edge has none until then.
  EdgeSender edge(MakeChannel(w1), &client, "/job:client/task:0->/job:worker/task:1");
  auto key = [](int i) {
    return Rendezvous::CreateKey(10, kClient, kW1, absl::StrCat("t", i, ":0"));
  };
  ASSERT_TRUE(edge.Send(10, key(0), small, absl::Now() + absl::Seconds(10)).ok());
  EXPECT_EQ(edge.credits(), 0);
  int n = 0;
  EXPECT_FALSE(client.Push(10, key(1), big, [&] { return ++n > 1; }).ok());  // Abandoned.
  EXPECT_TRUE(WaitFor([&] { return edge.credits() == 1; }));
}

// A peer that hangs after granting a credit stops reading mid-tensor: the sender is blocked in
// a data-plane write, not in a credit wait. The master's abort naming the lost task must end
// it (the worker drops its links to that task), and the next step connects afresh.
TEST(ClusterTest, AbortForALostPeerEndsASendBlockedInADataWrite) {
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
TEST(ClusterTest, KeepaliveEndsASendToAHungPeerWithNoAbort) {
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
  // gRPC's own words follow (here "keepalive watchdog timeout").
  EXPECT_TRUE(StatusHas(hung.status(), absl::StatusCode::kUnavailable,
                        "/job:worker/task:0 step 96: node 'big/_send_0_to_1' (_Send): sending "
                        "'big:0' to /job:worker/task:1/device:cpu:0 failed: "))
      << hung.status();
  ASSERT_NO_FATAL_FAILURE(ExpectBigEdgeSum(RunBoth(parts, 97)));
}

// The same at the EdgeSender: cancelling the step's CancellationManager ends the wait at once,
// with the cancellation's code and a message naming the edge, the step and the tensor.
TEST(ClusterTest, CancellingAStepEndsItsWaitForACredit) {
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
  EXPECT_EQ(edge.credits(), 0);
  // A step cancelled before its Send fails at once.
  EXPECT_TRUE(StatusHas(edge.Send(9, key(2), v, deadline, &cm), absl::StatusCode::kAborted,
                        "step 9 aborted: lost /job:worker/task:1"));
}

TEST(ClusterTest, ExtendSessionAddsNodes) {
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

TEST(ClusterTest, SigtermShutsDownCleanly) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<int> code = cluster->StopWorker(1);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace sluice
