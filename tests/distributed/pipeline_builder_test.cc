// Pipelined training on virtual devices of one Session equals training the same model on the
// whole batch (losses and variables after every step), for GPipe, 1F1B and interleaved 1F1B,
// p = 2..4 stages and several micro-batch counts; each worker runs its actions in the
// schedule's order (from the fetched timestamps); pipelined inference returns the whole
// batch's outputs; models the pipeline cannot cut and schedules the verifier refuses add no
// train step, with errors that name the node or the cycle.
#include "distributed/pipeline_builder.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

constexpr int64_t kExamples = 48, kHidden = 6, kSteps = 4;

std::string Cpu(int k) { return "/device:cpu:" + std::to_string(k); }

// A p-stage model: stages 0..p-2 are tanh(Dense), the last Dense + mean cross entropy.
struct Model {
  Output x, y, loss, logits;
  std::vector<Output> variables;
  std::vector<pipeline::StageSpec> stages;
};

Model Build(const Scope& s, int p, const std::vector<std::string>& devices) {
  Model m;
  m.x = ops::Placeholder(s.WithOpName("x"), DType::kFloat32, TensorShape({kExamples, 2}));
  m.y = ops::Placeholder(s.WithOpName("y"), DType::kInt64, TensorShape({kExamples}));
  Output h = m.x;
  for (int k = 0; k < p; ++k) {
    const int first = s.graph()->num_nodes();
    const Scope st =
        s.WithDevice(devices.empty() ? "" : devices[k]).NewSubScope("stage" + std::to_string(k));
    const int64_t in = k == 0 ? 2 : kHidden, out = k + 1 == p ? 2 : kHidden;
    Output w = ops::VariableWithInit(st.WithOpName("w"),
                                     ops::GlorotUniform(st, {in, out}, DType::kFloat32, 7 + k));
    Output b = ops::VariableWithInit(
        st.WithOpName("b"),
        ops::Fill(st, Tensor::FromVector<int64_t>({out}), Tensor::Scalar<float>(0.05f * k)));
    m.variables.push_back(w);
    m.variables.push_back(b);
    if (k + 1 < p) {
      h = ops::Tanh(st, test::Dense(st, h, w, b));
    } else {
      m.logits = test::Dense(st, h, w, b);
      m.loss =
          ops::ReduceMean(st, ops::SparseSoftmaxCrossEntropyWithLogits(st, m.logits, m.y)[0], {0});
    }
    m.stages.push_back(
        {devices.empty() ? "" : devices[k], pipeline::NodesSince(*s.graph(), first)});
  }
  return m;
}

struct Result {
  std::vector<float> losses;
  std::vector<Tensor> variables;
  std::vector<double> timing;  // start, end per timed action (last step).
};

Result Train(const std::shared_ptr<const Graph>& graph, int devices, const std::string& loss,
             const std::string& train, const std::vector<std::string>& variables,
             const std::vector<std::string>& timing = {}) {
  SessionOptions options;
  options.num_devices = devices;
  options.device.inter_op_threads = 2;
  options.device.intra_op_threads = 1;
  auto session = Session::Create(graph, options);
  EXPECT_TRUE(session.ok()) << session.status();
  Result r;
  if (!session.ok()) return r;
  EXPECT_TRUE((*session)->Run({}, {}, {"init"}, nullptr).ok());
  Tensor x, y;
  test::MakeData(&x, &y, kExamples);
  std::vector<std::string> fetches = {loss};
  fetches.insert(fetches.end(), timing.begin(), timing.end());
  for (int i = 0; i < kSteps; ++i) {
    std::vector<Tensor> out;
    absl::Status s = (*session)->Run({{"x", x}, {"y", y}}, fetches, {train}, &out);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return r;
    r.losses.push_back(out[0].scalar<float>());
    r.timing.clear();
    for (size_t k = 1; k < out.size(); ++k) r.timing.push_back(out[k].scalar<double>());
  }
  EXPECT_TRUE((*session)->Run({}, variables, {}, &r.variables).ok());
  return r;
}

std::vector<std::string> Names(const std::vector<Output>& outputs) {
  std::vector<std::string> names;
  for (const Output& o : outputs) names.push_back(o.node()->name());
  return names;
}

