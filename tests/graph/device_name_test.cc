#include "graph/device_name.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

DeviceName P(absl::string_view text) {
  absl::StatusOr<DeviceName> d = DeviceName::Parse(text);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : DeviceName();
}

std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<DeviceName> d = DeviceName::Parse(text);
  EXPECT_FALSE(d.ok()) << text;
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(d.status().message());
}

TEST(DeviceNameTest, ParsesFullNamesIntoComponents) {
  DeviceName d = P("/job:worker/replica:0/task:12/device:CPU:3");
  EXPECT_EQ(*d.job, "worker");
  EXPECT_EQ(*d.replica, 0);
  EXPECT_EQ(*d.task, 12);
  EXPECT_EQ(*d.type, "cpu");
  EXPECT_EQ(*d.id, 3);
  EXPECT_TRUE(d.IsFullySpecified());
  EXPECT_EQ(d.ToString(), "/job:worker/replica:0/task:12/device:cpu:3");
}

TEST(DeviceNameTest, CanonicalFormOrdersComponentsAndLowersTheType) {
  EXPECT_EQ(P("/device:GPU:1/task:2/job:ps").ToString(), "/job:ps/task:2/device:gpu:1");
  EXPECT_EQ(P("/job:worker/CPU:0").ToString(), "/job:worker/device:cpu:0");
  EXPECT_EQ(P("/cpu:*").ToString(), "/device:cpu:*");
  EXPECT_EQ(P("").ToString(), "");
  EXPECT_TRUE(P("").empty());
  EXPECT_EQ(*CanonicalDeviceName("/task:1/job:a/device:Cpu:2"), "/job:a/task:1/device:cpu:2");
}

TEST(DeviceNameTest, PartialNamesMatchSetsOfDevices) {
  DeviceName w0c0 = P("/job:worker/task:0/device:cpu:0");
  DeviceName w1c1 = P("/job:worker/task:1/device:cpu:1");
  DeviceName ps0 = P("/job:ps/task:0/device:cpu:0");
  EXPECT_TRUE(P("/job:worker").Matches(w0c0));
  EXPECT_TRUE(P("/job:worker").Matches(w1c1));
  EXPECT_FALSE(P("/job:worker").Matches(ps0));
  EXPECT_TRUE(P("/device:cpu:1").Matches(w1c1));
  EXPECT_FALSE(P("/device:cpu:1").Matches(w0c0));
  EXPECT_TRUE(P("/job:worker/task:1/device:cpu:*").Matches(w1c1));
  EXPECT_TRUE(P("").Matches(ps0));
  EXPECT_TRUE(P("/replica:0/job:ps").Matches(ps0));  // Replica 0 matches an unnamed replica.
  EXPECT_FALSE(P("/replica:1/job:ps").Matches(ps0));
  EXPECT_FALSE(P("/device:gpu:0").Matches(ps0));
  EXPECT_FALSE(P("/job:worker").IsFullySpecified());
}

TEST(DeviceNameTest, CompatibilityAndMerging) {
  DeviceName a = P("/job:worker");
  EXPECT_TRUE(a.IsCompatibleWith(P("/device:cpu:1")));
  EXPECT_FALSE(a.IsCompatibleWith(P("/job:ps")));
  ASSERT_TRUE(a.MergeFrom(P("/task:2/device:cpu:1")).ok());
  EXPECT_EQ(a.ToString(), "/job:worker/task:2/device:cpu:1");
  absl::Status s = a.MergeFrom(P("/task:3"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "conflicting task: 2 vs 3");
  EXPECT_EQ(a.ToString(), "/job:worker/task:2/device:cpu:1");  // Unchanged on failure.
  EXPECT_EQ(P("/job:a").MergeFrom(P("/job:b")).message(), "conflicting job: a vs b");
}

TEST(DeviceNameTest, ErrorsNameTheBadText) {
  EXPECT_EQ(ErrorOf("job:worker"), "invalid device name 'job:worker': must start with '/'");
  EXPECT_EQ(ErrorOf("/job:"), "invalid device name '/job:': bad job name ''");
  EXPECT_EQ(ErrorOf("/job:9lives"), "invalid device name '/job:9lives': bad job name '9lives'");
  EXPECT_EQ(ErrorOf("/job:a/task:x"), "invalid device name '/job:a/task:x': bad task index 'x'");
  EXPECT_EQ(ErrorOf("/task:-1"), "invalid device name '/task:-1': bad task index '-1'");
  EXPECT_EQ(ErrorOf("/job:a//task:1"), "invalid device name '/job:a//task:1': empty component");
  EXPECT_EQ(ErrorOf("/job:a/"), "invalid device name '/job:a/': empty component");
  EXPECT_EQ(ErrorOf("/job:a/job:b"), "invalid device name '/job:a/job:b': names the job twice");
  EXPECT_EQ(ErrorOf("/cpu:0/device:cpu:1"),
            "invalid device name '/cpu:0/device:cpu:1': names the device twice");
  EXPECT_EQ(ErrorOf("/device:cpu:one"),
            "invalid device name '/device:cpu:one': bad device id 'one'");
  EXPECT_EQ(ErrorOf("/device:cpu"),
            "invalid device name '/device:cpu': unknown component 'device:cpu' (expected "
            "job:NAME, replica:N, task:N, device:TYPE:ID or TYPE:ID)");
  EXPECT_EQ(ErrorOf("/machine:1:2:3"),
            "invalid device name '/machine:1:2:3': unknown component 'machine:1:2:3' (expected "
            "job:NAME, replica:N, task:N, device:TYPE:ID or TYPE:ID)");
}

}  // namespace
}  // namespace sluice
