// Data partitioning (ops/sampling.h) for sluice.data: each returns this worker's example
// indices (an int64 numpy array) or column range.
#include "ops/sampling.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

py::array_t<int64_t> ToArray(const std::vector<int64_t>& v) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

PartitionRequest Request(int64_t n, int64_t workers, int64_t index, uint64_t seed, int64_t epoch) {
  return {.num_examples = n, .workers = workers, .index = index, .seed = seed, .epoch = epoch};
}

}  // namespace

void BindData(py::module_& m) {
  m.def(
      "_shuffle_split",
      [](int64_t n, int64_t workers, int64_t index, uint64_t seed, int64_t epoch) {
        return ToArray(ValueOrThrow(ShuffleSplit(Request(n, workers, index, seed, epoch))));
      },
      py::arg("n"), py::arg("workers"), py::arg("index"), py::arg("seed"), py::arg("epoch"),
      "This worker's examples of epoch `epoch`: its contiguous shard of the epoch's "
      "permutation.");
  m.def(
      "_bootstrap",
      [](int64_t n, int64_t workers, int64_t index, uint64_t seed, int64_t epoch, int64_t count) {
        return ToArray(ValueOrThrow(Bootstrap(Request(n, workers, index, seed, epoch), count)));
      },
      py::arg("n"), py::arg("workers"), py::arg("index"), py::arg("seed"), py::arg("epoch"),
      py::arg("count"), "`count` examples drawn uniformly with replacement for this worker.");
  m.def(
      "_feature_range",
      [](int64_t columns, int64_t workers, int64_t index) {
        return ValueOrThrow(FeatureRange(Request(columns, workers, index, 0, 0)));
      },
      py::arg("columns"), py::arg("workers"), py::arg("index"),
      "This worker's columns [begin, end).");
}

}  // namespace python
}  // namespace sluice
