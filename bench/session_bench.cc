// Session::Run latency on trivial graphs: the fixed cost a caller pays per step (argument
// checks, executor cache look-up, step set-up, running the nodes, handing results back).
//   session/identity  Placeholder (float32 scalar) -> Identity, feed x, fetch the Identity;
//   session/add       two Placeholders -> Add, feed both, fetch the sum;
//   session/add_names the same as session/add through the string-named Run overload;
//   session/add_same  one Placeholder added to itself (x + x): like session/add, but with a
//                     single root node, which shows what a second root costs.
// No peer runs here: libtorch is not part of the build (see docs/benchmarks.md).
//
//   bazel run //bench:session_bench
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "graph/scope.h"
#include "ops/base_ops.h"
#include "ops/math_ops.h"
#include "ops/register.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

// Finalises `root` into a session, or reports the error on `state`.
std::unique_ptr<Session> MakeSession(benchmark::State& state, const Scope& root) {
  absl::StatusOr<std::shared_ptr<const Graph>> graph = root.Finalize();
  if (!graph.ok()) {
    state.SkipWithError(graph.status().ToString().c_str());
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*std::move(graph));
  if (!session.ok()) {
    state.SkipWithError(session.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(session);
}

// Runs `step` once per iteration; stops with the first error.
template <typename Step>
void RunSteps(benchmark::State& state, Step step) {
  for (auto _ : state) {
    absl::Status s = step();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
}

void BM_Identity(benchmark::State& state) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({}));
  Output y = ops::Identity(root.WithOpName("y"), x);
  std::unique_ptr<Session> session = MakeSession(state, root);
  if (session == nullptr) return;
  const Tensor value = Tensor::Scalar<float>(1.5f);
  std::vector<Tensor> out;
  RunSteps(state, [&] { return session->Run({{x, value}}, {y}, &out); });
}

void BM_Add(benchmark::State& state) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({}));
  Output y = ops::Placeholder(root.WithOpName("y"), DType::kFloat32, TensorShape({}));
  Output z = ops::Add(root.WithOpName("z"), x, y);
  std::unique_ptr<Session> session = MakeSession(state, root);
  if (session == nullptr) return;
  const Tensor a = Tensor::Scalar<float>(1.5f);
  const Tensor b = Tensor::Scalar<float>(2.0f);
  std::vector<Tensor> out;
  RunSteps(state, [&] { return session->Run({{x, a}, {y, b}}, {z}, &out); });
  if (!out.empty() && out[0].scalar<float>() != 3.5f) state.SkipWithError("1.5 + 2 != 3.5");
}

void BM_AddSame(benchmark::State& state) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({}));
  Output z = ops::Add(root.WithOpName("z"), x, x);
  std::unique_ptr<Session> session = MakeSession(state, root);
  if (session == nullptr) return;
  const Tensor a = Tensor::Scalar<float>(1.5f);
  std::vector<Tensor> out;
  RunSteps(state, [&] { return session->Run({{x, a}}, {z}, &out); });
  if (!out.empty() && out[0].scalar<float>() != 3.0f) state.SkipWithError("1.5 + 1.5 != 3");
}

void BM_AddByName(benchmark::State& state) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({}));
  Output y = ops::Placeholder(root.WithOpName("y"), DType::kFloat32, TensorShape({}));
  ops::Add(root.WithOpName("z"), x, y);
  std::unique_ptr<Session> session = MakeSession(state, root);
  if (session == nullptr) return;
  const std::vector<std::pair<std::string, Tensor>> feeds = {{"x", Tensor::Scalar<float>(1.5f)},
                                                             {"y", Tensor::Scalar<float>(2.0f)}};
  const std::vector<std::string> fetches = {"z"};
  std::vector<Tensor> out;
  RunSteps(state, [&] { return session->Run(feeds, fetches, {}, &out); });
}

BENCHMARK(BM_Identity)->Name("session/identity/sluice")->UseRealTime();
BENCHMARK(BM_Add)->Name("session/add/sluice")->UseRealTime();
BENCHMARK(BM_AddSame)->Name("session/add_same/sluice")->UseRealTime();
BENCHMARK(BM_AddByName)->Name("session/add_names/sluice")->UseRealTime();

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
