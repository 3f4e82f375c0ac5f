#include "runtime/exec/device.h"

#include <thread>

#include "tbb/task_arena.h"

namespace sluice {
namespace {

int OrCores(int n) {
  if (n > 0) return n;
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

}  // namespace

CpuDevice::CpuDevice(const DeviceOptions& options)
    : name_(options.name),
      intra_op_threads_(OrCores(options.intra_op_threads)),
      arena_(std::make_unique<tbb::task_arena>(OrCores(options.inter_op_threads))),
      eigen_pool_(std::make_unique<Eigen::ThreadPool>(intra_op_threads_)),
      eigen_device_(
          std::make_unique<Eigen::ThreadPoolDevice>(eigen_pool_.get(), intra_op_threads_)),
      entry_pool_(std::make_unique<Eigen::ThreadPool>(OrCores(options.inter_op_threads),
                                                      /*allow_spinning=*/false)) {}

void CpuDevice::Submit(std::function<void()> work) { entry_pool_->Schedule(std::move(work)); }

CpuDevice::~CpuDevice() = default;

}  // namespace sluice
