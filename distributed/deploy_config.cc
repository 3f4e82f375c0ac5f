#include "distributed/deploy_config.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace sluice {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kSluiceConfigEnv, ": ", what));
}

// The task's index in its job, or an error naming the task the cluster lacks.
absl::Status CheckTask(const TaskConfig& c) {
  auto job = c.cluster.find(c.job);
  if (job == c.cluster.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cluster has no job '", c.job, "' for this task"));
  }
  if (c.task < 0 || c.task >= static_cast<int>(job->second.size())) {
    return absl::InvalidArgumentError(absl::StrCat("job '", c.job, "' has ", job->second.size(),
                                                   " task(s); this task's index is ", c.task));
  }
  return ClusterSpec::Create(c.cluster).status();
}

int IntOr(const GetEnv& getenv, const char* name, int fallback, absl::Status* error) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  int out = 0;
  if (!absl::SimpleAtoi(v, &out) || out < 0) {
    *error = absl::InvalidArgumentError(
        absl::StrCat(name, " must be a non-negative integer, got '", v, "'"));
  }
  return out;
}

}  // namespace

absl::StatusOr<TaskConfig> ParseSluiceConfig(absl::string_view json) {
  google::protobuf::Struct root;
  google::protobuf::util::JsonParseOptions options;
  auto parsed = google::protobuf::util::JsonStringToMessage(std::string(json), &root, options);
  if (!parsed.ok()) return Bad(absl::StrCat("not JSON: ", parsed.ToString()));
  const auto& fields = root.fields();
  auto cluster = fields.find("cluster");
  if (cluster == fields.end() || !cluster->second.has_struct_value()) {
    return Bad("needs \"cluster\": {\"job\": [\"host:port\", ...], ...}");
  }
  TaskConfig c;
  for (const auto& [job, tasks] : cluster->second.struct_value().fields()) {
    if (!tasks.has_list_value()) return Bad(absl::StrCat("job '", job, "' is not a list"));
    std::vector<std::string>& out = c.cluster[job];
    for (const google::protobuf::Value& a : tasks.list_value().values()) {
      if (a.kind_case() != google::protobuf::Value::kStringValue) {
        return Bad(absl::StrCat("job '", job, "' lists something other than \"host:port\""));
      }
      out.push_back(a.string_value());
    }
  }
  auto task = fields.find("task");
  if (task == fields.end() || !task->second.has_struct_value()) {
    return Bad("needs \"task\": {\"type\": \"worker\", \"index\": 0}");
  }
  const auto& t = task->second.struct_value().fields();
  auto type = t.find("type");
  auto index = t.find("index");
  if (type == t.end() || type->second.kind_case() != google::protobuf::Value::kStringValue) {
    return Bad("\"task\" needs a \"type\" (a job name)");
  }
  if (index == t.end() || index->second.kind_case() != google::protobuf::Value::kNumberValue ||
      index->second.number_value() != static_cast<int>(index->second.number_value())) {
    return Bad("\"task\" needs an integer \"index\"");
  }
  c.job = type->second.string_value();
  c.task = static_cast<int>(index->second.number_value());
  absl::Status ok = CheckTask(c);
  if (!ok.ok()) return Bad(ok.message());
  return c;
}

absl::StatusOr<std::vector<std::string>> ExpandSlurmHostList(absl::string_view list) {
  std::vector<std::string> hosts;
  size_t i = 0;
  while (i < list.size()) {
    // One entry: a prefix, optionally one [ranges] group, up to the next top-level comma.
    size_t open = list.find_first_of("[,", i);
    if (open == absl::string_view::npos || list[open] == ',') {
      const size_t end = open == absl::string_view::npos ? list.size() : open;
      if (end > i) hosts.emplace_back(list.substr(i, end - i));
      i = end + 1;
      continue;
    }
    const size_t close = list.find(']', open);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("host list '", list, "': '[' without ']'"));
    }
    const absl::string_view prefix = list.substr(i, open - i);
    for (absl::string_view range : absl::StrSplit(list.substr(open + 1, close - open - 1), ',')) {
      std::vector<absl::string_view> ends = absl::StrSplit(range, '-');
      int64_t lo = 0, hi = 0;
      if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &lo) ||
          !absl::SimpleAtoi(ends.back(), &hi) || hi < lo || hi - lo > 100000) {
        return absl::InvalidArgumentError(
            absl::StrCat("host list '", list, "': bad range '", range, "'"));
      }
      const size_t width = ends[0].size();
      for (int64_t n = lo; n <= hi; ++n) {
        std::string digits = absl::StrCat(n);
        if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
        hosts.push_back(absl::StrCat(prefix, digits));
      }
    }
    i = close + 1;
    if (i < list.size() && list[i] == ',') ++i;
  }
  return hosts;
}

absl::StatusOr<TaskConfig> ConfigFromSlurm(const GetEnv& getenv) {
  absl::Status error;
  const int rank = IntOr(getenv, "SLURM_PROCID", -1, &error);
  const int ntasks = IntOr(getenv, "SLURM_NTASKS", -1, &error);
  const int num_ps = IntOr(getenv, "SLUICE_SLURM_PS", 0, &error);
  const int port = IntOr(getenv, "SLUICE_PORT", 2222, &error);
  if (!error.ok()) return error;
  const char* nodes = getenv("SLURM_STEP_NODELIST");
  if (nodes == nullptr || *nodes == '\0') nodes = getenv("SLURM_JOB_NODELIST");
  if (rank < 0 || ntasks < 0 || nodes == nullptr || *nodes == '\0') {
    return absl::InvalidArgumentError(
        "Slurm: needs SLURM_PROCID, SLURM_NTASKS and SLURM_JOB_NODELIST (run under srun)");
  }
  absl::StatusOr<std::vector<std::string>> hosts = ExpandSlurmHostList(nodes);
  if (!hosts.ok()) return hosts.status();
  if (static_cast<int>(hosts->size()) != ntasks) {
    return absl::InvalidArgumentError(
        absl::StrCat("Slurm: ", ntasks, " tasks on ", hosts->size(),
                     " nodes; Sluice runs one task per node (srun --ntasks-per-node=1)"));
  }
  if (ntasks < 2 + num_ps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Slurm: ", ntasks, " tasks cannot hold a master, ", num_ps, " ps task(s) and a worker"));
  }
  TaskConfig c;
  for (int r = 0; r < ntasks; ++r) {
    const std::string job = r == 0 ? "master" : r <= num_ps ? "ps" : "worker";
    c.cluster[job].push_back(absl::StrCat((*hosts)[r], ":", port));
  }
  c.job = rank == 0 ? "master" : rank <= num_ps ? "ps" : "worker";
  c.task = rank == 0 ? 0 : rank <= num_ps ? rank - 1 : rank - 1 - num_ps;
  if (absl::Status ok = CheckTask(c); !ok.ok()) return ok;
  return c;
}

absl::StatusOr<std::optional<TaskConfig>> ConfigFromEnvironment(const GetEnv& getenv) {
  if (const char* json = getenv(kSluiceConfigEnv); json != nullptr && *json != '\0') {
    absl::StatusOr<TaskConfig> c = ParseSluiceConfig(json);
    if (!c.ok()) return c.status();
    return std::optional<TaskConfig>(*std::move(c));
  }
  if (const char* rank = getenv("SLURM_PROCID"); rank != nullptr && *rank != '\0') {
    absl::StatusOr<TaskConfig> c = ConfigFromSlurm(getenv);
    if (!c.ok()) return c.status();
    return std::optional<TaskConfig>(*std::move(c));
  }
  return std::optional<TaskConfig>();
}

}  // namespace sluice
