#include "runtime/exec/step_trace.h"

#include <sys/syscall.h>
#include <unistd.h>

#include "absl/time/clock.h"

namespace sluice {

int64_t StepTrace::NowNanos() { return absl::GetCurrentTimeNanos(); }

uint32_t StepTrace::ThreadId() {
  thread_local const uint32_t id = static_cast<uint32_t>(syscall(SYS_gettid));
  return id;
}

}  // namespace sluice
