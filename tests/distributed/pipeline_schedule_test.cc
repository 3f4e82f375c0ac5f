// The pipeline schedules and their verifier against TRAINING.md's closed forms (bubble
// (p - 1) / (m + p - 1), peak activations m for GPipe and min(p - s, m) for 1F1B), hand-written
// schedules (a deadlock named by its cycle, a credit-bound one), PyTorch's CSV round trip and
// the errors that name what is wrong.
#include "distributed/pipeline_schedule.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace pipeline {
namespace {

using test::StatusHas;

Costs Uniform(double forward, double backward, int credits = 1000) {
  Costs c;
  c.forward = {forward};
  c.backward = {backward};
  c.activation_bytes = {100};
  c.credits = credits;
  return c;
}

TEST(PipelineScheduleTest, ActionsReadAndWriteAsPyTorchWritesThem) {
  absl::StatusOr<Action> a = Action::Parse(" 12B3 ");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->stage, 12);
  EXPECT_EQ(a->type, Action::Type::kBackward);
  EXPECT_EQ(a->micro_batch, 3);
  EXPECT_EQ(a->ToString(), "12B3");
  EXPECT_TRUE(StatusHas(Action::Parse("2X0").status(), absl::StatusCode::kInvalidArgument,
                        "'2X0' is not an action"));
}

TEST(PipelineScheduleTest, OneFOneBOrderOnEachStage) {
  absl::StatusOr<Schedule> s = OneFOneB(3, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  // Stage 0: two warm-up forwards, then alternating, then the last backwards.
  EXPECT_EQ(s->ToCsv(),
            "0F0,0F1,0F2,0B0,0F3,0B1,0B2,0B3\n"
            "1F0,1F1,1B0,1F2,1B1,1F3,1B2,1B3\n"
            "2F0,2B0,2F1,2B1,2F2,2B2,2F3,2B3\n");
  absl::StatusOr<Schedule> back = ScheduleFromCsv(s->ToCsv());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->actions, s->actions);
  EXPECT_EQ(back->worker_of_stage, s->worker_of_stage);
}

TEST(PipelineScheduleTest, BubbleAndMemoryEqualTheClosedFormsForUniformCosts) {
  for (int p : {2, 3, 4}) {
    for (int m : {1, 2, 4, 8, 16}) {
      for (bool gpipe : {true, false}) {
        absl::StatusOr<Schedule> s = gpipe ? GPipe(p, m) : OneFOneB(p, m);
        ASSERT_TRUE(s.ok()) << s.status();
        absl::StatusOr<Report> r = Simulate(*s, Uniform(1.0, 2.0));
        ASSERT_TRUE(r.ok()) << r.status();
        const std::string what =
            (gpipe ? "GPipe p=" : "1F1B p=") + std::to_string(p) + " m=" + std::to_string(m);
        EXPECT_DOUBLE_EQ(r->makespan, 3.0 * (m + p - 1)) << what;
        for (const WorkerReport& w : r->workers) {
          EXPECT_NEAR(w.bubble, (p - 1.0) / (m + p - 1.0), 1e-12) << what;
        }
        for (int st = 0; st < p; ++st) {
          const int want = gpipe ? m : std::min(p - st, m);
          EXPECT_EQ(r->stages[st].peak_micro_batches, want) << what << " stage " << st;
          EXPECT_EQ(r->stages[st].peak_bytes, want * 100) << what << " stage " << st;
        }
      }
    }
  }
}

TEST(PipelineScheduleTest, InterleavingDividesTheIdleTimeByTheChunksPerWorker) {
  for (int v : {2, 4}) {
    const int p = 4, m = 8;
    // Each of the v chunks of a worker costs 1/v of its share of the model.
    absl::StatusOr<Schedule> s = Interleaved1F1B(p, v, m);
    ASSERT_TRUE(s.ok()) << s.status();
    absl::StatusOr<Report> r = Simulate(*s, Uniform(1.0 / v, 2.0 / v));
    ASSERT_TRUE(r.ok()) << r.status();
    for (const WorkerReport& w : r->workers) {
      EXPECT_NEAR(w.bubble, (p - 1.0) / (v * m + p - 1.0), 1e-12) << "v=" << v;
      // The idle time itself is 1F1B's, (p - 1) (t_f + t_b), divided by v.
      EXPECT_NEAR(w.bubble * r->makespan, (p - 1.0) * 3.0 / v, 1e-9) << "v=" << v;
    }
  }
  EXPECT_TRUE(StatusHas(Interleaved1F1B(4, 2, 6).status(), absl::StatusCode::kInvalidArgument,
                        "micro-batches (6) to be a multiple of the workers (4)"));
}

