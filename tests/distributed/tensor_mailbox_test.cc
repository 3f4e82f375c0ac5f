// TensorMailbox in process: put, receive, abort and credits; ended steps refuse late tensors,
// receives and aborts without growing the table, orphan entries and tombstones expire on an
// injected clock, and every tensor that leaves the mailbox returns its credit.
#include "distributed/tensor_mailbox.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Ramp;
using test::StatusHas;
using test::TensorEq;

// TTLs of 30 s (tombstones) and 60 s (orphans) on a clock the test moves.
TensorMailboxOptions FakeClockOptions(absl::Time* now) {
  TensorMailboxOptions options;
  options.ended_step_ttl = absl::Seconds(30);
  options.orphan_ttl = absl::Seconds(60);
  options.now = [now] { return *now; };
  return options;
}

TEST(TensorMailboxTest, PutRecvAbortAndCredits) {
  TensorMailbox box;
  std::vector<std::string> consumed;
  box.AddEdgeListener([&](const std::string& key) { consumed.push_back(key); });
  ASSERT_TRUE(box.Put(1, "a", Ramp(4)).ok());
  EXPECT_TRUE(StatusHas(box.Put(1, "a", Ramp(4)), absl::StatusCode::kAlreadyExists,
                        "tensor 'a' of step 1 was already delivered"));
  EXPECT_EQ(box.buffered_bytes(), 16);
  absl::StatusOr<Tensor> got = box.Recv(1, "a", absl::Seconds(5));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(TensorEq(*got, Ramp(4)));
  EXPECT_EQ(consumed, std::vector<std::string>{"a"});

  absl::Status waited;
  box.RecvAsync(2, "b", [&](absl::StatusOr<Tensor> t) { waited = t.status(); });
  ASSERT_TRUE(box.Put(2, "c", Ramp(1000)).ok());
  EXPECT_EQ(box.num_pending_receives(), 1);
  box.AbortStep(2, absl::UnavailableError("lost /job:worker/task:1"));
  EXPECT_TRUE(StatusHas(waited, absl::StatusCode::kUnavailable, "lost /job:worker/task:1"));
  EXPECT_EQ(box.num_pending_receives(), 0);
  EXPECT_EQ(box.buffered_bytes(), 0);  // The aborted step's tensors are freed.
  EXPECT_TRUE(StatusHas(box.Put(2, "d", Ramp(1)), absl::StatusCode::kUnavailable, "lost"));
  EXPECT_TRUE(StatusHas(box.Recv(3, "never", absl::Milliseconds(1)).status(),
                        absl::StatusCode::kDeadlineExceeded,
                        "waiting for tensor 'never' of step 3"));
}

// A sender that lost its data connection pushes its uncredited tensors again as copies: every
// key still reaches its receive exactly once, whichever of the first push and the copy
// arrived, and a dropped copy costs no credit (its tensor's own consumption returns it).
TEST(TensorMailboxTest, CopiesOfTensorsThatArrivedAreDropped) {
  TensorMailbox box;
  std::vector<std::string> credited;
  box.AddEdgeListener([&](const std::string& key) { credited.push_back(key); });
  box.StartStep(1);
  // Buffered when its copy comes: the copy is dropped, the first one is received.
  ASSERT_TRUE(box.Put(1, "buffered", Ramp(4)).ok());
  ASSERT_TRUE(box.Put(1, "buffered", Tensor::FromVector<float>({9}), /*resent=*/true).ok());
  EXPECT_EQ(box.num_buffered_tensors(), 1);
  absl::StatusOr<Tensor> got = box.Recv(1, "buffered", absl::Seconds(5));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(TensorEq(*got, Ramp(4)));
  // Taken by its receive when its copy comes: dropped, and no second tensor waits.
  ASSERT_TRUE(box.Put(1, "buffered", Tensor::FromVector<float>({9}), /*resent=*/true).ok());
  Tensor waited;
  box.RecvAsync(1, "taken", [&](absl::StatusOr<Tensor> t) { waited = *t; });
  ASSERT_TRUE(box.Put(1, "taken", Ramp(2)).ok());
  EXPECT_TRUE(TensorEq(waited, Ramp(2)));
  ASSERT_TRUE(box.Put(1, "taken", Tensor::FromVector<float>({9}), /*resent=*/true).ok());
  EXPECT_EQ(box.num_buffered_tensors(), 0);
  // The first push lost: the copy is delivered, and a first push arriving after it is dropped.
  ASSERT_TRUE(box.Put(1, "lost", Ramp(3), /*resent=*/true).ok());
  ASSERT_TRUE(box.Put(1, "lost", Tensor::FromVector<float>({9})).ok());
  got = box.Recv(1, "lost", absl::Seconds(5));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(TensorEq(*got, Ramp(3)));
  ASSERT_TRUE(box.Put(1, "lost", Tensor::FromVector<float>({9})).ok());
  EXPECT_EQ(box.num_buffered_tensors(), 0);
  EXPECT_EQ(box.num_duplicates(), 5);
  EXPECT_EQ(credited, (std::vector<std::string>{"buffered", "taken", "lost"}));
  // A first push twice (no copy involved) is still the protocol error it was.
  ASSERT_TRUE(box.Put(1, "twice", Ramp(1)).ok());
  EXPECT_TRUE(StatusHas(box.Put(1, "twice", Ramp(1)), absl::StatusCode::kAlreadyExists,
                        "tensor 'twice' of step 1 was already delivered"));
  box.CleanupStep(1);
}

