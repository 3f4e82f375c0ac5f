// SLUICE_CONFIG and Slurm's variables give a task its cluster, job and index; malformed input
// is refused naming what is wrong.
#include "distributed/deploy_config.h"

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

GetEnv Env(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(DeployConfigTest, ReadsSluiceConfig) {
  auto c = ParseSluiceConfig(
      R"({"cluster": {"master": ["m:2222"], "worker": ["w0:2222", "w1:2223"], "ps": ["p:1"]},
          "task": {"type": "worker", "index": 1}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job, "worker");
  EXPECT_EQ(c->task, 1);
  EXPECT_EQ(c->cluster.at("worker"), (std::vector<std::string>{"w0:2222", "w1:2223"}));
  EXPECT_EQ(c->cluster.at("master"), (std::vector<std::string>{"m:2222"}));
  auto env = ConfigFromEnvironment(Env({{"SLUICE_CONFIG", R"({"cluster": {"worker": ["a:1"]},
                                                            "task": {"type": "worker",
                                                                     "index": 0}})"}}));
  ASSERT_TRUE(env.ok() && env->has_value()) << env.status();
  EXPECT_EQ((*env)->cluster.at("worker")[0], "a:1");
  auto none = ConfigFromEnvironment(Env({}));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(DeployConfigTest, RefusesMalformedSluiceConfig) {
  const absl::StatusCode bad = absl::StatusCode::kInvalidArgument;
  EXPECT_TRUE(test::StatusHas(ParseSluiceConfig("{nope").status(), bad, "SLUICE_CONFIG: not JSON"));
  EXPECT_TRUE(
      test::StatusHas(ParseSluiceConfig(R"({"task": {"type": "worker", "index": 0}})").status(),
                      bad, "SLUICE_CONFIG: needs \"cluster\""));
  EXPECT_TRUE(test::StatusHas(
      ParseSluiceConfig(R"({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}})")
          .status(),
      bad, "job 'worker' is not a list"));
  EXPECT_TRUE(test::StatusHas(
      ParseSluiceConfig(R"({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}})").status(),
      bad, "\"task\" needs an integer \"index\""));
  EXPECT_TRUE(test::StatusHas(
      ParseSluiceConfig(
          R"({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})")
          .status(),
      bad, "job 'worker' has 1 task(s); this task's index is 3"));
  EXPECT_TRUE(test::StatusHas(
      ParseSluiceConfig(R"({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}})")
          .status(),
      bad, "the cluster has no job 'ps' for this task"));
}

TEST(DeployConfigTest, ExpandsSlurmHostLists) {
  auto hosts = ExpandSlurmHostList("node[01-03,07],login1,gpu[9-10]");
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  EXPECT_EQ(*hosts, (std::vector<std::string>{"node01", "node02", "node03", "node07", "login1",
                                              "gpu9", "gpu10"}));
  EXPECT_TRUE(test::StatusHas(ExpandSlurmHostList("node[1-3").status(),
                              absl::StatusCode::kInvalidArgument, "'[' without ']'"));
  EXPECT_TRUE(test::StatusHas(ExpandSlurmHostList("node[3-1]").status(),
                              absl::StatusCode::kInvalidArgument, "bad range '3-1'"));
}

TEST(DeployConfigTest, MapsSlurmRanksToMasterPsAndWorkers) {
  std::map<std::string, std::string> vars = {{"SLURM_PROCID", "3"},
                                             {"SLURM_NTASKS", "5"},
                                             {"SLURM_JOB_NODELIST", "n[1-5]"},
                                             {"SLUICE_SLURM_PS", "1"},
                                             {"SLUICE_PORT", "5000"}};
  auto c = ConfigFromEnvironment(Env(vars));
  ASSERT_TRUE(c.ok() && c->has_value()) << c.status();
  EXPECT_EQ((*c)->job, "worker");
  EXPECT_EQ((*c)->task, 1);  // Rank 0 master, rank 1 ps, ranks 2.. workers.
  EXPECT_EQ((*c)->cluster.at("master"), (std::vector<std::string>{"n1:5000"}));
  EXPECT_EQ((*c)->cluster.at("ps"), (std::vector<std::string>{"n2:5000"}));
  EXPECT_EQ((*c)->cluster.at("worker"),
            (std::vector<std::string>{"n3:5000", "n4:5000", "n5:5000"}));
  vars["SLURM_PROCID"] = "0";
  c = ConfigFromEnvironment(Env(vars));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->job, "master");
  vars["SLURM_NTASKS"] = "6";
  EXPECT_TRUE(test::StatusHas(ConfigFromEnvironment(Env(vars)).status(),
                              absl::StatusCode::kInvalidArgument,
                              "6 tasks on 5 nodes; Sluice runs one task per node"));
  vars["SLURM_NTASKS"] = "5";
  vars["SLUICE_PORT"] = "x";
  EXPECT_TRUE(test::StatusHas(ConfigFromEnvironment(Env(vars)).status(),
                              absl::StatusCode::kInvalidArgument,
                              "SLUICE_PORT must be a non-negative integer, got 'x'"));
}

}  // namespace
}  // namespace sluice
