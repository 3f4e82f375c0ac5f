#include "runtime/exec/device.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tbb/task_arena.h"

namespace sluice {
namespace {

TEST(CpuDeviceTest, SubmitRunsEveryWorkOnceOffTheCallersThread) {
  DeviceOptions options;
  options.inter_op_threads = 2;
  CpuDevice device(options);
  constexpr int kWork = 200;
  std::vector<std::atomic<int>> runs(kWork);
  std::atomic<int> on_caller{0};
  std::atomic<int> on_tbb_worker{0};
  const std::thread::id caller = std::this_thread::get_id();
  absl::BlockingCounter done(kWork);
  for (int i = 0; i < kWork; ++i) {
    device.Submit([&, i] {
      runs[i].fetch_add(1);
      if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
      // Entry threads are not oneTBB's: waking them never wakes a spinning arena worker.
      if (tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized) {
        on_tbb_worker.fetch_add(1);
      }
      done.DecrementCount();
    });
  }
  done.Wait();
  for (int i = 0; i < kWork; ++i) EXPECT_EQ(runs[i].load(), 1) << "work " << i;
  EXPECT_EQ(on_caller.load(), 0);
  EXPECT_EQ(on_tbb_worker.load(), 0);
}

// A step's entry work may block (a _Send waiting for a credit): another entry thread still runs
// what arrives next, up to the device's inter-op thread count.
TEST(CpuDeviceTest, BlockedEntryWorkDoesNotHoldUpTheNext) {
  DeviceOptions options;
  options.inter_op_threads = 2;
  CpuDevice device(options);
  absl::Notification first_started, second_ran, first_done;
  device.Submit([&] {
    first_started.Notify();
    second_ran.WaitForNotification();  // Blocks until the second work ran elsewhere.
    first_done.Notify();
  });
  first_started.WaitForNotification();
  device.Submit([&] { second_ran.Notify(); });
  first_done.WaitForNotification();
}

// Work still queued when the device goes away runs first (it may hold the last reference to a
// step that must report its end).
TEST(CpuDeviceTest, DestructionRunsQueuedWork) {
  std::atomic<int> ran{0};
  {
    DeviceOptions options;
    options.inter_op_threads = 1;
    CpuDevice device(options);
    absl::Notification release;
    device.Submit([&] {
      release.WaitForNotification();
      ran.fetch_add(1);
    });
    for (int i = 0; i < 10; ++i) device.Submit([&] { ran.fetch_add(1); });
    release.Notify();
  }
  EXPECT_EQ(ran.load(), 11);
}

}  // namespace
}  // namespace sluice