Result Reference(int p) {
  Scope s = ops::NewRootScope();
  Model m = Build(s, p, {});
  ops::GradientDescentOptimizer sgd(0.5);
  EXPECT_TRUE(sgd.Minimize(s.WithOpName("train"), m.loss, m.variables).ok());
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  return Train(*graph, 1, m.loss.node()->name(), "train", Names(m.variables));
}

Result Pipelined(const pipeline::Schedule& schedule, std::vector<pipeline::TimedAction>* timing) {
  const int p = schedule.num_stages;
  std::vector<std::string> devices;
  for (int k = 0; k < p; ++k) devices.push_back(Cpu(schedule.worker_of_stage[k]));
  Scope s = ops::NewRootScope();
  Model m = Build(s, p, devices);
  pipeline::TrainingSpec spec{m.stages, {m.x, m.y}, m.loss, m.variables, schedule, {}};
  absl::StatusOr<pipeline::Built> built = pipeline::BuildTraining(s.NewSubScope("pipeline"), spec);
  EXPECT_TRUE(built.ok()) << built.status();
  if (!built.ok()) return {};
  ops::GradientDescentOptimizer sgd(0.5);
  EXPECT_TRUE(sgd.ApplyGradients(s.WithOpName("train"), built->grads_and_vars).ok());
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  if (!graph.ok()) return {};
  std::vector<std::string> stamps;
  for (const pipeline::TimedAction& t : built->timing) {
    stamps.push_back(t.start.node()->name());
    stamps.push_back(t.end.node()->name());
  }
  *timing = built->timing;
  return Train(*graph, schedule.num_workers(), built->loss.node()->name(), "train",
               Names(m.variables), stamps);
}

void ExpectSame(const Result& got, const Result& want, const std::string& what) {
  ASSERT_EQ(got.losses.size(), want.losses.size()) << what;
  for (size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_NEAR(got.losses[i], want.losses[i], 1e-5 * (1 + std::fabs(want.losses[i])))
        << what << ", step " << i;
  }
  ASSERT_EQ(got.variables.size(), want.variables.size()) << what;
  for (size_t k = 0; k < want.variables.size(); ++k) {
    EXPECT_TRUE(test::TensorNear(got.variables[k], want.variables[k], 1e-5, 1e-4))
        << what << ", variable " << k;
  }
}

// Each worker ran its actions in the schedule's order, one at a time.
void ExpectScheduleOrder(const pipeline::Schedule& schedule,
                         const std::vector<pipeline::TimedAction>& timing,
                         const std::vector<double>& stamps, const std::string& what) {
  ASSERT_EQ(stamps.size(), 2 * timing.size()) << what;
  for (int w = 0; w < schedule.num_workers(); ++w) {
    std::vector<std::pair<double, std::string>> ran;
    for (size_t k = 0; k < timing.size(); ++k) {
      if (timing[k].worker != w) continue;
      EXPECT_LE(stamps[2 * k], stamps[2 * k + 1]) << what;
      ran.emplace_back(stamps[2 * k], timing[k].action.ToString());
    }
    std::stable_sort(ran.begin(), ran.end());
    std::vector<std::string> order, want;
    for (const auto& r : ran) order.push_back(r.second);
    for (const pipeline::Action& a : schedule.actions[w]) want.push_back(a.ToString());
    EXPECT_EQ(order, want) << what << ", worker " << w;
  }
}

TEST(PipelineBuilderTest, GPipeAnd1F1BTrainLikeTheWholeBatch) {
  for (int p : {2, 3, 4}) {
    const Result want = Reference(p);
    ASSERT_EQ(want.losses.size(), static_cast<size_t>(kSteps));
    EXPECT_LT(want.losses.back(), want.losses.front());
    for (int m : {1, 2, 3, 8}) {
      for (bool gpipe : {true, false}) {
        auto schedule = gpipe ? pipeline::GPipe(p, m) : pipeline::OneFOneB(p, m);
        ASSERT_TRUE(schedule.ok()) << schedule.status();
        const std::string what = std::string(gpipe ? "gpipe" : "1f1b") + " p=" + std::to_string(p) +
                                 " m=" + std::to_string(m);
        std::vector<pipeline::TimedAction> timing;
        const Result got = Pipelined(*schedule, &timing);
        ExpectSame(got, want, what);
        ExpectScheduleOrder(*schedule, timing, got.timing, what);
      }
    }
  }
}

