// Trains a small classifier end to end in the graph: a seeded synthetic data set (three
// interleaved spirals in the plane, generated here), a 2-hidden-layer MLP built with the DSL,
// gradients from AddGradients via an optimizer's Minimize, variables initialised by the global
// initializer, and a checkpoint saved and restored into a fresh session.
//
//   bazel run //examples:train_classifier
//   bazel run //examples:train_classifier -- --optimizer=momentum --steps=1500
//   bazel run //examples:train_classifier -- --checkpoint=/tmp/spirals.ckpt
// Flags: --optimizer=sgd|momentum|adagrad|adam (default adam), --steps=N (default 1000),
//        --seed=N (data and initialisation, default 7), --checkpoint=PATH (default: a file in
//        $TMPDIR or /tmp).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "core/status.h"
#include "ops/all_ops.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "runtime/session/checkpoint.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

constexpr int64_t kPerClass = 100, kClasses = 3, kHidden = 32;

// Three spirals of kPerClass points each, with Gaussian noise.
void MakeSpirals(uint32_t seed, Tensor* x, Tensor* y) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.15f);
  *x = Tensor(DType::kFloat32, TensorShape({kPerClass * kClasses, 2}));
  *y = Tensor(DType::kInt64, TensorShape({kPerClass * kClasses}));
  for (int64_t c = 0; c < kClasses; ++c) {
    for (int64_t i = 0; i < kPerClass; ++i) {
      const int64_t row = c * kPerClass + i;
      const float r = static_cast<float>(i) / kPerClass;
      const float t = c * 4.0f + r * 4.0f + noise(rng);
      x->matrix<float>()(row, 0) = r * std::sin(t);
      x->matrix<float>()(row, 1) = r * std::cos(t);
      y->data<int64_t>()[row] = c;
    }
  }
}

struct Flags {
  std::string optimizer = "adam";
  int steps = 1000;
  int seed = 7;
  std::string checkpoint;
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  const char* tmp = std::getenv("TMPDIR");
  f.checkpoint = std::string(tmp ? tmp : "/tmp") + "/train_classifier.ckpt";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](absl::string_view prefix) { return a.substr(prefix.size()); };
    if (absl::StartsWith(a, "--optimizer=")) {
      f.optimizer = value("--optimizer=");
    } else if (absl::StartsWith(a, "--steps=")) {
      if (!absl::SimpleAtoi(value("--steps="), &f.steps) || f.steps < 1) {
        return absl::InvalidArgumentError("--steps needs a positive integer");
      }
    } else if (absl::StartsWith(a, "--seed=")) {
      if (!absl::SimpleAtoi(value("--seed="), &f.seed)) {
        return absl::InvalidArgumentError("--seed needs an integer");
      }
    } else if (absl::StartsWith(a, "--checkpoint=")) {
      f.checkpoint = value("--checkpoint=");
    } else {
      return absl::InvalidArgumentError("unknown flag " + a);
    }
  }
  return f;
}

absl::StatusOr<std::unique_ptr<ops::Optimizer>> MakeOptimizer(const std::string& name) {
  if (name == "sgd") return std::make_unique<ops::GradientDescentOptimizer>(0.5);
  if (name == "momentum") return std::make_unique<ops::MomentumOptimizer>(0.1, 0.9);
  if (name == "adagrad") return std::make_unique<ops::AdagradOptimizer>(0.5);
  if (name == "adam") return std::make_unique<ops::AdamOptimizer>(0.02);
  return absl::InvalidArgumentError("unknown optimizer '" + name +
                                    "' (sgd, momentum, adagrad or adam)");
}

// act(x @ w + b) with Glorot-initialised w and zero b.
Output Dense(const Scope& s, Output x, int64_t in, int64_t out, bool relu, int64_t seed,
             std::vector<Output>* vars) {
  Output w = ops::VariableWithInit(s.WithOpName("w"),
                                   ops::GlorotUniform(s, {in, out}, DType::kFloat32, seed));
  Output b = ops::VariableWithInit(s.WithOpName("b"), ops::Zeros(s, {out}, DType::kFloat32));
  vars->push_back(w);
  vars->push_back(b);
  Output y = ops::Add(s, ops::MatMul(s, x, w), b);
  return relu ? ops::Relu(s, y) : y;
}

