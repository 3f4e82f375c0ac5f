// ClusterSpec: the machines of a cluster, as jobs -> tasks -> "host:port". Task i of job "worker"
// is the process at the i-th address of that job; its devices are named
// "/job:worker/task:i/device:...". Immutable once built; thread-safe to share.
//
// Two textual forms are read (Parse picks by the first non-blank character):
//   JSON-ish: {"worker": ["localhost:2222", "localhost:2223"], "ps": ["localhost:2224"]}
//   text:     worker=localhost:2222,localhost:2223;ps=localhost:2224
// Validation rejects an empty spec, empty jobs, bad job names, malformed addresses, ports
// outside 1..65535, duplicate jobs and addresses used twice; errors quote the offending text
// and, for JSON, the line and column.
//
//   SLUICE_ASSIGN_OR_RETURN(ClusterSpec spec, ClusterSpec::FromFile("cluster.json"));
//   SLUICE_ASSIGN_OR_RETURN(std::string addr, spec.TaskAddress("worker", 1));
#ifndef SLUICE_GRAPH_CLUSTER_SPEC_H_
#define SLUICE_GRAPH_CLUSTER_SPEC_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {

class ClusterSpec {
 public:
  // Jobs in name order, each with its task addresses in task order.
  using JobMap = std::map<std::string, std::vector<std::string>>;

  // Validates `jobs` (see the header comment).
  static absl::StatusOr<ClusterSpec> Create(JobMap jobs);
  // Either form, chosen by whether the text starts with '{'.
  static absl::StatusOr<ClusterSpec> Parse(absl::string_view text);
  static absl::StatusOr<ClusterSpec> FromJson(absl::string_view json);
  static absl::StatusOr<ClusterSpec> FromText(absl::string_view text);
  // Reads and parses a file; errors name the path.
  static absl::StatusOr<ClusterSpec> FromFile(const std::string& path);

  const JobMap& jobs() const { return jobs_; }
  std::vector<std::string> JobNames() const;
  // 0 for an unknown job.
  int NumTasks(absl::string_view job) const;
  // NotFound naming the job or the task index and how many tasks the job has.
  absl::StatusOr<std::string> TaskAddress(absl::string_view job, int task) const;
  // "/job:worker/task:0", ... for every task of every job.
  std::vector<std::string> TaskNames() const;

  // Round-trippable renderings.
  std::string ToJson() const;
  std::string ToText() const;

 private:
  explicit ClusterSpec(JobMap jobs) : jobs_(std::move(jobs)) {}
  JobMap jobs_;
};

// Checks "host:port" ("[::1]:port" for IPv6 literals); InvalidArgument naming the address.
absl::Status ValidateAddress(absl::string_view address);

}  // namespace sluice

#endif  // SLUICE_GRAPH_CLUSTER_SPEC_H_
