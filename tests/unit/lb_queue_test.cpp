// tests/lb_queue_test.cpp — the load-balanced queue's protocol on its own, in ordinary memory: claims by
// racing consumer threads, a full queue, cancel against start, the drain, target sets and eligibility.
#include <cadre/detail/shm/lb_queue.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

namespace cd = cadre::detail;
using cd::kLbSlots;

constexpr std::uint32_t kClientGen = 7;

struct FreeQueues {
  void operator()(cd::LbQueue* q) const noexcept { std::free(q); }
};
using Queues = std::unique_ptr<cd::LbQueue[], FreeQueues>;

/// n queues as the segment holds them: zeroed memory (tmpfs pages), then what Segment::init stores.
Queues make_queues(std::size_t n = 1) {
  void* p = std::aligned_alloc(alignof(cd::LbQueue), n * sizeof(cd::LbQueue));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, n * sizeof(cd::LbQueue));
  auto* qs = static_cast<cd::LbQueue*>(p);
  for (std::size_t i = 0; i < n; ++i) cd::init_lb_queue(qs + i);
  return Queues(qs);
}

/// Publishes task `id` (its payload: the id again) at the producer's position `head`, as
/// ShmTransport::try_send_balanced does. False when the queue is full.
bool put(cd::LbQueue& q, std::uint64_t& head, std::uint64_t id) {
  if (!cd::lb_try_reserve(q, head)) return false;
  std::byte payload[sizeof id];
  std::memcpy(payload, &id, sizeof id);
  cd::lb_publish(q, head, cd::LbTask{id, cd::RecordKind::apply, 0, 0, kClientGen, 0, sizeof id}, payload);
  ++head;
  return true;
}

constexpr auto kNoAnnouncement = [](std::uint64_t) noexcept {};

/// Claims the oldest queued task, as a consumer that announces nothing. Its position, or nullopt.
std::optional<std::uint64_t> claim(cd::LbQueue& q) {
  std::uint64_t pos;
  if (!cd::lb_try_claim(q, pos, kNoAnnouncement)) return std::nullopt;
  return pos;
}

/// What Engine::claim_balanced does with a queue: nothing unless the engine is eligible.
std::optional<std::uint64_t> engine_claim(cd::LbQueue& q, std::uint32_t engine) {
  if (!cd::lb_eligible(q, engine)) return std::nullopt;
  return claim(q);
}

std::uint64_t payload_of(const cd::LbQueue& q, std::uint64_t pos) {
  std::uint64_t v;
  std::memcpy(&v, cd::lb_slot(q, pos).record.data, sizeof v);
  return v;
}

TEST(lb_queue, a_new_queue_is_empty_and_has_no_target_set) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  EXPECT_FALSE(cd::lb_ready(q));
  EXPECT_FALSE(claim(q));
  EXPECT_EQ(cd::lb_mask(q), 0u);
  EXPECT_FALSE(cd::lb_eligible(q, 0));
  EXPECT_EQ(cd::lb_taken(q), 0u);
  EXPECT_NE(cd::lb_try_reserve(q, 0), nullptr);
}

TEST(lb_queue, a_published_record_carries_its_fields_and_payload) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  const std::byte bytes[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  ASSERT_NE(cd::lb_try_reserve(q, head), nullptr);
  cd::lb_publish(q, head, cd::LbTask{42, cd::RecordKind::push, 9, 1234, kClientGen, 0, 3}, bytes);
  EXPECT_EQ(q.head.load(), 1u);
  EXPECT_TRUE(cd::lb_ready(q));
  const auto pos = claim(q);
  ASSERT_EQ(pos, 0u);
  const cd::RingSlot& r = cd::lb_slot(q, *pos).record;
  EXPECT_EQ(r.task_id, 42u);
  EXPECT_EQ(r.kind, std::uint16_t(cd::RecordKind::push));
  EXPECT_EQ(r.aux, 9u);
  EXPECT_EQ(r.started_ns, 1234u);  // the start deadline
  EXPECT_EQ(r.engine_gen, 0u);
  EXPECT_EQ(r.client_gen, kClientGen);
  EXPECT_EQ(r.block, 0u);
  EXPECT_EQ(r.len, 3u);
  EXPECT_EQ(std::memcmp(r.data, bytes, 3), 0);
  EXPECT_EQ(cd::lb_taken(q), 1u);
}

