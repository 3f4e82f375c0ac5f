// Where a task finds its cluster when a cluster manager starts it: the SLUICE_CONFIG environment
// variable (TensorFlow's TF_CONFIG layout), or Slurm's variables.
//
//   SLUICE_CONFIG='{"cluster": {"master": ["m:2222"], "worker": ["w0:2222", "w1:2222"]},
//                   "task": {"type": "worker", "index": 1}}'
//
// Slurm (one Sluice task per node: `srun --ntasks-per-node=1`): SLURM_PROCID ranks the tasks,
// SLURM_NTASKS counts them and SLURM_JOB_NODELIST (or SLURM_STEP_NODELIST) names the nodes in
// rank order ("node[01-04,07],login1"). Rank 0 is the master, ranks 1..P the ps tasks
// (SLUICE_SLURM_PS=P, default 0), the rest workers; every task listens on SLUICE_PORT (default
// 2222) of its node. Thread-compatible: pure functions of their arguments.
//
//   SLUICE_ASSIGN_OR_RETURN(std::optional<TaskConfig> c, ConfigFromEnvironment(std::getenv));
#ifndef SLUICE_DISTRIBUTED_DEPLOY_CONFIG_H_
#define SLUICE_DISTRIBUTED_DEPLOY_CONFIG_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "graph/cluster_spec.h"

namespace sluice {

inline constexpr char kSluiceConfigEnv[] = "SLUICE_CONFIG";

struct TaskConfig {
  ClusterSpec::JobMap cluster;  // Validated by ClusterSpec::Create.
  std::string job;
  int task = 0;
};

// SLUICE_CONFIG's JSON (parsed by protobuf's JSON reader). InvalidArgument naming what is
// missing or malformed, or a task the cluster does not have.
absl::StatusOr<TaskConfig> ParseSluiceConfig(absl::string_view json);

// Slurm's compressed host list, expanded in order: "node[01-03,07],login1" -> node01, node02,
// node03, node07, login1 (zero padding kept). InvalidArgument for unbalanced brackets or a bad
// range.
absl::StatusOr<std::vector<std::string>> ExpandSlurmHostList(absl::string_view list);

using GetEnv = std::function<const char*(const char*)>;

// The task from Slurm's variables (see above). InvalidArgument naming the variable.
absl::StatusOr<TaskConfig> ConfigFromSlurm(const GetEnv& getenv);

// SLUICE_CONFIG when set, else Slurm's variables when SLURM_PROCID is set, else nullopt.
absl::StatusOr<std::optional<TaskConfig>> ConfigFromEnvironment(const GetEnv& getenv);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_DEPLOY_CONFIG_H_