TEST(PipelineBuilderTest, InterleavedTrainsLikeTheWholeBatch) {
  const Result want = Reference(4);
  for (int m : {2, 4}) {
    auto schedule = pipeline::Interleaved1F1B(2, 2, m);
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    std::vector<pipeline::TimedAction> timing;
    const Result got = Pipelined(*schedule, &timing);
    ExpectSame(got, want, "interleaved m=" + std::to_string(m));
    ExpectScheduleOrder(*schedule, timing, got.timing, "interleaved");
  }
}

TEST(PipelineBuilderTest, InferenceReturnsTheWholeBatchsOutputs) {
  Scope s = ops::NewRootScope();
  Model m = Build(s, 3, {Cpu(0), Cpu(1), Cpu(2)});
  absl::StatusOr<pipeline::Built> built =
      pipeline::BuildInference(s.NewSubScope("pipeline"), m.stages, {m.x}, {m.logits}, 4);
  ASSERT_TRUE(built.ok()) << built.status();
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  ASSERT_TRUE(graph.ok()) << graph.status();
  SessionOptions options;
  options.num_devices = 3;
  auto session = Session::Create(*graph, options);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE((*session)->Run({}, {}, {"init"}, nullptr).ok());
  Tensor x, y;
  test::MakeData(&x, &y, kExamples);
  std::vector<Tensor> out;
  ASSERT_TRUE(
      (*session)
          ->Run({{"x", x}}, {m.logits.node()->name(), built->outputs[0].node()->name()}, {}, &out)
          .ok());
  EXPECT_TRUE(test::TensorNear(out[1], out[0], 1e-6, 1e-6));
  EXPECT_EQ(built->timing.size(), 12u);  // 3 stages x 4 micro-batches, forwards only.
}

pipeline::TrainingSpec SpecFor(const Scope& s, Model* m, int p, int micro) {
  std::vector<std::string> devices;
  for (int k = 0; k < p; ++k) devices.push_back(Cpu(k));
  *m = Build(s, p, devices);
  auto schedule = pipeline::OneFOneB(p, micro);
  EXPECT_TRUE(schedule.ok());
  return pipeline::TrainingSpec{m->stages, {m->x, m->y}, m->loss, m->variables, *schedule, {}};
}

TEST(PipelineBuilderTest, RefusesADeadlockingScheduleBeforeAddingAnything) {
  Scope s = ops::NewRootScope();
  Model m;
  pipeline::TrainingSpec spec = SpecFor(s, &m, 2, 2);
  // Stage 1 runs micro-batch 1 first, while stage 0 holds micro-batch 1 back until stage 1's
  // backward of micro-batch 0 returned.
  auto csv = pipeline::ScheduleFromCsv("0F0,0B0,0F1,0B1\n1F1,1B1,1F0,1B0\n");
  ASSERT_TRUE(csv.ok()) << csv.status();
  spec.schedule = *csv;
  const int before = s.graph()->num_nodes();
  absl::StatusOr<pipeline::Built> built = pipeline::BuildTraining(s.NewSubScope("pipeline"), spec);
  EXPECT_TRUE(test::StatusHas(built.status(), absl::StatusCode::kFailedPrecondition,
                              "the schedule deadlocks: worker 0 at 0B0 waits for 1B0 on worker 1"))
      << built.status();
  EXPECT_EQ(s.graph()->num_nodes(), before);
  EXPECT_TRUE(s.ok());
}