TEST(lb_queue, tasks_are_claimed_in_the_order_they_were_published) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(put(q, head, 100 + i));
  for (std::uint64_t i = 0; i < 10; ++i) {
    const auto pos = claim(q);
    ASSERT_EQ(pos, i);
    EXPECT_EQ(payload_of(q, *pos), 100 + i);
    cd::lb_free(q, *pos);
  }
  EXPECT_FALSE(claim(q));
}

TEST(lb_queue, a_full_queue_refuses_until_a_claimed_task_is_freed) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  for (std::uint64_t i = 0; i < kLbSlots; ++i) ASSERT_TRUE(put(q, head, i));
  EXPECT_FALSE(put(q, head, kLbSlots));
  const auto pos = claim(q);
  ASSERT_EQ(pos, 0u);
  EXPECT_FALSE(put(q, head, kLbSlots)) << "a claimed slot is still the consumer's until it is freed";
  cd::lb_free(q, *pos);
  EXPECT_TRUE(put(q, head, kLbSlots));
  EXPECT_FALSE(put(q, head, kLbSlots + 1));
}

TEST(lb_queue, one_producer_and_two_consumer_threads_take_each_task_exactly_once) {
#if defined(__SANITIZE_THREAD__)
  constexpr std::uint64_t kTasks = 20'000;
#else
  constexpr std::uint64_t kTasks = 200'000;
#endif
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::vector<std::atomic<std::uint32_t>> taken(kTasks + 1);
  std::atomic<std::uint64_t> done{0};
  std::atomic<bool> bad_payload{false}, bad_announcement{false}, lost_start{false};

  auto consume = [&](std::uint64_t& sum, std::uint64_t& count) {
    std::uint64_t announced = ~0ull;
    while (done.load(std::memory_order_relaxed) < kTasks) {
      std::uint64_t pos;
      if (!cd::lb_try_claim(q, pos, [&](std::uint64_t p) noexcept { announced = p; })) {
        std::this_thread::yield();
        continue;
      }
      if (announced != pos) bad_announcement = true;
      cd::LbSlot& s = cd::lb_slot(q, pos);
      const std::uint64_t id = s.record.task_id;
      if (payload_of(q, pos) != id || id == 0 || id > kTasks) bad_payload = true;
      if (!cd::lb_try_start(s)) lost_start = true;
      if (id >= 1 && id <= kTasks) taken[id].fetch_add(1, std::memory_order_relaxed);
      sum += id;
      ++count;
      cd::lb_free(q, pos);
      done.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::uint64_t sum[2] = {}, count[2] = {};
  std::thread a([&] { consume(sum[0], count[0]); });
  std::thread b([&] { consume(sum[1], count[1]); });
  std::uint64_t head = 0;
  for (std::uint64_t id = 1; id <= kTasks; ++id)
    while (!put(q, head, id)) std::this_thread::yield();
  a.join();
  b.join();

  EXPECT_FALSE(bad_payload) << "a consumer read a record before it was complete";
  EXPECT_FALSE(bad_announcement) << "the announcement did not name the claimed position";
  EXPECT_FALSE(lost_start) << "nobody cancels here: every claimed task must start";
  EXPECT_EQ(count[0] + count[1], kTasks);
  EXPECT_EQ(sum[0] + sum[1], kTasks * (kTasks + 1) / 2);
  std::uint64_t wrong = 0;
  for (std::uint64_t id = 1; id <= kTasks; ++id) wrong += taken[id].load() != 1;
  EXPECT_EQ(wrong, 0u) << "tasks taken zero or several times";
  EXPECT_EQ(cd::lb_taken(q), kTasks);
  EXPECT_FALSE(cd::lb_ready(q));
}

TEST(lb_queue, a_cancel_of_a_queued_task_wins_over_a_later_start) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  EXPECT_TRUE(cd::lb_try_cancel(q, 0));
  EXPECT_FALSE(cd::lb_try_cancel(q, 0)) << "already cancelled";
  const auto pos = claim(q);  // an engine still claims the slot, to free it...
  ASSERT_EQ(pos, 0u);
  EXPECT_FALSE(cd::lb_try_start(cd::lb_slot(q, *pos)));  // ...but does not run the task
  cd::lb_free(q, *pos);
  EXPECT_TRUE(put(q, head, 2));
}

TEST(lb_queue, a_start_wins_over_a_later_cancel) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  const auto pos = claim(q);
  ASSERT_EQ(pos, 0u);
  EXPECT_TRUE(cd::lb_try_cancel(q, *pos)) << "claimed but not started: the client still wins";
  ASSERT_TRUE(put(q, head, 2));
  const auto second = claim(q);
  ASSERT_EQ(second, 1u);
  EXPECT_TRUE(cd::lb_try_start(cd::lb_slot(q, *second)));
  EXPECT_FALSE(cd::lb_try_cancel(q, *second)) << "running";
  cd::lb_free(q, *second);
  EXPECT_FALSE(cd::lb_try_cancel(q, *second)) << "done: the slot is no longer this task's";
}

