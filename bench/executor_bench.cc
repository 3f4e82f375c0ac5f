// Executor overhead: the cost per node of running graphs of no-op nodes, Sluice's Executor
// against a oneTBB flow_graph of exactly the same topology, in the same binary and run.
//
// Topologies (the width x depth sizes of TensorFlow's BM_executor, and a long chain):
//   dag_<width>x<depth>  `depth` levels of `width` nodes; each node below the first level waits
//                        for 1 or 2 distinct random nodes of the level above (fixed seed);
//   chain_10000          10,000 nodes, each waiting for the one before.
// Engines:
//   sluice            ops::NoOp nodes; NoOp is a cheap kernel, so a thread that makes it ready
//                     runs it inline (as TensorFlow's executor does);
//   sluice_expensive  the same graph of a no-op marked expensive, so every extra ready node
//                     goes through the device's oneTBB arena (the scheduling path real kernels
//                     take);
//   tbb               tbb::flow::continue_node per node, run inside a task_arena.
// Every engine runs with the same number of threads (benchmark name suffix "threads:N").
// The "ns_per_node" counter is wall time per step divided by the number of nodes. "threads:N"
// gives Sluice a device with inter_op_threads = N (a oneTBB arena of N slots, which the blocking
// Executor::Run joins) and TBB a task_arena of N slots that the caller joins through execute().
//
//   bazel run //bench:executor_bench -- --benchmark_filter=chain
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "graph/scope.h"
#include "ops/base_ops.h"
#include "ops/register.h"
#include "runtime/exec/device.h"
#include "runtime/exec/executor.h"
#include "runtime/kernel/kernel.h"
#include "tbb/flow_graph.h"
#include "tbb/task_arena.h"

namespace sluice {
namespace {

// A DAG as lists of predecessors, in topological order (predecessors have smaller indices).
struct Dag {
  std::vector<std::vector<int>> inputs;
  int size() const { return static_cast<int>(inputs.size()); }
};

Dag LayeredDag(int width, int depth, uint32_t seed) {
  std::mt19937 rng(seed);
  Dag dag;
  dag.inputs.resize(static_cast<size_t>(width) * depth);
  for (int level = 1; level < depth; ++level) {
    const int above = (level - 1) * width;
    for (int i = 0; i < width; ++i) {
      std::vector<int>& in = dag.inputs[level * width + i];
      const int fan_in = width > 1 ? 1 + static_cast<int>(rng() % 2) : 1;
      while (static_cast<int>(in.size()) < fan_in) {
        int src = above + static_cast<int>(rng() % width);
        if (in.empty() || in[0] != src) in.push_back(src);
      }
    }
  }
  return dag;
}

Dag Chain(int length) {
  Dag dag;
  dag.inputs.resize(length);
  for (int i = 1; i < length; ++i) dag.inputs[i] = {i - 1};
  return dag;
}

// Nodes nothing waits for: the targets of a step.
std::vector<int> Sinks(const Dag& dag) {
  std::vector<bool> has_successor(dag.size(), false);
  for (const std::vector<int>& in : dag.inputs) {
    for (int src : in) has_successor[src] = true;
  }
  std::vector<int> sinks;
  for (int i = 0; i < dag.size(); ++i) {
    if (!has_successor[i]) sinks.push_back(i);
  }
  return sinks;
}

// A no-op the executor must schedule like a real kernel (OpKernel's default IsExpensive).
class ExpensiveNoOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext*) override { return absl::OkStatus(); }
};

void RegisterBenchOps() {
  static const bool registered = [] {
    RegisterAllOps();
    absl::Status s = OpRegistry::Global()->Register(
        OpDefBuilder("ExpensiveNoOp").Doc("A no-op scheduled like a real kernel (benchmarks)."));
    if (s.ok()) {
      s = KernelRegistry::Global()->Register("ExpensiveNoOp", kDeviceCpu, DType::kInvalid,
                                             MakeKernel<ExpensiveNoOp>);
    }
    if (!s.ok()) std::fprintf(stderr, "registering ExpensiveNoOp: %s\n", s.ToString().c_str());
    return s.ok();
  }();
  (void)registered;
}

struct SluiceGraph {
  std::shared_ptr<const Graph> graph;
  std::vector<const Node*> targets;
};

