#include "runtime/kernel/rendezvous.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;

constexpr char kA[] = "/job:localhost/task:0/device:cpu:0";
constexpr char kB[] = "/job:localhost/task:0/device:cpu:1";

TEST(RendezvousKeyTest, KeysAreUniquePerStepEdgeAndDirectionAndParseBack) {
  std::string k = Rendezvous::CreateKey(7, kA, kB, "x:0");
  EXPECT_EQ(k, "7;/job:localhost/task:0/device:cpu:0;/job:localhost/task:0/device:cpu:1;x:0;0");
  EXPECT_NE(k, Rendezvous::CreateKey(8, kA, kB, "x:0"));
  EXPECT_NE(k, Rendezvous::CreateKey(7, kB, kA, "x:0"));
  EXPECT_NE(k, Rendezvous::CreateKey(7, kA, kB, "x:1"));
  EXPECT_NE(k, Rendezvous::CreateKey(7, kA, kB, "x:0", 1));
  absl::StatusOr<Rendezvous::ParsedKey> p =
      Rendezvous::ParseKey(Rendezvous::CreateKey(9, kA, kB, "^y", 3));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->step_id, 9);
  EXPECT_EQ(p->src_device, kA);
  EXPECT_EQ(p->dst_device, kB);
  EXPECT_EQ(p->edge, "^y");
  EXPECT_EQ(p->micro_batch, 3);
  EXPECT_TRUE(StatusHas(Rendezvous::ParseKey("1;a;b").status(), absl::StatusCode::kInvalidArgument,
                        "malformed rendezvous key '1;a;b'"));
}

