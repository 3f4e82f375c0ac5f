#include <chrono>
#include <cstdio>
#include <random>
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "ops/all_ops.h"
#include "runtime/session.h"

using namespace sluice;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

std::unique_ptr<Session> Make(const Scope& root, int n) {
  SessionOptions o; o.num_devices = n; o.device.inter_op_threads = 2; o.device.intra_op_threads = 1;
  return *Session::Create(*root.Finalize(), o);
}

int main() {
  // (a) trivial graph latency
  for (int n : {1, 2}) {
    Scope root = Scope::NewRootScope();
    Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({4}));
    Output x2 = ops::Identity(root.WithDevice("/device:cpu:0"), x);
    Output y = ops::Add(root.WithOpName("y").WithDevice(n == 2 ? "/device:cpu:1" : ""), x2, 1.0f);
    auto s = Make(root, n);
    Tensor xv = Tensor::FromVector<float>({1, 2, 3, 4});
    std::vector<Tensor> out;
    for (int i = 0; i < 2000; ++i) s->Run({{x, xv}}, {y}, &out);
    const int iters = 20000;
    auto t = Clock::now();
    for (int i = 0; i < iters; ++i) s->Run({{x, xv}}, {y}, &out);
    std::printf("trivial x+1 (x fed on cpu:0, add on cpu:%d): %.2f us/run over %d devices\n", n - 1,
                Seconds(t) / iters * 1e6, n);
  }
  // (b) two independent matmul chains
  for (int n : {1, 2}) {
    Scope root = Scope::NewRootScope();
    Output x = ops::Placeholder(root.WithOpName("x").WithDevice(n == 2 ? "/device:cpu:0" : ""), DType::kFloat32, TensorShape({256, 256}));
    Output outs[2];
    for (int b = 0; b < 2; ++b) {
      Scope s = root.WithDevice(n == 2 ? absl::StrCat("/device:cpu:", b) : "");
      Output h = x;
      for (int l = 0; l < 4; ++l) {
        Tensor w(DType::kFloat32, TensorShape({256, 256}));
        w.flat<float>().setConstant(0.001f);
        h = ops::Tanh(s, ops::MatMul(s, h, w));
      }
      outs[b] = h;
    }
    Output y = ops::Add(root.WithDevice(n == 2 ? "/device:cpu:0" : ""), outs[0], outs[1]);
    auto s = Make(root, n);
    Tensor xv(DType::kFloat32, TensorShape({256, 256}));
    xv.flat<float>().setConstant(1);
    std::vector<Tensor> out;
    for (int i = 0; i < 20; ++i) s->Run({{x, xv}}, {y}, &out);
    const int iters = 300;
    auto t = Clock::now();
    for (int i = 0; i < iters; ++i) s->Run({{x, xv}}, {y}, &out);
    std::printf("2 branches x 4 MatMul 256^3 on %d device(s): %.3f ms/step\n", n, Seconds(t) / iters * 1e3);
  }
  // (c) placer + partitioner speed on a large random graph
  for (int nodes : {1000, 10000}) {
    Scope root = Scope::NewRootScope();
    auto tb = Clock::now();
    std::mt19937 rng(1);
    std::vector<Output> pool;
    for (int i = 0; i < 8; ++i) pool.push_back(ops::Const(root, Tensor::FromVector<float>({1, 2, 3})));
    while (root.graph()->num_nodes() < nodes) {
      Output a = pool[rng() % pool.size()], b = pool[rng() % pool.size()];
      pool.push_back(rng() % 2 ? ops::Add(root, a, b) : ops::Mul(root, a, b));
    }
    auto g = *root.Finalize();
    std::printf("building the %d-node graph: %.1f ms\n", g->num_nodes(), Seconds(tb) * 1e3);
    std::vector<std::string> devs;
    for (int i = 0; i < 4; ++i) devs.push_back(absl::StrCat("/job:localhost/task:0/device:cpu:", i));
    auto t = Clock::now();
    Placement p = *PlaceGraph(*g, devs);
    double place = Seconds(t);
    t = Clock::now();
    PartitionedGraph parts = *PartitionGraph(*g, p);
    double part = Seconds(t);
    PlacementCost c = EvaluatePlacement(*g, p);
    std::printf("%d-node random graph, 4 devices: place %.1f ms, partition %.1f ms, %lld transfers\n",
                g->num_nodes(), place * 1e3, part * 1e3, (long long)c.num_transfers);
  }
}
