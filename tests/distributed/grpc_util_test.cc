#include "distributed/grpc_util.h"

#include <cstdlib>
#include <string>

#include "grpc/grpc.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

// Runs first in its own process (the binary holds only these tests), before gRPC initialises.
TEST(GrpcUtilTest, SelectsThePollEngineBeforeGrpcStarts) {
  if (std::getenv("GRPC_POLL_STRATEGY") != nullptr) GTEST_SKIP() << "the environment chose one";
  ASSERT_FALSE(grpc_is_initialized());
  SelectGrpcPollingEngine();
  ASSERT_NE(std::getenv("GRPC_POLL_STRATEGY"), nullptr);
  EXPECT_EQ(std::string(std::getenv("GRPC_POLL_STRATEGY")), "poll");
  // A channel starts gRPC on that engine; a second call changes nothing.
  auto channel = MakeChannel("127.0.0.1:1");
  EXPECT_TRUE(grpc_is_initialized());
  SelectGrpcPollingEngine();
  EXPECT_EQ(std::string(std::getenv("GRPC_POLL_STRATEGY")), "poll");
}

TEST(GrpcUtilTest, GlibcAcceptsTheHeapSettings) {
  // The settings that failed silently before (a threshold over glibc's 32 MiB cap) fail here.
  EXPECT_TRUE(KeepFreedHeapMemoryForReuse().ok());
}

TEST(GrpcUtilTest, StatusCodesRoundTrip) {
  absl::Status s = absl::UnavailableError("peer /job:worker/task:1 lost");
  absl::Status back = FromGrpc(ToGrpc(s));
  EXPECT_EQ(back.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(back.message(), "peer /job:worker/task:1 lost");
  EXPECT_TRUE(FromGrpc(ToGrpc(absl::OkStatus())).ok());
}

// A status message travels in a gRPC trailer, whose size the peer caps (8 KiB by default): a
// longer one would reach the caller as "metadata size exceeds limit" instead of the error.
TEST(GrpcUtilTest, LongMessagesAreCutToFitATrailer) {
  grpc::Status s = ToGrpc(absl::InvalidArgumentError(std::string(100000, 'm')));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), std::string(4032, 'm') + "... (100000 bytes, cut)");
}

}  // namespace
}  // namespace sluice