TEST(LocalRendezvousTest, SendBeforeRecvAndRecvBeforeSend) {
  LocalRendezvous r;
  Tensor v = Tensor::Scalar<int64_t>(42);
  ASSERT_TRUE(r.Send("k1", v).ok());
  EXPECT_EQ(r.num_pending_values(), 1);
  absl::StatusOr<Tensor> got = r.Recv("k1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->SharesBufferWith(v));  // No copy inside a process.
  EXPECT_EQ(r.num_pending_values(), 0);

  bool called = false;
  Tensor received;
  r.RecvAsync("k2", [&](absl::Status s, Tensor t) {
    EXPECT_TRUE(s.ok());
    received = t;
    called = true;
  });
  EXPECT_FALSE(called);  // Waits for the sender.
  ASSERT_TRUE(r.Send("k2", Tensor::Scalar<int64_t>(5)).ok());
  EXPECT_TRUE(called);  // The receiver ran on the sender's thread.
  EXPECT_EQ(received.scalar<int64_t>(), 5);
}

TEST(LocalRendezvousTest, DuplicateSendIsAnError) {
  LocalRendezvous r;
  ASSERT_TRUE(r.Send("k", Tensor::Scalar<int64_t>(1)).ok());
  EXPECT_TRUE(StatusHas(r.Send("k", Tensor::Scalar<int64_t>(2)), absl::StatusCode::kAlreadyExists,
                        "rendezvous key 'k' was sent twice"));
}

TEST(LocalRendezvousTest, AbortFailsWaitingReceiversAndEveryLaterTransfer) {
  LocalRendezvous r;
  constexpr int kWaiters = 16;
  std::atomic<int> failed{0};
  absl::Notification all_failed;
  // Receivers registered from several threads; once those threads are joined every receiver is
  // known to be waiting (RecvAsync registers before it returns).
  std::vector<std::thread> registrars;
  for (int t = 0; t < 4; ++t) {
    registrars.emplace_back([&, t] {
      for (int i = 0; i < kWaiters / 4; ++i) {
        r.RecvAsync(absl::StrCat("never:", t, ":", i), [&](absl::Status s, Tensor value) {
          EXPECT_FALSE(value.IsInitialized() && value.num_elements() > 0);
          if (s.code() == absl::StatusCode::kAborted && s.message() == "peer lost" &&
              failed.fetch_add(1) + 1 == kWaiters) {
            all_failed.Notify();
          }
        });
      }
    });
  }
  for (auto& t : registrars) t.join();
  EXPECT_EQ(failed.load(), 0);
  // A blocking receiver as well: it fails whether it registers before or after the abort.
  absl::Status blocked;
  std::thread blocker([&] { blocked = r.Recv("never:blocking").status(); });
  std::thread aborter([&] { r.StartAbort(absl::AbortedError("peer lost")); });
  aborter.join();
  blocker.join();
  all_failed.WaitForNotification();
  EXPECT_EQ(failed.load(), kWaiters);
  EXPECT_TRUE(StatusHas(blocked, absl::StatusCode::kAborted, "peer lost"));
  EXPECT_TRUE(
      StatusHas(r.Send("k", Tensor::Scalar<int64_t>(1)), absl::StatusCode::kAborted, "peer lost"));
  EXPECT_TRUE(StatusHas(r.Recv("k").status(), absl::StatusCode::kAborted, "peer lost"));
  r.StartAbort(absl::CancelledError("second abort is ignored"));
  EXPECT_TRUE(StatusHas(r.Recv("k2").status(), absl::StatusCode::kAborted, "peer lost"));
}

TEST(LocalRendezvousTest, ManyConcurrentPairsAllArrive) {
  LocalRendezvous r;
  constexpr int kPairs = 2000;
  std::atomic<int64_t> sum{0};
  std::atomic<int> received{0};
  absl::Notification done;
  std::thread receiver([&] {
    for (int i = 0; i < kPairs; ++i) {
      r.RecvAsync(Rendezvous::CreateKey(1, kA, kB, absl::StrCat("t", i, ":0")),
                  [&](absl::Status s, Tensor t) {
                    ASSERT_TRUE(s.ok());
                    sum.fetch_add(t.scalar<int64_t>());
                    if (received.fetch_add(1) + 1 == kPairs) done.Notify();
                  });
    }
  });
  std::thread sender([&] {
    for (int i = kPairs - 1; i >= 0; --i) {
      ASSERT_TRUE(r.Send(Rendezvous::CreateKey(1, kA, kB, absl::StrCat("t", i, ":0")),
                         Tensor::Scalar<int64_t>(i))
                      .ok());
    }
  });
  receiver.join();
  sender.join();
  done.WaitForNotification();
  EXPECT_EQ(sum.load(), int64_t{kPairs} * (kPairs - 1) / 2);
  EXPECT_EQ(r.num_pending_values(), 0);
}

TEST(LocalRendezvousTest, ASchedulerRunsTheCallbacksOfWaitingReceivers) {
  std::vector<std::pair<std::string, std::function<void()>>> scheduled;
  LocalRendezvous r([&](const std::string& key, std::function<void()> callback) {
    scheduled.emplace_back(key, std::move(callback));
  });
  Tensor got;
  r.RecvAsync("k", [&](absl::Status s, Tensor t) {
    EXPECT_TRUE(s.ok());
    got = t;
  });
  ASSERT_TRUE(r.Send("k", Tensor::Scalar<int64_t>(3)).ok());
  ASSERT_EQ(scheduled.size(), 1u);  // Handed to the scheduler, not run by Send.
  EXPECT_EQ(scheduled[0].first, "k");
  EXPECT_FALSE(got.IsInitialized() && got.num_elements() == 1 && got.dtype() == DType::kInt64);
  scheduled[0].second();
  EXPECT_EQ(got.scalar<int64_t>(), 3);
  // A value already there is received on the receiver's thread, without the scheduler.
  ASSERT_TRUE(r.Send("k2", Tensor::Scalar<int64_t>(4)).ok());
  EXPECT_EQ(r.Recv("k2")->scalar<int64_t>(), 4);
  EXPECT_EQ(scheduled.size(), 1u);
}

TEST(LocalRendezvousTest, DestroyingFailsPendingReceivers) {
  absl::Status status;
  {
    LocalRendezvous r;
    r.RecvAsync("k", [&](absl::Status s, Tensor) { status = s; });
  }
  EXPECT_TRUE(StatusHas(status, absl::StatusCode::kCancelled, "the rendezvous was destroyed"));
}

}  // namespace
}  // namespace sluice