TEST(PipelineScheduleTest, ADeadlockIsRefusedWithItsCycle) {
  // Both workers run their backward first: stage 0's backward needs stage 1's, which needs
  // stage 1's forward, which needs stage 0's forward, still behind stage 0's backward.
  absl::StatusOr<Schedule> s = ScheduleFromCsv("0B0,0F0\n1F0,1B0\n");
  EXPECT_TRUE(
      StatusHas(s.status(), absl::StatusCode::kInvalidArgument, "worker 0 runs 0B0 before 0F0"));
  // A valid order that still deadlocks: stage 0 runs both forwards before stage 1 may take
  // them, with one credit on the edge and stage 1 wanting micro-batch 1 first.
  s = ScheduleFromCsv("0F0,0F1,0B0,0B1\n1F1,1F0,1B0,1B1\n");
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<Report> r = Simulate(*s, Uniform(1, 1, /*credits=*/1));
  EXPECT_TRUE(StatusHas(r.status(), absl::StatusCode::kFailedPrecondition,
                        "the schedule deadlocks: worker 0 at 0F1 waits for a credit on edge "
                        "0->1 (1 in flight) that worker 1 returns at 1F0; worker 1 at 1F1 "
                        "waits for 0F1 on worker 0"));
  // With two credits the same schedule runs.
  EXPECT_TRUE(Simulate(*s, Uniform(1, 1, /*credits=*/2)).ok());
}

TEST(PipelineScheduleTest, CreditsBoundTheActivationsInFlight) {
  // GPipe with one credit: stage 0 cannot run ahead of stage 1 by more than one micro-batch,
  // so with a slow stage 1 it waits instead of piling up forwards.
  absl::StatusOr<Schedule> s = GPipe(2, 4);
  ASSERT_TRUE(s.ok());
  Costs c = Uniform(1, 1, /*credits=*/1);
  c.forward = {1.0, 3.0};
  absl::StatusOr<Report> r = Simulate(*s, c);
  ASSERT_TRUE(r.ok()) << r.status();
  // Stage 0's forward k starts when stage 1 has started forward k - 1: at 0, 1, 4, 7.
  std::vector<double> starts;
  for (const Report::Slot& slot : r->timeline[0]) {
    if (slot.action.type == Action::Type::kForward) starts.push_back(slot.start);
  }
  EXPECT_EQ(starts, (std::vector<double>{0, 1, 4, 7}));
}

TEST(PipelineScheduleTest, AMemoryBudgetRefusesWithTheNumbers) {
  absl::StatusOr<Schedule> s = GPipe(2, 8);
  ASSERT_TRUE(s.ok());
  Costs c = Uniform(1, 2);
  c.memory_budget = 500;
  EXPECT_TRUE(StatusHas(Simulate(*s, c).status(), absl::StatusCode::kResourceExhausted,
                        "worker 0 would hold 800 bytes of activations at its peak; the budget "
                        "is 500"));
  absl::StatusOr<Schedule> o = OneFOneB(2, 8);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(Simulate(*o, c).ok());  // 1F1B holds at most 2 micro-batches on stage 0.
}

TEST(PipelineScheduleTest, BadSchedulesAndCostsAreNamed) {
  EXPECT_TRUE(StatusHas(GPipe(0, 4).status(), absl::StatusCode::kInvalidArgument,
                        "at least one stage and one micro-batch, got 0 stage(s)"));
  EXPECT_TRUE(StatusHas(ScheduleFromCsv("0F0,0B0\n0F1,0B1\n").status(),
                        absl::StatusCode::kInvalidArgument, "stage 0 appears on rows 0 and 1"));
  EXPECT_TRUE(StatusHas(ScheduleFromCsv("0F0,0B0,0F0\n").status(),
                        absl::StatusCode::kInvalidArgument, "worker 0 runs 0F0 twice"));
  EXPECT_TRUE(StatusHas(ScheduleFromCsv("0F0,0F1,0B0\n").status(),
                        absl::StatusCode::kInvalidArgument, "the schedule never runs 0B1"));
  absl::StatusOr<Schedule> s = GPipe(2, 2);
  ASSERT_TRUE(s.ok());
  Costs c;
  c.forward = {1.0, 2.0, 3.0};
  EXPECT_TRUE(StatusHas(Simulate(*s, c).status(), absl::StatusCode::kInvalidArgument,
                        "costs need one value or one per stage (2), got 3"));
}

}  // namespace
}  // namespace pipeline
}  // namespace sluice