// Tensors for steps not running here (early ones, or a flood for steps that never run) are
// capped: the one that would pass the cap aborts its step (freeing what the step held, and
// crediting the sender back), the step reports the named error when it starts, and steps that
// run here are not counted.
TEST(TensorMailboxTest, TensorsForStepsNotRunningHereAreCapped) {
  TensorMailboxOptions options;
  options.max_early_bytes = 100;
  TensorMailbox box(options);
  std::vector<std::string> credited;
  box.AddEdgeListener([&](const std::string& key) { credited.push_back(key); });
  ASSERT_TRUE(box.Put(5, "a", Ramp(16)).ok());  // 64 bytes.
  ASSERT_TRUE(box.Put(6, "b", Ramp(4)).ok());   // 16 bytes: 80 held.
  EXPECT_EQ(box.early_bytes(), 80);
  const std::string error =
      "this worker holds 80 bytes of tensors for steps not running here; tensor 'c' of step 6 "
      "(64 bytes) would pass the limit of 100 (--max_early_bytes)";
  EXPECT_TRUE(StatusHas(box.Put(6, "c", Ramp(16)), absl::StatusCode::kResourceExhausted, error));
  EXPECT_EQ(box.early_bytes(), 64);  // Step 6's "b" was freed with it.
  EXPECT_EQ(credited, (std::vector<std::string>{"b", "c"}));
  box.StartStep(6);
  EXPECT_TRUE(StatusHas(box.Recv(6, "b", absl::Seconds(5)).status(),
                        absl::StatusCode::kResourceExhausted, error));
  box.CleanupStep(6);
  // A running step's tensors are not early: step 5's 64 bytes no longer count once it starts.
  box.StartStep(5);
  EXPECT_EQ(box.early_bytes(), 0);
  ASSERT_TRUE(box.Put(5, "big", Ramp(100)).ok());  // 400 bytes, for a running step.
  ASSERT_TRUE(box.Put(7, "d", Ramp(25)).ok());     // 100 bytes, early: at the limit, not over.
  EXPECT_EQ(box.early_bytes(), 100);
  ASSERT_TRUE(box.Recv(5, "a", absl::Seconds(5)).ok());
  box.CleanupStep(5);
  box.AbortStep(7, absl::AbortedError("gone"));
  EXPECT_EQ(box.early_bytes(), 0);
  EXPECT_EQ(box.buffered_bytes(), 0);
}

TEST(TensorMailboxTest, LateArrivalsForAnEndedStepDoNotGrowTheTable) {
  TensorMailbox box;
  std::vector<std::string> credited;
  box.AddEdgeListener([&](const std::string& key) { credited.push_back(key); });
  box.StartStep(1);
  ASSERT_TRUE(box.Put(1, "a", Ramp(4)).ok());
  ASSERT_TRUE(box.Recv(1, "a", absl::Seconds(5)).ok());
  box.CleanupStep(1);
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.num_ended_steps(), 1);

  EXPECT_TRUE(StatusHas(box.Put(1, "late", Ramp(1000)), absl::StatusCode::kFailedPrecondition,
                        "step 1 has ended here: tensor 'late' came too late"));
  box.AbortStep(1, absl::UnavailableError("lost /job:worker/task:1"));
  absl::Status received;
  box.RecvAsync(1, "b", [&](absl::StatusOr<Tensor> t) { received = t.status(); });
  EXPECT_TRUE(StatusHas(received, absl::StatusCode::kFailedPrecondition,
                        "step 1 has ended here: tensor 'b' came too late"));
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.num_buffered_tensors(), 0);
  EXPECT_EQ(box.num_pending_receives(), 0);
  EXPECT_EQ(box.num_dropped(), 3);
  // The dropped tensor freed its receive buffer at once: its sender gets the credit back.
  EXPECT_EQ(credited, (std::vector<std::string>{"a", "late"}));

  // Many ended steps, each followed by a late tensor and a late abort: nothing accumulates.
  for (int64_t step = 100; step < 200; ++step) {
    box.StartStep(step);
    box.CleanupStep(step);
    EXPECT_FALSE(box.Put(step, "late", Ramp(10)).ok());
    box.AbortStep(step, absl::AbortedError("late abort"));
  }
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.buffered_bytes(), 0);
  EXPECT_EQ(box.num_dropped(), 3 + 200);
}

