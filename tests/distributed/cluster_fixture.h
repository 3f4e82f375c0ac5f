// Helpers shared by the multi-process tests of the distributed runtime: real sluice_server
// processes on loopback, started by LocalCluster, and partitions registered on them by hand.
// Every wait is bounded (deadline polling or RPC deadlines); nothing is ordered by sleeping.
#ifndef SLUICE_TESTS_DISTRIBUTED_CLUSTER_FIXTURE_H_
#define SLUICE_TESTS_DISTRIBUTED_CLUSTER_FIXTURE_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/tensor.h"
#include "distributed/coordinator.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.grpc.pb.h"
#include "graph/graph.h"
#include "graph/scope.h"
#include "ops/register.h"

namespace sluice {
namespace test {

inline constexpr char kW0[] = "/job:worker/task:0/device:cpu:0";
inline constexpr char kW1[] = "/job:worker/task:1/device:cpu:0";
inline constexpr char kClient[] = "/job:client/task:0/device:cpu:0";
inline constexpr int kMaxMessage = 64 << 10;  // Every server's gRPC message cap in StartCluster.

// The sluice_server binary in the test's runfiles.
std::string ServerBinary();

// A master and two workers with the flags most of these tests share (a 64 KiB message cap,
// 16 KiB chunks, heartbeats every 100 ms, a worker lost after 2 s), and `worker_flags` for every
// worker. nullptr, and a test failure, if they did not start.
std::unique_ptr<LocalCluster> StartCluster(std::vector<std::string> worker_flags = {});

// A master and two workers with the servers' default flags; nullptr, and a test failure, if
// they did not start.
std::unique_ptr<LocalCluster> StartDefaultCluster();

// Starts one worker and no master with these flags; the status of the start (for tests of a
// server that must refuse to start).
absl::Status StartOneWorker(std::vector<std::string> flags,
                            const std::string& server_binary = ServerBinary());

// How to reach worker `i` of `c`.
proto::PeerAddress Ref(const LocalCluster& c, int i);

// One heartbeat to a server's control port (5 s deadline); fails the test if it fails.
proto::HeartbeatResponse Beat(const std::string& control_address);

// Polls `cond` until true or 20 s passed, sleeping between polls: 100 us at first, doubling up
// to 10 ms. The result of the last poll.
template <typename F>
bool WaitFor(F cond) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::Duration pause = absl::Microseconds(100);
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(std::min(pause, deadline - absl::Now()));
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
  return cond();
}

// A two-layer model split across the workers: layer 1 on task 0, layer 2 on task 1.
struct Mlp {
  Scope root = ops::NewRootScope();
  Output x, y;
  std::shared_ptr<const Graph> graph;
  Mlp();
  // `n` rows of 8 inputs.
  static Tensor Batch(int n, float scale);
};

// Writes `bytes` to a raw TCP connection and waits (bounded) for the server to close it.
void SendGarbage(const std::string& address, const std::string& bytes);

// Places `graph` on `devices`, partitions it and registers the partitions of the two workers;
// returns their RunGraph requests (task 0, task 1). `fetch` is fetched on task 1.
std::vector<StepCoordinator::Partition> RegisterOnWorkers(const LocalCluster& cluster,
                                                          const Graph& graph,
                                                          const std::vector<std::string>& devices,
                                                          const Endpoint& fetch);

// Partitions of c = Neg(Neg(a)) with `a` on a client device that nobody runs: task 0 waits for
// `a` from the data plane, then sends Neg(a) to task 1, which fetches Neg(Neg(a)).
struct ChainStep {
  std::shared_ptr<const Graph> graph;
  std::vector<StepCoordinator::Partition> partitions;  // Task 0, task 1.
  std::string a_name;
};
ChainStep MakeChain(const LocalCluster& cluster);

// Runs one worker's partition of `step` by calling its RunGraph directly, as the master does.
absl::StatusOr<proto::RunGraphResponse> RunPartition(StepCoordinator::Partition partition,
                                                     int64_t step);

// Runs both partitions of `step` (task 0 on a thread): task 1's response, or the first error.
absl::StatusOr<proto::RunGraphResponse> RunBoth(
    const std::vector<StepCoordinator::Partition>& parts, int64_t step);

// Registers c = Neg(k) + Square(k) with k = [2, -3] on task 0: task 0 sends two tensors over
// its edge to task 1, which adds them and fetches c = [2, 12]. RunGraph timeouts of 60 s.
std::vector<StepCoordinator::Partition> RegisterTwoTensorEdge(const LocalCluster& cluster);

// Task 0 fills kBigEdgeFloats floats of 0.5 (64 MiB: far more than HTTP/2 windows and socket
// buffers hold) and task 1 sums them: a step whose Send can block in a data-plane write.
inline constexpr int64_t kBigEdgeFloats = int64_t{16} << 20;
std::vector<StepCoordinator::Partition> RegisterBigEdge(const LocalCluster& cluster);
// Checks that a step of RegisterBigEdge's partitions fetched the sum of its floats.
void ExpectBigEdgeSum(const absl::StatusOr<proto::RunGraphResponse>& r);

// Sends AbortStep to one worker, as the master's StepCoordinator does.
grpc::Status SendAbort(const std::string& control_address, int64_t step, const std::string& reason,
                       const std::string& lost_task = "");

// An edge's control stream opened by hand on a receiver's control port, as the edge's sender
// opens it (the `open` message written). Cancelled when it goes.
struct EdgeControlStream {
  ~EdgeControlStream() {
    ctx.TryCancel();
    if (stream) (void)stream->Finish();
  }
  std::unique_ptr<proto::Control::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<proto::EdgeControlMessage, proto::EdgeControlMessage>>
      stream;
};
// nullptr, and a test failure, if the open could not be written.
std::unique_ptr<EdgeControlStream> OpenEdgeControl(const std::string& control_address,
                                                   const std::string& edge);

}  // namespace test
}  // namespace sluice

#endif  // SLUICE_TESTS_DISTRIBUTED_CLUSTER_FIXTURE_H_