float Accuracy(const Tensor& logits, const Tensor& labels) {
  int64_t correct = 0;
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    int64_t best = 0;
    for (int64_t c = 1; c < logits.dim(1); ++c) {
      if (logits.matrix<float>()(r, c) > logits.matrix<float>()(r, best)) best = c;
    }
    correct += best == labels.data<int64_t>()[r];
  }
  return static_cast<float>(correct) / logits.dim(0);
}

absl::Status Main(int argc, char** argv) {
  SLUICE_ASSIGN_OR_RETURN(Flags flags, ParseFlags(argc, argv));
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<ops::Optimizer> opt, MakeOptimizer(flags.optimizer));

  Scope root = ops::NewRootScope();
  std::vector<Output> vars;
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 2}));
  Output y = ops::Placeholder(root.WithOpName("y"), DType::kInt64, TensorShape({-1}));
  Output h1 = Dense(root.NewSubScope("hidden1"), x, 2, kHidden, true, flags.seed, &vars);
  Output h2 = Dense(root.NewSubScope("hidden2"), h1, kHidden, kHidden, true, flags.seed + 1, &vars);
  Output logits =
      Dense(root.NewSubScope("logits"), h2, kHidden, kClasses, false, flags.seed + 2, &vars);
  ops::Identity(root.WithOpName("logits"), logits);
  Output loss = ops::ReduceMean(root.WithOpName("loss"),
                                ops::SparseSoftmaxCrossEntropyWithLogits(root, logits, y)[0], {0});
  SLUICE_ASSIGN_OR_RETURN(const Node* train, opt->Minimize(root.WithOpName("train"), loss, vars));
  ops::GlobalVariablesInitializer(root.WithOpName("init"));
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, root.Finalize());
  std::printf("graph: %d nodes; optimizer %s (%s), %zu variables + %zu optimizer variables\n",
              graph->num_nodes(), opt->name().c_str(), train->name().c_str(), vars.size(),
              opt->created_variables().size());

  Tensor data, labels;
  MakeSpirals(static_cast<uint32_t>(flags.seed), &data, &labels);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(graph));
  SLUICE_RETURN_IF_ERROR(session->Run({}, {}, {"init"}, nullptr));
  std::vector<Tensor> out;
  for (int step = 0; step <= flags.steps; ++step) {
    const bool report = step % (flags.steps / 10 > 0 ? flags.steps / 10 : 1) == 0;
    if (step == flags.steps) {
      SLUICE_RETURN_IF_ERROR(
          session->Run({{"x", data}, {"y", labels}}, {"loss", "logits"}, {}, &out));
    } else {
      SLUICE_RETURN_IF_ERROR(
          session->Run({{"x", data}, {"y", labels}}, {"loss", "logits"}, {"train"}, &out));
    }
    if (report) {
      std::printf("step %5d  loss %.4f  accuracy %.3f\n", step, out[0].scalar<float>(),
                  Accuracy(out[1], labels));
    }
  }
  const float final_loss = out[0].scalar<float>();

  // Save, then restore into a fresh session of the same graph: same loss, bit for bit.
  SLUICE_RETURN_IF_ERROR(SaveCheckpoint(*session, flags.checkpoint));
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Session> restored, Session::Create(graph));
  SLUICE_RETURN_IF_ERROR(RestoreCheckpoint(*restored, flags.checkpoint));
  SLUICE_RETURN_IF_ERROR(restored->Run({{"x", data}, {"y", labels}}, {"loss"}, {}, &out));
  std::printf("checkpoint %s: restored loss %.4f (%s)\n", flags.checkpoint.c_str(),
              out[0].scalar<float>(),
              out[0].scalar<float>() == final_loss ? "identical" : "DIFFERENT");
  return out[0].scalar<float>() == final_loss
             ? absl::OkStatus()
             : absl::InternalError("the restored model computes a different loss");
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  absl::Status s = sluice::Main(argc, argv);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
