#include "graph/cluster_spec.h"

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace sluice {
namespace {

std::string ErrorOf(absl::StatusOr<ClusterSpec> spec) {
  EXPECT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  return std::string(spec.status().message());
}

TEST(ClusterSpecTest, ReadsJsonAndTextFormsAlike) {
  absl::StatusOr<ClusterSpec> json = ClusterSpec::Parse(R"(
    {
      "worker": ["localhost:2222", "localhost:2223"],
      "ps": ["10.0.0.7:2224"]
    })");
  ASSERT_TRUE(json.ok()) << json.status();
  absl::StatusOr<ClusterSpec> text =
      ClusterSpec::Parse(" worker = localhost:2222, localhost:2223 ; ps=10.0.0.7:2224;");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(json->jobs(), text->jobs());
  EXPECT_EQ(json->JobNames(), (std::vector<std::string>{"ps", "worker"}));
  EXPECT_EQ(json->NumTasks("worker"), 2);
  EXPECT_EQ(json->NumTasks("chief"), 0);
  EXPECT_EQ(*json->TaskAddress("worker", 1), "localhost:2223");
  EXPECT_EQ(json->TaskNames(), (std::vector<std::string>{"/job:ps/task:0", "/job:worker/task:0",
                                                         "/job:worker/task:1"}));
  EXPECT_EQ(json->ToText(), "ps=10.0.0.7:2224;worker=localhost:2222,localhost:2223");
  EXPECT_EQ(json->ToJson(),
            R"({"ps": ["10.0.0.7:2224"], "worker": ["localhost:2222", "localhost:2223"]})");
  // Both renderings read back to the same spec.
  EXPECT_EQ(ClusterSpec::Parse(json->ToJson())->jobs(), json->jobs());
  EXPECT_EQ(ClusterSpec::Parse(json->ToText())->jobs(), json->jobs());
  EXPECT_EQ(ClusterSpec::Parse("w=[::1]:80")->NumTasks("w"), 1);
}

TEST(ClusterSpecTest, LookupErrorsNameJobAndTask) {
  ClusterSpec spec = *ClusterSpec::Parse("worker=a:1,b:2");
  EXPECT_EQ(spec.TaskAddress("ps", 0).status().message(),
            "cluster spec has no job 'ps' (jobs: worker)");
  EXPECT_EQ(spec.TaskAddress("worker", 2).status().message(),
            "job 'worker' has 2 tasks; there is no task 2");
}

TEST(ClusterSpecTest, ValidationErrorsQuoteTheProblem) {
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("")), "cluster spec has no jobs");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{}")), "cluster spec has no jobs");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=a:1;ps=")), "job 'ps' has no tasks");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse(R"({"ps": []})")), "job 'ps' has no tasks");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=a:1,b:1,a:1")),
            "address 'a:1' is used by both /job:worker/task:0 and /job:worker/task:2");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=h:1;ps=h:1")),
            "address 'h:1' is used by both /job:ps/task:0 and /job:worker/task:0");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=host:0")),
            "/job:worker/task:0: invalid address 'host:0': port '0' is not in 1..65535");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=host:65536")),
            "/job:worker/task:0: invalid address 'host:65536': port '65536' is not in 1..65535");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=host:http")),
            "/job:worker/task:0: invalid address 'host:http': port 'http' is not in 1..65535");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=a:1,host")),
            "/job:worker/task:1: invalid address 'host': expected host:port");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=:80")),
            "/job:worker/task:0: invalid address ':80': empty host");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=ho st:80")),
            "/job:worker/task:0: invalid address 'ho st:80': bad character ' ' in host");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker=a:1;worker=b:2")),
            "cluster spec: job 'worker' appears twice");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("worker")),
            "cluster spec: expected job=host:port,... but got 'worker'");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("9w=a:1")),
            "invalid job name '9w' (letters, digits, '_' and '-', starting with a letter)");
}

TEST(ClusterSpecTest, JsonErrorsGiveLineAndColumn) {
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{\"worker\": [\"a:1\" \"b:2\"]}")),
            "cluster spec JSON: expected ',' or ']' at line 1, column 19");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{\n  \"worker\": \"a:1\"\n}")),
            "cluster spec JSON: expected '[' (the tasks of job 'worker') at line 2, column 13");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{\"w\": [\"a:1\"], \"w\": [\"b:1\"]}")),
            "cluster spec JSON: job 'w' appears twice at line 1, column 16");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{\"w\": [\"a:1\"]} extra")),
            "cluster spec JSON: unexpected text after the closing '}' at line 1, column 16");
  EXPECT_EQ(ErrorOf(ClusterSpec::Parse("{\"w\": [\"a:1")),
            "cluster spec JSON: unterminated string at line 1, column 12");
}

TEST(ClusterSpecTest, ReadsFilesAndNamesThePathInErrors) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : ".") + "/cluster.json";
  {
    std::ofstream out(path);
    out << "{\"worker\": [\"localhost:5000\"], \"ps\": [\"localhost:5001\"]}\n";
  }
  absl::StatusOr<ClusterSpec> spec = ClusterSpec::FromFile(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(*spec->TaskAddress("ps", 0), "localhost:5001");
  {
    std::ofstream out(path);
    out << "worker=localhost:99999\n";
  }
  EXPECT_EQ(ClusterSpec::FromFile(path).status().message(),
            "cluster spec file '" + path +
                "': /job:worker/task:0: invalid address 'localhost:99999': port '99999' is not in "
                "1..65535");
  absl::Status missing = ClusterSpec::FromFile(path + ".nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "cannot read cluster spec file '" + path + ".nope'");
}

}  // namespace
}  // namespace sluice
