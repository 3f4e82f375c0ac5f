// DeviceName: a parsed device name such as "/job:worker/task:1/device:cpu:0". Every component
// may be missing, so one type serves both for full names (a device that exists) and partial
// ones (a request such as "/job:ps" or "/device:cpu:1" that matches a set of devices).
// Value type; not synchronised.
//
// Accepted forms: "/job:NAME", "/replica:N", "/task:N", "/device:TYPE:ID" and the short
// "/TYPE:ID" ("/cpu:0"), in any combination, each at most once; ID may be "*" (any). Types are
// case-insensitive and kept in lower case, so ToString() gives one canonical spelling:
//
//   SLUICE_ASSIGN_OR_RETURN(DeviceName want, DeviceName::Parse("/job:worker/CPU:1"));
//   want.ToString();                          // "/job:worker/device:cpu:1"
//   SLUICE_ASSIGN_OR_RETURN(DeviceName dev, DeviceName::Parse("/job:worker/task:0/device:cpu:1"));
//   want.Matches(dev);                        // true: every component `want` sets agrees
#ifndef SLUICE_GRAPH_DEVICE_NAME_H_
#define SLUICE_GRAPH_DEVICE_NAME_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {

struct DeviceName {
  std::optional<std::string> job;
  std::optional<int> replica;
  std::optional<int> task;
  std::optional<std::string> type;  // Lower case, e.g. "cpu".
  std::optional<int> id;            // Unset also for "device:cpu:*".

  // InvalidArgument "invalid device name '<text>': <why>" when `text` does not parse. The empty
  // string parses to a name with no component (it matches every device).
  static absl::StatusOr<DeviceName> Parse(absl::string_view text);
  // "/job:worker/task:1/device:cpu:0" with the missing components left out ("" for none).
  std::string ToString() const;
  // "/job:<job>/task:<task>": the prefix of every device of one task (a task's identity).
  static std::string TaskPrefix(absl::string_view job, int task);
  // "/job:<job>/task:<task>/device:cpu:0": a worker task's one CPU device.
  static std::string TaskCpuDevice(absl::string_view task_prefix);

  bool empty() const { return !job && !replica && !task && !type && !id; }
  // True when job, task, type and id are all set (a name that can denote one device).
  bool IsFullySpecified() const;
  // True when every component set here equals the one of `device`. A replica of 0 also matches
  // a device whose name has no replica.
  bool Matches(const DeviceName& device) const;
  // True when some device could match both names.
  bool IsCompatibleWith(const DeviceName& other) const;
  // Adds the components of `other` that are missing here. InvalidArgument naming the component
  // and both values when a component is set differently in both.
  absl::Status MergeFrom(const DeviceName& other);

  bool operator==(const DeviceName& o) const {
    return job == o.job && replica == o.replica && task == o.task && type == o.type && id == o.id;
  }
  bool operator!=(const DeviceName& o) const { return !(*this == o); }
};

// Parses `text` and returns its canonical spelling.
absl::StatusOr<std::string> CanonicalDeviceName(absl::string_view text);

}  // namespace sluice

#endif  // SLUICE_GRAPH_DEVICE_NAME_H_
