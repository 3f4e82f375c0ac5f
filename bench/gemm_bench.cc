// fp32 GEMM throughput: Sluice's MatMul run through a Session against OpenBLAS cblas_sgemm,
// square n x n products, on 1 and 2 threads (Sluice: SessionOptions.device.intra_op_threads;
// OpenBLAS: openblas_set_num_threads). The "FLOPS" counter counts 2*n^3 per product over wall
// time. Inputs are uniform in [-1, 1); before timing, Sluice's product is checked against
// OpenBLAS's so a wrong kernel cannot post a good number.
//
//   bazel run //bench:gemm_bench -- --benchmark_filter=2048
#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "graph/scope.h"
#include "ops/base_ops.h"
#include "ops/math_ops.h"
#include "ops/register.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

// The inputs of an n x n product, created once per size.
struct Operands {
  Tensor a, b;
};

const Operands& OperandsFor(int64_t n) {
  static auto* cache = new std::map<int64_t, Operands>;
  auto it = cache->find(n);
  if (it != cache->end()) return it->second;
  std::mt19937 rng(static_cast<uint32_t>(n));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Operands ops{Tensor(DType::kFloat32, TensorShape({n, n})),
               Tensor(DType::kFloat32, TensorShape({n, n}))};
  for (const Tensor* t : {&ops.a, &ops.b}) {
    float* p = t->data<float>();
    for (int64_t i = 0; i < n * n; ++i) p[i] = uniform(rng);
  }
  return cache->emplace(n, std::move(ops)).first->second;
}

void SgemmInto(const Operands& in, int64_t n, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, in.a.data<float>(), n,
              in.b.data<float>(), n, 0.0f, c, n);
}

void SetFlops(benchmark::State& state, int64_t n) {
  state.counters["FLOPS"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}

// Largest |sluice - openblas| relative to the largest |openblas| entry.
double RelativeError(const Tensor& got, const std::vector<float>& want) {
  double max_diff = 0, max_want = 0;
  const float* g = got.data<float>();
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double{g[i]} - want[i]));
    max_want = std::max(max_want, std::fabs(double{want[i]}));
  }
  return max_want > 0 ? max_diff / max_want : max_diff;
}

void BM_SluiceMatMul(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Operands& in = OperandsFor(n);
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a"), DType::kFloat32, TensorShape({n, n}));
  Output b = ops::Placeholder(root.WithOpName("b"), DType::kFloat32, TensorShape({n, n}));
  Output c = ops::MatMul(root.WithOpName("c"), a, b);
  absl::StatusOr<std::shared_ptr<const Graph>> graph = root.Finalize();
  if (!graph.ok()) {
    state.SkipWithError(graph.status().ToString().c_str());
    return;
  }
  SessionOptions options;
  options.device.inter_op_threads = 1;  // One node: only the kernel's threads matter.
  options.device.intra_op_threads = threads;
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph, options);
  if (!session.ok()) {
    state.SkipWithError(session.status().ToString().c_str());
    return;
  }
  std::vector<Tensor> out;
  auto step = [&] { return (*session)->Run({{a, in.a}, {b, in.b}}, {c}, &out); };
  // Check the product once per size against OpenBLAS (first call only: it costs two products).
  static auto* checked = new std::map<int64_t, bool>;
  if (!(*checked)[n]) {
    absl::Status s = step();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    std::vector<float> want(n * n);
    SgemmInto(in, n, want.data());
    const double err = RelativeError(out[0], want);
    if (!(err < 1e-4)) {
      state.SkipWithError(
          ("MatMul differs from cblas_sgemm: relative error " + std::to_string(err)).c_str());
      return;
    }
    (*checked)[n] = true;
  }
  // One untimed product first: it faults in the output's pages and outlasts the spin-wait of
  // OpenBLAS threads left over from a previous case (they would steal the core being measured).
  if (absl::Status s = step(); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    absl::Status s = step();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  SetFlops(state, n);
}

void BM_OpenBlasSgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  const Operands& in = OperandsFor(n);
  std::vector<float> c(n * n);
  SgemmInto(in, n, c.data());  // Untimed, like the Sluice case's first product.
  for (auto _ : state) {
    SgemmInto(in, n, c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  SetFlops(state, n);
}

// Names: gemm/<engine>/<n>/<threads>, e.g. gemm/sluice/2048/2 (args are n, threads).
BENCHMARK(BM_SluiceMatMul)
    ->Name("gemm/sluice")
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{1024, 2048}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OpenBlasSgemm)
    ->Name("gemm/openblas")
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{1024, 2048}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
