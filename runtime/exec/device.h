// Device: one place kernels run. A CPU device owns a oneTBB task_arena for inter-op
// parallelism (the executor schedules ready nodes there), an Eigen thread pool for intra-op
// parallelism (kernels use eigen_device()), and the ResourceMgr that keeps variables between
// steps. Thread-safe.
//
//   DeviceOptions opts; opts.name = "/job:localhost/task:0/device:cpu:0";
//   auto device = std::make_unique<CpuDevice>(opts);
#ifndef SLUICE_RUNTIME_EXEC_DEVICE_H_
#define SLUICE_RUNTIME_EXEC_DEVICE_H_

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
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_EXEC_DEVICE_H_