TEST(PipelineBuilderTest, RefusesModelsItCannotCut) {
  {  // The loss outside every stage.
    Scope s = ops::NewRootScope();
    Model m;
    pipeline::TrainingSpec spec = SpecFor(s, &m, 2, 2);
    spec.loss = ops::Identity(s.WithOpName("outside"), m.loss);
    EXPECT_TRUE(test::StatusHas(pipeline::BuildTraining(s.NewSubScope("p"), spec).status(),
                                absl::StatusCode::kInvalidArgument,
                                "node 'outside' (Identity) depends on a batch input and leads to "
                                "outside:0 but was built outside every pipeline stage"));
  }
  {  // Stage 2 reading stage 0: a skip across a stage.
    Scope s = ops::NewRootScope();
    Model m;
    pipeline::TrainingSpec spec = SpecFor(s, &m, 3, 2);
    const Node* h0 = nullptr;
    for (const Node* n : m.stages[0].nodes) {
      if (n->op() == "Tanh") h0 = n;
    }
    ASSERT_NE(h0, nullptr);
    const int first = s.graph()->num_nodes();
    Output skip = ops::Add(s.WithDevice(Cpu(2)).WithOpName("skip"), m.loss,
                           ops::ReduceMean(s.WithDevice(Cpu(2)), Output(h0, 0), {0, 1}));
    for (const Node* n : pipeline::NodesSince(*s.graph(), first)) spec.stages[2].nodes.push_back(n);
    spec.loss = skip;
    EXPECT_TRUE(test::StatusHas(pipeline::BuildTraining(s.NewSubScope("p"), spec).status(),
                                absl::StatusCode::kInvalidArgument,
                                "in pipeline stage 2 reads stage0/Tanh:0 of stage 0: a stage may "
                                "read only its own nodes, the previous stage's and batch inputs"));
  }
  {  // A schedule for another number of stages; the loss in a stage before the last.
    Scope s = ops::NewRootScope();
    Model m;
    pipeline::TrainingSpec spec = SpecFor(s, &m, 2, 2);
    spec.stages.push_back({Cpu(2), {ops::Identity(s.WithDevice(Cpu(2)), m.loss).node()}});
    EXPECT_TRUE(test::StatusHas(pipeline::BuildTraining(s.NewSubScope("p"), spec).status(),
                                absl::StatusCode::kInvalidArgument,
                                "the schedule has 2 stages but the model 3"));
    auto three = pipeline::OneFOneB(3, 2);
    ASSERT_TRUE(three.ok());
    spec.schedule = *three;
    EXPECT_TRUE(test::StatusHas(pipeline::BuildTraining(s.NewSubScope("p"), spec).status(),
                                absl::StatusCode::kInvalidArgument,
                                "pipeline stage 2 has no node that depends on a batch input "
                                "and leads to stage1/Mean:0"));
  }
}

TEST(PipelineBuilderTest, PredictsActivationBytesFromShapesAndChecksTheBudget) {
  Scope s = ops::NewRootScope();
  Model m;
  pipeline::TrainingSpec spec = SpecFor(s, &m, 2, 4);
  absl::StatusOr<pipeline::Built> built = pipeline::BuildTraining(s.NewSubScope("p"), spec);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(built->activation_bytes.size(), 2u);
  // Stage 0, micro-batch of 12 rows: MatMul, Add and Tanh outputs of [12, 6] float32.
  EXPECT_EQ(built->activation_bytes[0], 3 * 12 * 6 * 4);
  // 1F1B holds min(p - s, m) micro-batches: 2 on stage 0, 1 on stage 1.
  EXPECT_EQ(built->predicted.stages[0].peak_micro_batches, 2);
  EXPECT_EQ(built->predicted.stages[1].peak_micro_batches, 1);
  EXPECT_EQ(built->predicted.stages[0].peak_bytes, 2 * built->activation_bytes[0]);

  Scope s2 = ops::NewRootScope();
  spec = SpecFor(s2, &m, 2, 4);
  spec.costs.memory_budget = 100;
  EXPECT_TRUE(test::StatusHas(pipeline::BuildTraining(s2.NewSubScope("p"), spec).status(),
                              absl::StatusCode::kResourceExhausted,
                              "worker 0 would hold 1728 bytes of activations at its peak; the "
                              "budget is 100"));
}

TEST(PipelineBuilderTest, NamesTheStageOfAnActionsStart) {
  EXPECT_EQ(pipeline::PipelineStageOf("pipeline/mb3/stage1_start/Timestamp"),
            std::make_pair(std::string("pipeline"), 1));
  EXPECT_EQ(pipeline::PipelineStageOf("a/b/mb0_backward/stage12_start/Timestamp"),
            std::make_pair(std::string("a/b"), 12));
  EXPECT_EQ(pipeline::PipelineStageOf("pipeline/mb3/stage1_end/Timestamp"), std::nullopt);
  EXPECT_EQ(pipeline::PipelineStageOf("pipeline/mb3/dense/MatMul"), std::nullopt);
  EXPECT_EQ(pipeline::PipelineStageOf("x/stage1_start/Timestamp"), std::nullopt);
}

}  // namespace
}  // namespace sluice