TEST(TensorMailboxTest, CleanupFailsWaitingReceivesAndFreesTensors) {
  TensorMailbox box;
  std::vector<std::string> credited;
  box.AddEdgeListener([&](const std::string& key) { credited.push_back(key); });
  box.StartStep(2);
  absl::Status received;
  box.RecvAsync(2, "never", [&](absl::StatusOr<Tensor> t) { received = t.status(); });
  ASSERT_TRUE(box.Put(2, "unread", Ramp(3)).ok());
  box.CleanupStep(2);
  EXPECT_TRUE(StatusHas(received, absl::StatusCode::kFailedPrecondition, "step 2 has ended here"));
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.buffered_bytes(), 0);
  EXPECT_EQ(credited, std::vector<std::string>{"unread"});

  // Two partitions of one step: the step ends with the second CleanupStep.
  box.StartStep(3);
  box.StartStep(3);
  ASSERT_TRUE(box.Put(3, "x", Ramp(3)).ok());
  box.CleanupStep(3);
  EXPECT_EQ(box.num_buffered_tensors(), 1);
  box.CleanupStep(3);
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.num_ended_steps(), 2);
}

TEST(TensorMailboxTest, AbortBeforeStartFailsTheStepAndRestartForgetsTheTombstone) {
  TensorMailbox box;
  box.AbortStep(4, absl::UnavailableError("lost /job:worker/task:1"));
  box.StartStep(4);
  absl::Status received;
  box.RecvAsync(4, "x", [&](absl::StatusOr<Tensor> t) { received = t.status(); });
  EXPECT_TRUE(StatusHas(received, absl::StatusCode::kUnavailable, "lost /job:worker/task:1"));
  box.CleanupStep(4);

  box.StartStep(4);  // The same step runs here again.
  EXPECT_EQ(box.num_ended_steps(), 0);
  ASSERT_TRUE(box.Put(4, "x", Ramp(2)).ok());
  absl::StatusOr<Tensor> got = box.Recv(4, "x", absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(TensorEq(*got, Ramp(2)));
}

TEST(TensorMailboxTest, OrphanEntriesAreReclaimedAfterTheirTtl) {
  absl::Time now = absl::FromUnixSeconds(1000000);
  TensorMailbox box(FakeClockOptions(&now));
  std::vector<std::string> credited;
  box.AddEdgeListener([&](const std::string& key) { credited.push_back(key); });
  ASSERT_TRUE(box.Put(5, "early", Ramp(4)).ok());          // For a step that never starts here.
  box.AbortStep(6, absl::AbortedError("step 6 aborted"));  // Nor does this one.
  box.StartStep(7);                                        // Running: never an orphan.
  absl::Status received;
  box.RecvAsync(8, "wanted", [&](absl::StatusOr<Tensor> t) { received = t.status(); });
  EXPECT_EQ(box.num_steps(), 4);

  now += absl::Seconds(30);  // Half the orphan TTL: nothing goes.
  ASSERT_TRUE(box.Put(9, "later", Ramp(2)).ok());
  EXPECT_EQ(box.num_steps(), 5);
  EXPECT_EQ(box.num_reclaimed(), 0);

  now += absl::Seconds(90);  // 2 TTLs after the first entries, 1.5 after step 9's.
  ASSERT_TRUE(box.Put(10, "fresh", Ramp(1)).ok());  // Any later call reclaims.
  EXPECT_EQ(box.num_steps(), 3);                    // 7 (running), 8 (a receive waits), 10 (fresh).
  EXPECT_EQ(box.num_reclaimed(), 3);
  EXPECT_EQ(box.num_buffered_tensors(), 1);
  EXPECT_EQ(box.num_pending_receives(), 1);
  EXPECT_TRUE(received.ok());  // Still waiting.
  EXPECT_EQ(credited, (std::vector<std::string>{"early", "later"}));
  // A reclaimed abort is forgotten: the step's tensors are accepted again.
  EXPECT_TRUE(box.Put(6, "x", Ramp(1)).ok());
}

TEST(TensorMailboxTest, TombstonesExpire) {
  absl::Time now = absl::FromUnixSeconds(1000000);
  TensorMailbox box(FakeClockOptions(&now));
  for (int64_t step = 1; step <= 50; ++step) {
    box.StartStep(step);
    box.CleanupStep(step);
  }
  EXPECT_EQ(box.num_ended_steps(), 50);
  EXPECT_FALSE(box.Put(1, "late", Ramp(1)).ok());

  now += absl::Seconds(60);  // 2 tombstone TTLs.
  box.StartStep(51);         // Any later call forgets expired tombstones.
  EXPECT_EQ(box.num_ended_steps(), 0);
  // Later than the tombstone: an orphan entry, reclaimed in its turn.
  EXPECT_TRUE(box.Put(1, "very late", Ramp(1)).ok());
  EXPECT_EQ(box.num_steps(), 2);
  now += absl::Seconds(120);
  box.CleanupStep(51);
  EXPECT_EQ(box.num_steps(), 0);
  EXPECT_EQ(box.num_ended_steps(), 1);
}

}  // namespace
}  // namespace sluice