TEST(lb_queue, the_drain_takes_what_is_queued_and_stops_at_the_empty_slot) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  q.mask.store(1);
  std::uint64_t head = 0;
  for (std::uint64_t id = 1; id <= 5; ++id) ASSERT_TRUE(put(q, head, id));
  const auto held = claim(q);  // an engine is running task 1
  ASSERT_EQ(held, 0u);
  std::vector<std::uint64_t> dropped;
  cd::lb_drain(q, [&](const cd::RingSlot& r) noexcept { dropped.push_back(r.task_id); });
  EXPECT_EQ(dropped, (std::vector<std::uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(cd::lb_mask(q), 0u) << "engines stop looking at a drained queue";
  EXPECT_EQ(q.head.load(), 5u);
  EXPECT_EQ(cd::lb_taken(q), 5u);
  EXPECT_FALSE(cd::lb_ready(q));
  // The next client starts where the queue stands; the running task's slot is still its engine's.
  std::uint64_t next = cd::lb_attach(q);
  EXPECT_EQ(next, 5u);
  while (next < kLbSlots) ASSERT_TRUE(put(q, next, next));
  EXPECT_FALSE(put(q, next, next)) << "position kLbSlots needs the slot of the running task";
  cd::lb_free(q, *held);
  EXPECT_TRUE(put(q, next, next));
  for (std::uint64_t drained = 1; drained <= 4; ++drained) EXPECT_TRUE(put(q, next, next)) << "the drained slots are free";
}

TEST(lb_queue, the_drain_of_an_empty_queue_drops_nothing) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  int dropped = 0;
  cd::lb_drain(q, [&](const cd::RingSlot&) noexcept { ++dropped; });
  EXPECT_EQ(dropped, 0);
  EXPECT_EQ(q.head.load(), 0u);
  EXPECT_EQ(cd::lb_taken(q), 0u);
}

TEST(lb_queue, the_drain_counts_a_record_whose_producer_died_before_advancing_head) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  ASSERT_TRUE(put(q, head, 2));
  q.head.store(1);  // the producer died between the seq store of task 2 and its head store
  int dropped = 0;
  cd::lb_drain(q, [&](const cd::RingSlot&) noexcept { ++dropped; });
  EXPECT_EQ(dropped, 2);
  EXPECT_EQ(q.head.load(), 2u);
  EXPECT_EQ(cd::lb_attach(q), 2u);
}

