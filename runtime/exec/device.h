// Device: one place kernels run. A CPU device owns a oneTBB task_arena for inter-op
// parallelism (the executor schedules ready nodes there), an Eigen thread pool for intra-op
// parallelism (kernels use eigen_device()), entry threads for work that arrives from outside
// the executor (Submit), and the ResourceMgr that keeps variables between steps. Thread-safe.
//
//   DeviceOptions opts; opts.name = "/job:localhost/task:0/device:cpu:0";
//   auto device = std::make_unique<CpuDevice>(opts);
#ifndef SLUICE_RUNTIME_EXEC_DEVICE_H_
#define SLUICE_RUNTIME_EXEC_DEVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "runtime/kernel/resource_mgr.h"
#include "tbb/task_arena.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace sluice {

struct DeviceOptions {
  std::string name = "/job:localhost/task:0/device:cpu:0";
  int inter_op_threads = 0;  // 0: the number of cores.
  int intra_op_threads = 0;  // 0: the number of cores.
};

class CpuDevice {
 public:
  explicit CpuDevice(const DeviceOptions& options);
  ~CpuDevice();
  CpuDevice(const CpuDevice&) = delete;
  CpuDevice& operator=(const CpuDevice&) = delete;

  const std::string& name() const { return name_; }
  const char* device_type() const { return "CPU"; }
  tbb::task_arena& arena() { return *arena_; }
  // Runs `work` soon on one of the device's entry threads (as many as inter-op threads), which
  // block when idle instead of spinning. For work that arrives from outside the executor and
  // is usually small: a step a RunGraph call starts, the nodes a received tensor makes ready.
  // Handed to the arena instead, such work wakes a oneTBB worker that then spins for a few
  // hundred microseconds before it sleeps again: one step of a trivial graph cost each worker
  // process ~400 us of CPU, which on a machine with fewer cores than busy processes delayed
  // every other process of the step (docs/benchmarks.md, "Per-step overhead"). What `work`
  // schedules on the arena still fans out there.
  void Submit(std::function<void()> work);
  const Eigen::ThreadPoolDevice& eigen_device() const { return *eigen_device_; }
  ResourceMgr* resources() { return &resources_; }
  int intra_op_threads() const { return intra_op_threads_; }

 private:
  std::string name_;
  int intra_op_threads_;
  std::unique_ptr<tbb::task_arena> arena_;
  std::unique_ptr<Eigen::ThreadPool> eigen_pool_;
  std::unique_ptr<Eigen::ThreadPoolDevice> eigen_device_;
  ResourceMgr resources_;
  // Last: destroyed first, so work it still runs finds the rest of the device alive.
  std::unique_ptr<Eigen::ThreadPool> entry_pool_;
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_EXEC_DEVICE_H_
