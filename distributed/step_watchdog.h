// StepWatchdog: reports a step that runs too long, once, to stderr: what each of its tasks says
// it is doing (the Inspect RPC over the control plane, so it answers while the data plane is
// wedged): whether it runs the step, the receives waiting for a tensor and which task sends
// each, the tensors buffered, and its edges' credits for the step. The master watches every
// step it runs. Thread-safe.
//
//   StepWatchdog watchdog(absl::Seconds(60), &monitor);
//   watchdog.Begin(step_id, tasks);  ... run the step ...  watchdog.End(step_id);
#ifndef SLUICE_DISTRIBUTED_STEP_WATCHDOG_H_
#define SLUICE_DISTRIBUTED_STEP_WATCHDOG_H_

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distributed/coordinator.h"

namespace sluice {

class StepWatchdog {
 public:
  // `after`: how long a step may run before it is reported (InfiniteDuration: never).
  StepWatchdog(absl::Duration after, HeartbeatMonitor* monitor);
  ~StepWatchdog();

  void Begin(int64_t step_id, std::vector<std::string> tasks);
  void End(int64_t step_id);

  // The report for `step_id` on `tasks` now (what Begin's step gets when it runs too long).
  std::string Report(int64_t step_id, const std::vector<std::string>& tasks,
                     absl::Duration running) const;

 private:
  struct Watched {
    absl::Time started;
    std::vector<std::string> tasks;
    bool reported = false;
  };
  void Loop();

  const absl::Duration after_;
  HeartbeatMonitor* const monitor_;
  absl::Mutex mu_;
  std::map<int64_t, Watched> steps_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_STEP_WATCHDOG_H_
