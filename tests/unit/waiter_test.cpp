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
  // The consumer never spins, so it sleeps on the futex before almost every item. The producer
  // publishes one item, rings once, and waits for the consumer to acknowledge it before the next: no
  // later ring can rescue a lost wake-up. The consumer sleeps up to 60 s, the producer waits 5 s for
  // the acknowledgement (a woken thread answers in microseconds, a loaded machine in milliseconds): an
  // item not acknowledged by then sits published next to a sleeping consumer, a lost wake-up. It is
  // counted, and the producer rings again so that the test goes on.
  Bell b;
  std::atomic<std::uint64_t> published{0}, acknowledged{0};
  constexpr std::uint64_t kItems = 20'000;
  constexpr std::uint64_t kSleepNs = 60'000'000'000u;
  constexpr std::uint64_t kAckNs = 5'000'000'000u;
  std::thread consumer([&] {
    cd::RunnableToken no_spin;
    for (std::uint64_t seen = 0; seen < kItems;) {
      // wait_for may return early without the item (a wake-up meant for an item already seen): wait again.
      if (!cd::wait_for(b.doorbell(), no_spin, [&] { return published.load(std::memory_order_acquire) > seen; }, kSleepNs)) continue;
      seen = published.load(std::memory_order_acquire);
      acknowledged.store(seen, std::memory_order_release);
    }
  });
  std::uint64_t lost = 0, first_lost = 0;
  for (std::uint64_t i = 1; i <= kItems; ++i) {
    // Every other item goes to a consumer that is (about to be) asleep: the path a lost wake-up takes.
    if (i % 2 == 0)
      for (const std::uint64_t until = cd::now_ns() + 1'000'000; b.sleepers.load() == 0 && cd::now_ns() < until;) std::this_thread::yield();
    published.store(i, std::memory_order_release);
    b.doorbell().ring();
    const std::uint64_t deadline = cd::now_ns() + kAckNs;
    while (acknowledged.load(std::memory_order_acquire) < i && cd::now_ns() < deadline) std::this_thread::yield();
    if (acknowledged.load(std::memory_order_acquire) < i) {
      if (!lost++) first_lost = i;
      while (acknowledged.load(std::memory_order_acquire) < i) {  // rescue it, to finish the test
        b.doorbell().ring();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
  consumer.join();
  EXPECT_EQ(lost, 0u) << "the first lost wake-up was item " << first_lost << " of " << kItems;
}

}  // namespace
