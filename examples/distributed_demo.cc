// The README's distributed demo: builds a model-parallel MLP (layer 1 on /job:worker/task:0,
// layer 2 on /job:worker/task:1), starts a local cluster of real sluice_server processes
// (1 master + 2 workers on loopback), runs the model there through a RemoteSession, checks the
// result against a local Session and prints both.
//
//   bazel run //examples:distributed_demo
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "distributed/local_cluster.h"
#include "distributed/remote_session.h"
#include "ops/all_ops.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

Tensor Pattern(int64_t rows, int64_t cols, float scale, int salt) {
  std::vector<float> v(rows * cols);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = scale * std::sin(static_cast<float>(i * 7 + salt));
  }
  return Tensor::FromVector<float>(v, TensorShape({rows, cols}));
}

// The sluice_server binary, from this program's runfiles (bazel run) or the environment.
std::string ServerBinary(const char* argv0) {
  if (const char* env = std::getenv("SLUICE_SERVER")) return env;
  if (const char* dir = std::getenv("RUNFILES_DIR")) {
    return absl::StrCat(dir, "/sluice/distributed/sluice_server");
  }
  return absl::StrCat(argv0, ".runfiles/sluice/distributed/sluice_server");
}

absl::Status Main(const char* argv0) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 16}));
  Scope l1 = root.NewSubScope("layer1").WithDevice("/job:worker/task:0");
  Scope l2 = root.NewSubScope("layer2").WithDevice("/job:worker/task:1");
  Output h = ops::Relu(
      l1, ops::Add(l1, ops::MatMul(l1, x, ops::Const(l1, Pattern(16, 32, 0.25f, 1))),
                   ops::Const(l1, Tensor::FromVector<float>(std::vector<float>(32, 0.1f)))));
  Output y = ops::Softmax(l2, ops::MatMul(l2, h, ops::Const(l2, Pattern(32, 4, 0.3f, 2))));
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, root.Finalize());

  LocalClusterOptions options;
  options.server_binary = ServerBinary(argv0);
  options.num_workers = 2;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster, LocalCluster::Start(options));
  std::printf("cluster: master %s, worker 0 %s (data %s), worker 1 %s (data %s)\n",
              cluster->master_address().c_str(), cluster->worker(0).control_address.c_str(),
              cluster->worker(0).data_address.c_str(), cluster->worker(1).control_address.c_str(),
              cluster->worker(1).data_address.c_str());

  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<RemoteSession> remote,
                          RemoteSession::Create(cluster->master_address(), graph));
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> devices, remote->ListDevices());
  for (const std::string& d : devices) std::printf("device: %s\n", d.c_str());
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Session> local, Session::Create(graph));

  Tensor batch = Pattern(3, 16, 1.0f, 3);
  std::vector<Tensor> distributed_out, local_out;
  SLUICE_RETURN_IF_ERROR(remote->Run({{x, batch}}, {y}, &distributed_out));
  SLUICE_RETURN_IF_ERROR(local->Run({{x, batch}}, {y}, &local_out));
  std::printf("distributed: %s\n", distributed_out[0].DebugString(12).c_str());
  std::printf("local:       %s\n", local_out[0].DebugString(12).c_str());
  double max_diff = 0;
  for (int64_t i = 0; i < local_out[0].num_elements(); ++i) {
    max_diff = std::max<double>(
        max_diff, std::abs(distributed_out[0].data<float>()[i] - local_out[0].data<float>()[i]));
  }
  std::printf("max |distributed - local| = %g\n", max_diff);
  if (max_diff > 1e-5) return absl::InternalError("distributed and local results differ");
  std::printf("OK: the model-parallel graph ran on 2 workers and matches the local run\n");
  return absl::OkStatus();
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  absl::Status s = sluice::Main(argv[0]);
  if (!s.ok()) {
    std::fprintf(stderr, "distributed_demo: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
