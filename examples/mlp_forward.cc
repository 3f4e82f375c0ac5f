// The README demo: builds a small MLP forward pass with the C++ DSL (variables initialised
// from seeded random normals, two dense layers, softmax) and runs it in a local Session.
//
//   bazel run //examples:mlp_forward
#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "ops/all_ops.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

// One dense layer: act(x @ w + b), with w and b variables initialised by `inits`.
Output Dense(const Scope& scope, Output x, int64_t in, int64_t out, bool relu, int seed,
             std::vector<Output>* inits) {
  Output w = ops::Variable(scope.WithOpName("w"), TensorShape({in, out}), DType::kFloat32);
  Output b = ops::Variable(scope.WithOpName("b"), TensorShape({out}), DType::kFloat32);
  Output w0 = ops::Mul(scope, ops::RandomNormal(scope, {in, out}, DType::kFloat32, seed),
                       static_cast<float>(1.0 / std::sqrt(static_cast<double>(in))));
  inits->push_back(ops::Assign(scope.WithOpName("init_w"), w, w0));
  inits->push_back(ops::Assign(scope.WithOpName("init_b"), b, ops::Fill(scope, {out}, 0.1f)));
  Output y = ops::Add(scope, ops::MatMul(scope, x, w), b);
  return relu ? ops::Relu(scope, y) : y;
}

absl::Status Main() {
  constexpr int64_t kBatch = 8, kIn = 16, kHidden = 64, kClasses = 4;
  Scope root = ops::NewRootScope();
  std::vector<Output> inits;
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, kIn}));
  Output h = Dense(root.NewSubScope("hidden"), x, kIn, kHidden, /*relu=*/true, 1, &inits);
  Output logits = Dense(root.NewSubScope("logits"), h, kHidden, kClasses, false, 2, &inits);
  Output probs = ops::Softmax(root.WithOpName("probs"), logits);
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, root.Finalize());
  std::printf("built graph: %d nodes\n", graph->num_nodes());

  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(graph));
  std::vector<Tensor> out;
  SLUICE_RETURN_IF_ERROR(session->Run({}, {}, &out, inits));
  std::printf("initialised %zu variables\n", inits.size());

  Tensor batch(DType::kFloat32, TensorShape({kBatch, kIn}));
  for (int64_t i = 0; i < batch.num_elements(); ++i) {
    batch.flat<float>()(i) = static_cast<float>((i * 37) % 11) / 11.0f - 0.5f;
  }
  auto start = std::chrono::steady_clock::now();
  constexpr int kRuns = 1000;
  for (int i = 0; i < kRuns; ++i) SLUICE_RETURN_IF_ERROR(session->Run({{x, batch}}, {probs}, &out));
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kRuns;
  const Tensor& p = out[0];
  for (int64_t r = 0; r < kBatch; ++r) {
    std::string row;
    int64_t best = 0;
    for (int64_t c = 0; c < kClasses; ++c) {
      float v = p.matrix<float>()(r, c);
      absl::StrAppend(&row, c ? " " : "", absl::StrFormat("%.3f", v));
      if (v > p.matrix<float>()(r, best)) best = c;
    }
    std::printf("example %lld: probabilities [%s] -> class %lld\n", static_cast<long long>(r),
                row.c_str(), static_cast<long long>(best));
  }
  std::printf("forward pass: %.1f us per batch of %lld (mean of %d runs)\n", us,
              static_cast<long long>(kBatch), kRuns);
  return absl::OkStatus();
}

}  // namespace
}  // namespace sluice

int main() {
  absl::Status s = sluice::Main();
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
