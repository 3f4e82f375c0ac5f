// LocalCluster's reports of servers that fail to start: the last whole lines of a failed
// server's stderr are quoted, and a binary that cannot run is named.
#include "distributed/local_cluster.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/distributed/cluster_fixture.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::ServerBinary;
using test::StartOneWorker;
using test::StatusHas;

// A server that writes more than the launcher keeps before it fails: the error quotes whole
// lines from the end of its stderr.
TEST(LocalClusterTest, AFailedServersLastWholeLinesAreQuoted) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string script = absl::StrCat(tmp, "/noisy_server.sh");
  {
    std::ofstream f(script);
    f << "#!/bin/sh\ni=1\nwhile [ $i -le 300 ]; do echo \"log line $i of a failing server\" >&2; "
         "i=$((i+1)); done\nexit 3\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  const absl::Status s = StartOneWorker({}, script);
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kUnavailable,
                        "(exit status 3); its stderr ended with:\nlog line "));
  EXPECT_TRUE(absl::EndsWith(s.message(), "\nlog line 300 of a failing server")) << s;
  EXPECT_FALSE(absl::StrContains(s.message(), "log line 1 of")) << s;
  // 2 KiB kept: 60-odd of these 33-byte lines, each whole.
  const std::string quoted(s.message().substr(s.message().find("ended with:\n") + 12));
  for (absl::string_view line : absl::StrSplit(quoted, '\n')) {
    EXPECT_TRUE(absl::StartsWith(line, "log line ") && absl::EndsWith(line, " of a failing server"))
        << "a cut line: '" << line << "'";
  }
}

TEST(LocalClusterTest, AServerBinaryThatCannotRunIsNamed) {
  const std::string missing = ServerBinary() + ".missing";
  EXPECT_TRUE(StatusHas(StartOneWorker({}, missing), absl::StatusCode::kUnavailable,
                        absl::StrCat("the server exited before it was ready (exit status 127: "
                                     "cannot run ",
                                     missing, ")")));
}

}  // namespace
}  // namespace sluice
