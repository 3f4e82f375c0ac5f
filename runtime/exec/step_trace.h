// StepTrace: what each node of a traced step did, recorded by the executors that ran it.
//
// A run asks for a trace by putting a StepTrace in StepArgs::trace; every executor of the step
// (one per device, possibly on several threads at once) then records one NodeExecStats per
// node it ran: its start and end on the system clock (ns since the Unix epoch, comparable
// across processes of one host), the OS thread, and for transfers (_Send, _Recv) what pairs
// the two ends and the tensor's bytes. Without a StepTrace nothing is recorded or timed.
// Thread-safe.
//
//   StepTrace trace;
//   args.trace = &trace;
//   exec->Run(args, &out);
//   for (const NodeExecStats& s : trace.Take()) ...
#ifndef SLUICE_RUNTIME_EXEC_STEP_TRACE_H_
#define SLUICE_RUNTIME_EXEC_STEP_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

struct NodeExecStats {
  std::string device;
  std::string node;
  std::string op;
  int64_t start_ns = 0;  // System clock, ns since the Unix epoch.
  int64_t end_ns = 0;
  uint32_t thread = 0;  // The OS thread id.
  // _Send / _Recv: "send_device;recv_device;tensor_name", the same on both ends of a transfer.
  std::string transfer;
  int64_t bytes = -1;  // _Send / _Recv: the tensor's bytes; -1 otherwise.
};

class StepTrace {
 public:
  void Add(NodeExecStats stats) {
    absl::MutexLock lock(&mu_);
    stats_.push_back(std::move(stats));
  }
  // Everything recorded so far, in the order recorded; the trace is empty afterwards.
  std::vector<NodeExecStats> Take() {
    absl::MutexLock lock(&mu_);
    return std::move(stats_);
  }

  // The system clock now, ns since the Unix epoch.
  static int64_t NowNanos();
  // This thread's OS id.
  static uint32_t ThreadId();

 private:
  absl::Mutex mu_;
  std::vector<NodeExecStats> stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_EXEC_STEP_TRACE_H_