// Builds `dag` with the DSL; graphs are built once per (topology, op) and shared by benchmarks.
const SluiceGraph& BuildSluiceGraph(const std::string& key, const Dag& dag, bool expensive) {
  static auto* cache = new std::map<std::string, SluiceGraph>;
  const std::string cache_key = key + (expensive ? "/expensive" : "/cheap");
  auto it = cache->find(cache_key);
  if (it != cache->end()) return it->second;
  RegisterBenchOps();
  Scope root = ops::NewRootScope();
  std::vector<const Node*> nodes(dag.size());
  for (int i = 0; i < dag.size(); ++i) {
    std::vector<const Node*> deps;
    for (int src : dag.inputs[i]) deps.push_back(nodes[src]);
    Scope s = root.WithControlDependencies(deps);
    nodes[i] =
        expensive ? s.AddNode("ExpensiveNoOp", {}, {}, SourceLocation::Current()) : ops::NoOp(s);
  }
  SluiceGraph built;
  absl::StatusOr<std::shared_ptr<const Graph>> graph = root.Finalize();
  if (!graph.ok()) {
    std::fprintf(stderr, "building %s: %s\n", cache_key.c_str(), graph.status().ToString().c_str());
    std::abort();
  }
  built.graph = *std::move(graph);
  for (int sink : Sinks(dag)) built.targets.push_back(nodes[sink]);
  return cache->emplace(cache_key, std::move(built)).first->second;
}

// Times the benchmark loop's body `step` and reports wall nanoseconds per node. (An inverted
// rate counter would give the same number, but the console would print it in "s".)
template <typename Step>
void RunAndCount(benchmark::State& state, int nodes, Step step) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (!step()) break;
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  state.counters["ns_per_node"] = ns / (static_cast<double>(state.iterations()) * nodes);
  state.counters["nodes"] = nodes;
}

// `traced`: every run records each node's NodeExecStats (StepArgs::trace), the cost of
// tracing on; the untraced runs show what tracing off costs (a null check per node).
void BM_Sluice(benchmark::State& state, const std::string& key, const Dag& dag, bool expensive,
               int threads, bool traced) {
  const SluiceGraph& g = BuildSluiceGraph(key, dag, expensive);
  CpuDevice device(DeviceOptions{.inter_op_threads = threads, .intra_op_threads = 1});
  ExecutorParams params;
  params.graph = g.graph.get();
  params.device = &device;
  params.targets = g.targets;
  absl::StatusOr<std::unique_ptr<Executor>> exec = Executor::Create(params);
  if (!exec.ok()) {
    state.SkipWithError(exec.status().ToString().c_str());
    return;
  }
  if ((*exec)->num_nodes() != dag.size()) {
    state.SkipWithError("executor pruned nodes: the topology is not what was measured");
    return;
  }
  StepTrace trace;
  RunAndCount(state, dag.size(), [&] {
    StepArgs args;
    if (traced) args.trace = &trace;
    absl::Status s = (*exec)->Run(std::move(args), nullptr);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    if (traced) trace.Take();
    return s.ok();
  });
}

// The same topology as a oneTBB flow graph, bound to an arena of `threads` threads.
class TbbGraph {
 public:
  TbbGraph(const Dag& dag, tbb::task_arena* arena) : arena_(arena) {
    arena_->execute([&] {
      graph_ = std::make_unique<tbb::flow::graph>();
      nodes_.reserve(dag.size());
      for (int i = 0; i < dag.size(); ++i) {
        nodes_.push_back(std::make_unique<Node>(*graph_, [](const tbb::flow::continue_msg&) {}));
        if (dag.inputs[i].empty()) sources_.push_back(nodes_.back().get());
        for (int src : dag.inputs[i]) tbb::flow::make_edge(*nodes_[src], *nodes_.back());
      }
    });
  }

  void Run() {
    arena_->execute([&] {
      for (Node* source : sources_) source->try_put(tbb::flow::continue_msg());
      graph_->wait_for_all();
    });
  }

 private:
  using Node = tbb::flow::continue_node<tbb::flow::continue_msg>;
  tbb::task_arena* arena_;
  std::unique_ptr<tbb::flow::graph> graph_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Node*> sources_;
};

void BM_Tbb(benchmark::State& state, const Dag& dag, int threads) {
  tbb::task_arena arena(threads);
  TbbGraph graph(dag, &arena);
  RunAndCount(state, dag.size(), [&] {
    graph.Run();
    return true;
  });
}

void RegisterAll() {
  struct Topology {
    std::string name;
    Dag dag;
  };
  // Each registered benchmark keeps its own copy of its DAG.
  const std::vector<Topology> topologies = {
      {"dag_16x1024", LayeredDag(16, 1024, 1729)},
      {"dag_1024x16", LayeredDag(1024, 16, 1729)},
      {"chain_10000", Chain(10000)},
  };
  for (const Topology& t : topologies) {
    for (int threads : {1, 2}) {
      const std::string suffix = "/threads:" + std::to_string(threads);
      const std::string base = "executor/" + t.name;
      benchmark::RegisterBenchmark((base + "/sluice" + suffix).c_str(), BM_Sluice, t.name, t.dag,
                                   false, threads, false)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "/sluice_traced" + suffix).c_str(), BM_Sluice, t.name,
                                   t.dag, false, threads, true)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "/sluice_expensive" + suffix).c_str(), BM_Sluice, t.name,
                                   t.dag, true, threads, false)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "/tbb" + suffix).c_str(), BM_Tbb, t.dag, threads)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  sluice::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
