// Pipeline schedules as data, and the verifier that simulates one before it runs.
//
// A pipeline has p stages (a stage is a slice of the model's layers) spread over workers, and a
// batch cut into m micro-batches. A schedule is, per worker, the ordered list of its compute
// actions: forward or backward of (stage, micro-batch). The transfers between stages are
// implied (a stage's forward output goes to the next stage, its input gradient to the previous
// one) and bounded by credits: at most `credits` tensors in flight on each edge and direction.
// Actions are written as PyTorch's pipelining writes them: "2F0" is stage 2's forward of
// micro-batch 0, "1B3" stage 1's backward of micro-batch 3; a schedule round-trips through
// PyTorch's CSV layout (one row per worker, one action per column).
//
// Generators (TRAINING.md section 5):
//   GPipe(p, m)               one stage per worker; all m forwards, then all m backwards
//   OneFOneB(p, m)            one stage per worker; p - s - 1 warm-up forwards on stage s, then
//                             one forward / one backward, then the remaining backwards
//   Interleaved1F1B(w, v, m)  v stages per worker (worker r holds r, r + w, ...), Megatron's
//                             order (m a multiple of w)
//
// Simulate() runs a schedule on a clock with per-action costs and the credit windows:
//   - deadlock: when no worker can start its next action, the report names the wait cycle
//     ("worker 0 at 0F2 waits for credit on edge 0->1 held by worker 1 at 1B0, ...");
//   - bubble: each worker's idle fraction of the makespan (for uniform costs GPipe and 1F1B
//     give (p - 1) / (m + p - 1); interleaved, stages of 1/v the cost, (p - 1) / (v m + p - 1):
//     1F1B's idle time divided by v);
//   - memory: the peak number (and bytes) of micro-batches whose activations a stage holds
//     (from its forward until its backward): m for GPipe, min(p - s, m) for 1F1B at stage s;
//     checked against an optional per-worker budget.
// Everything is a pure function of its arguments: thread-compatible.
//
//   SLUICE_ASSIGN_OR_RETURN(pipeline::Schedule s, pipeline::OneFOneB(4, 8));
//   SLUICE_ASSIGN_OR_RETURN(pipeline::Report r, pipeline::Simulate(s, pipeline::Costs{}));
//   std::cout << r.ToString();
#ifndef SLUICE_DISTRIBUTED_PIPELINE_SCHEDULE_H_
#define SLUICE_DISTRIBUTED_PIPELINE_SCHEDULE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {
namespace pipeline {

struct Action {
  enum class Type { kForward, kBackward };
  int stage = 0;
  Type type = Type::kForward;
  int micro_batch = 0;

  // "2F0", "1B3".
  std::string ToString() const;
  static absl::StatusOr<Action> Parse(absl::string_view text);
  bool operator==(const Action& o) const {
    return stage == o.stage && type == o.type && micro_batch == o.micro_batch;
  }
};

struct Schedule {
  int num_stages = 0;
  int num_micro_batches = 0;
  std::vector<int> worker_of_stage;          // Stage -> the worker that runs it.
  std::vector<std::vector<Action>> actions;  // Per worker, in order.

  int num_workers() const { return static_cast<int>(actions.size()); }
  // PyTorch's pipelining CSV: one row per worker, actions separated by commas.
  std::string ToCsv() const;
  // Checks the schedule: every stage on one worker, every (stage, micro-batch) forward and
  // backward exactly once, on the stage's worker, a backward after its forward in the list.
  // InvalidArgument naming the first problem.
  absl::Status Validate() const;
};

// A schedule from PyTorch's CSV; the stages' workers are where their actions appear. Validated.
absl::StatusOr<Schedule> ScheduleFromCsv(absl::string_view csv);

absl::StatusOr<Schedule> GPipe(int num_stages, int num_micro_batches);
absl::StatusOr<Schedule> OneFOneB(int num_stages, int num_micro_batches);
absl::StatusOr<Schedule> Interleaved1F1B(int num_workers, int stages_per_worker,
                                         int num_micro_batches);

// Costs of the actions (time units) and the size of what they hold; per stage, or one value
// for all stages when a vector has one element.
struct Costs {
  std::vector<double> forward = {1.0};
  std::vector<double> backward = {2.0};
  double transfer = 0.0;                        // From a send's end to the receiver's start.
  std::vector<int64_t> activation_bytes = {0};  // Held per micro-batch from forward to backward.
  int credits = 2;                              // Tensors in flight per edge and direction.
  std::optional<int64_t> memory_budget;         // Per worker, bytes of activations.
};

struct WorkerReport {
  double busy = 0;
  double bubble = 0;  // Idle fraction of the makespan.
};

struct StageReport {
  int peak_micro_batches = 0;  // Activations held at once.
  int64_t peak_bytes = 0;
};

struct Report {
  double makespan = 0;
  std::vector<WorkerReport> workers;
  std::vector<StageReport> stages;
  std::vector<int64_t> worker_peak_bytes;
  // Per worker, (action, start, end) in the order run: the simulated timeline.
  struct Slot {
    Action action;
    double start = 0, end = 0;
  };
  std::vector<std::vector<Slot>> timeline;

  // A table per worker and per stage, and a text timeline.
  std::string ToString() const;
};

// Simulates `schedule` (validated first). FailedPrecondition naming the cycle on a deadlock;
// ResourceExhausted naming the worker, its peak and the budget when over the memory budget;
// InvalidArgument for bad costs.
absl::StatusOr<Report> Simulate(const Schedule& schedule, const Costs& costs);

}  // namespace pipeline
}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_PIPELINE_SCHEDULE_H_