TEST(lb_queue, a_record_for_an_ineligible_engine_is_not_taken) {
  constexpr std::uint32_t kEngines = 3;
  auto qs = make_queues(cd::kLbQueues);
  std::span<cd::LbQueue, cd::kLbQueues> queues(qs.get(), cd::kLbQueues);
  const std::uint32_t only_0 = cd::lb_queue_for(queues, cd::lb_target_mask(0b001, kEngines));
  ASSERT_LT(only_0, cd::kLbQueues);
  cd::LbQueue& q = queues[only_0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  EXPECT_FALSE(engine_claim(q, 1));
  EXPECT_FALSE(engine_claim(q, 2));
  EXPECT_FALSE(engine_claim(q, 64)) << "an engine beyond bit 63 serves only queues of every engine";
  EXPECT_TRUE(cd::lb_ready(q));
  EXPECT_EQ(engine_claim(q, 0), 0u);
}

TEST(lb_queue, a_set_of_every_engine_admits_engines_beyond_the_64th) {
  EXPECT_EQ(cd::lb_target_mask(0b111, 3), ~0ull);
  EXPECT_EQ(cd::lb_target_mask(~0ull, 100), ~0ull);
  EXPECT_EQ(cd::lb_target_mask(0b101, 3), 0b101u);
  EXPECT_EQ(cd::lb_target_mask(~0ull >> 1, 100), ~0ull >> 1) << "engine 63 is left out";
  auto qs = make_queues();
  qs[0].mask.store(cd::lb_target_mask(0b11, 2));
  EXPECT_TRUE(cd::lb_eligible(qs[0], 0));
  EXPECT_TRUE(cd::lb_eligible(qs[0], 200));
  qs[0].mask.store(~0ull >> 1);
  EXPECT_FALSE(cd::lb_eligible(qs[0], 63));
  EXPECT_FALSE(cd::lb_eligible(qs[0], 200));
}

TEST(lb_queue, each_target_set_gets_one_queue_until_the_client_has_none_left) {
  auto qs = make_queues(cd::kLbQueues);
  std::span<cd::LbQueue, cd::kLbQueues> queues(qs.get(), cd::kLbQueues);
  std::vector<std::uint32_t> got;
  for (std::uint64_t m = 1; m <= cd::kLbQueues; ++m) got.push_back(cd::lb_queue_for(queues, m));
  for (std::uint32_t i = 0; i < cd::kLbQueues; ++i) EXPECT_EQ(got[i], i);
  EXPECT_EQ(cd::lb_queue_for(queues, 2), 1u) << "the same set, the same queue";
  EXPECT_EQ(cd::lb_queue_for(queues, cd::kLbQueues + 1), cd::kLbQueues) << "every queue serves another set";
  (void)cd::lb_attach(queues[2]);  // a new client of the slot: the old sets do not carry over
  EXPECT_EQ(cd::lb_queue_for(queues, 99), 2u);
}

TEST(lb_queue, the_slot_a_dead_engine_held_is_freed_as_its_engine_would_have) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  cd::lb_release_abandoned(q, 0);  // queued, not claimed: not an engine's to give back
  EXPECT_TRUE(cd::lb_ready(q));
  const auto pos = claim(q);
  ASSERT_EQ(pos, 0u);
  EXPECT_EQ(cd::lb_try_reserve(q, kLbSlots), nullptr);
  cd::lb_release_abandoned(q, *pos);
  EXPECT_NE(cd::lb_try_reserve(q, kLbSlots), nullptr);
  cd::lb_release_abandoned(q, *pos);  // twice (or after a late lb_free) changes nothing
  EXPECT_NE(cd::lb_try_reserve(q, kLbSlots), nullptr);
  cd::lb_release_abandoned(q, 12345);  // a damaged claim word frees nothing
  for (std::uint64_t p = 1; p < kLbSlots; ++p) EXPECT_NE(cd::lb_try_reserve(q, p), nullptr) << p;
}

// A slot whose sequence word is ahead of its turn while tail stands still is damage: the queue reads as
// empty to consumers instead of sending them round for ever.
TEST(lb_queue, a_slot_damaged_ahead_of_its_turn_reads_as_empty_not_as_an_endless_retry) {
  auto qs = make_queues();
  cd::LbQueue& q = qs[0];
  std::uint64_t head = 0;
  ASSERT_TRUE(put(q, head, 1));
  cd::lb_slot(q, 0).seq.store(0xdead'beefull);
  EXPECT_FALSE(claim(q).has_value());
}

}  // namespace
