// The doorbell and wait_for (detail/shm/waiter.hpp): a sleeper is woken once per sleep, and no wake-up
// is lost, between two threads of one process (the same code runs between processes).
#include "test_util.hpp"

#include <cadre/detail/shm/waiter.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

namespace cd = cadre::detail;

struct Bell {
  std::atomic<std::uint32_t> word{0}, sleepers{0}, pending{0};
  std::atomic<std::uint64_t> rung_ns{0};
  cd::Doorbell doorbell() { return {&word, &sleepers, &pending, &rung_ns}; }
};

TEST(doorbell, ringing_with_nobody_asleep_does_nothing) {
  Bell b;
  EXPECT_FALSE(b.doorbell().ring());
  EXPECT_EQ(b.word.load(), 0u);
  EXPECT_EQ(b.pending.load(), 0u);
}

TEST(doorbell, a_sleeper_is_rung_once_until_it_sleeps_again) {
  Bell b;
  b.sleepers = 1;  // as wait_for leaves it while asleep
  EXPECT_TRUE(b.doorbell().ring());
  EXPECT_TRUE(b.doorbell().ring());
  EXPECT_TRUE(b.doorbell().ring());
  EXPECT_EQ(b.word.load(), 1u) << "one futex word bump (and one wake system call) for the three rings";
  EXPECT_EQ(b.pending.load(), 1u);
}

TEST(doorbell, a_wake_up_records_when_it_was_sent_for_the_sleepers_spin_budget) {
  Bell b;
  b.doorbell().ring();
  EXPECT_EQ(b.rung_ns.load(), 0u) << "nobody asleep: no wake-up, no time";
  b.sleepers = 1;
  const std::uint64_t before = cd::now_ns();
  b.doorbell().ring();
  const std::uint64_t at = b.rung_ns.load();
  EXPECT_GE(at, before);
  EXPECT_LE(at, cd::now_ns());
  b.doorbell().ring();  // already rung: no second wake-up, the time stays
  EXPECT_EQ(b.rung_ns.load(), at);
}

TEST(doorbell, going_to_sleep_again_rearms_the_bell) {
  Bell b;
  cd::RunnableToken no_spin;  // no segment: never spins, always goes to sleep
  b.sleepers = 1;
  b.doorbell().ring();
  b.sleepers = 0;  // the sleeper woke up
  // It waits again, finds nothing and sleeps 1 ms: that clears the pending flag.
  EXPECT_FALSE(cd::wait_for(b.doorbell(), no_spin, [] { return false; }, 1'000'000));
  EXPECT_EQ(b.pending.load(), 0u);
  b.sleepers = 1;
  b.doorbell().ring();
  EXPECT_EQ(b.word.load(), 2u);
}

TEST(doorbell, no_wake_up_is_lost_between_a_producer_and_a_sleeping_consumer) {
  // The consumer never spins, so it sleeps on the futex between almost every item; the producer
  // publishes one item at a time and rings. A lost wake-up would leave the consumer asleep for the
  // whole 5 s timeout with an item published.
  Bell b;
  std::atomic<std::uint64_t> published{0};
  constexpr std::uint64_t kItems = 20'000;
  constexpr std::uint64_t kTimeoutNs = 5'000'000'000u;
  std::uint64_t lost = 0;
  std::thread consumer([&] {
    cd::RunnableToken no_spin;
    for (std::uint64_t seen = 0; seen < kItems;) {
      // wait_for may return early without the item (a wake-up meant for an item already seen); only
      // sleeping out the whole timeout with the item published is a lost wake-up.
      const std::uint64_t start = cd::now_ns();
      const bool ready = cd::wait_for(b.doorbell(), no_spin, [&] { return published.load(std::memory_order_acquire) > seen; },
                                      kTimeoutNs);
      if (!ready && cd::now_ns() - start >= kTimeoutNs) ++lost;
      seen = published.load(std::memory_order_acquire);
    }
  });
  for (std::uint64_t i = 1; i <= kItems; ++i) {
    // Every other item goes to a consumer that is (about to be) asleep: the path a lost wake-up takes.
    if (i % 2 == 0)
      for (const std::uint64_t until = cd::now_ns() + 1'000'000; b.sleepers.load() == 0 && cd::now_ns() < until;) std::this_thread::yield();
    published.store(i, std::memory_order_release);
    b.doorbell().ring();
  }
  consumer.join();
  EXPECT_EQ(lost, 0u);
}

}  // namespace
