// tests/ring_test.cpp — the SPSC ring on its own, in ordinary memory: FIFO order, full and empty, write_record,
// index wrap-around, damaged indices, and a two-thread checksum fuzz.
#include "test_util.hpp"

#include <cadre/detail/shm/ring.hpp>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace {

namespace cd = cadre::detail;
using cd::kRingSlots;

/// A ring in ordinary memory whose next position is `start`.
std::unique_ptr<cd::RingStorage> make_ring(std::uint64_t start = 0) {
  auto r = std::make_unique<cd::RingStorage>();
  cd::init_ring(r.get(), start);
  return r;
}

void put(cd::RingProducer& p, std::uint64_t id) {
  cd::RingSlot* s = p.try_claim();
  ASSERT_NE(s, nullptr) << id;
  s->task_id = id;
  s->len = sizeof id;
  std::memcpy(s->data, &id, sizeof id);
  p.publish();
}

std::uint64_t take(cd::RingConsumer& c) {
  const cd::RingSlot* s = c.peek();
  if (!s) {
    ADD_FAILURE() << "ring empty";
    return ~0ull;
  }
  std::uint64_t v;
  std::memcpy(&v, s->data, sizeof v);
  EXPECT_EQ(v, s->task_id);
  c.release();
  return v;
}

TEST(ring, a_new_ring_is_empty) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_FALSE(c.has_data());
  EXPECT_TRUE(p.empty());
  EXPECT_NE(p.try_claim(), nullptr);
}

TEST(ring, records_come_out_in_the_order_they_went_in) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t i = 0; i < 10; ++i) put(p, i);
  EXPECT_TRUE(c.has_data());
  EXPECT_FALSE(p.empty());
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(take(c), i);
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_TRUE(p.empty());
}

TEST(ring, an_unpublished_claim_is_invisible_to_the_consumer) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  cd::RingSlot* s = p.try_claim();
  ASSERT_NE(s, nullptr);
  s->task_id = 5;
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_EQ(p.try_claim(), s);  // claiming again without publishing gives the same slot
  p.publish();
  ASSERT_NE(c.peek(), nullptr);
  EXPECT_EQ(c.peek()->task_id, 5u);
}

TEST(ring, is_full_after_kRingSlots_records_and_has_room_after_one_is_read) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t i = 0; i < kRingSlots; ++i) put(p, i);
  EXPECT_EQ(p.try_claim(), nullptr);
  EXPECT_EQ(p.try_claim(), nullptr);
  EXPECT_EQ(take(c), 0u);
  put(p, kRingSlots);
  EXPECT_EQ(p.try_claim(), nullptr);
  for (std::uint64_t i = 1; i <= kRingSlots; ++i) EXPECT_EQ(take(c), i);
  EXPECT_EQ(c.peek(), nullptr);
}

TEST(ring, peek_without_release_returns_the_same_record) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  put(p, 1);
  put(p, 2);
  const cd::RingSlot* a = c.peek();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(c.peek(), a);
  EXPECT_EQ(a->task_id, 1u);
  c.release();
  EXPECT_EQ(c.peek()->task_id, 2u);
}

TEST(ring, ends_made_later_continue_from_the_shared_indices) {
  auto r = make_ring();
  {
    cd::RingProducer p(r.get());
    for (std::uint64_t i = 0; i < 5; ++i) put(p, i);
    cd::RingConsumer c(r.get());
    EXPECT_EQ(take(c), 0u);
    EXPECT_EQ(take(c), 1u);
  }
  cd::RingProducer p2(r.get());  // e.g. a restarted process
  cd::RingConsumer c2(r.get());
  put(p2, 5);
  for (std::uint64_t i = 2; i <= 5; ++i) EXPECT_EQ(take(c2), i);
}

TEST(ring, indices_that_wrap_past_two_to_the_64_keep_fifo_order) {
  auto r = make_ring(~std::uint64_t(0) - 100);
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t round = 0; round < 3; ++round) {
    for (std::uint64_t i = 0; i < kRingSlots; ++i) put(p, round * 1000 + i);
    EXPECT_EQ(p.try_claim(), nullptr);
    for (std::uint64_t i = 0; i < kRingSlots; ++i) EXPECT_EQ(take(c), round * 1000 + i);
    EXPECT_EQ(c.peek(), nullptr);
  }
  EXPECT_LT(r->idx.head.load(), 1000u);  // it did wrap
}

TEST(ring, init_ring_empties_a_used_ring) {
  auto r = make_ring();
  {
    cd::RingProducer p(r.get());
    for (std::uint64_t i = 0; i < 7; ++i) put(p, i);
  }
  cd::init_ring(r.get());
  cd::RingConsumer c(r.get());
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_FALSE(c.has_data());
  cd::RingProducer p(r.get());
  put(p, 42);
  EXPECT_EQ(take(c), 42u);
}

TEST(ring, a_restarted_producer_continues_after_records_whose_index_update_was_lost) {
  // A producer that dies between publishing a record (its seq) and advancing the shared head: the
  // consumer may have read those records, so the next producer must not write over them.
  auto r = make_ring();
  cd::RingConsumer c(r.get());
  {
    cd::RingProducer p(r.get());
    for (std::uint64_t i = 0; i < 5; ++i) put(p, i);
  }
  r->idx.head.store(3);  // as if the stores of head for records 3 and 4 never happened
  EXPECT_EQ(take(c), 0u);
  EXPECT_EQ(take(c), 1u);
  EXPECT_EQ(take(c), 2u);
  EXPECT_EQ(take(c), 3u);
  cd::RingProducer p2(r.get());
  EXPECT_EQ(r->idx.head.load(), 5u);
  put(p2, 5);
  EXPECT_EQ(take(c), 4u);
  EXPECT_EQ(take(c), 5u);
  EXPECT_EQ(c.peek(), nullptr);
}

TEST(ring, a_record_is_visible_by_its_seq_alone) {
  // The consumer polls the record's own line: the shared head is for counting, not for visibility.
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  put(p, 7);
  r->idx.head.store(0);
  EXPECT_TRUE(c.has_data());
  EXPECT_EQ(take(c), 7u);
  EXPECT_FALSE(c.has_data());
}

/// A slot whose every byte reads 0xAB: what a stale record would leave.
void fill_stale(cd::RingSlot& s) { std::memset(static_cast<void*>(&s), 0xAB, sizeof s); }

TEST(ring, write_record_fills_a_command_and_leaves_the_completion_fields_as_they_were) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingSlot* s = p.try_claim();
  ASSERT_NE(s, nullptr);
  fill_stale(*s);
  const std::byte payload[5] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
  cd::write_record(*s, cd::RecordHeader{11, cd::RecordKind::pull, cd::Status::ok, 5, 6, 0, 3, 4}, payload);
  EXPECT_EQ(s->task_id, 11u);
  EXPECT_EQ(s->kind, std::uint16_t(cd::RecordKind::pull));
  EXPECT_EQ(s->status, 0u);
  EXPECT_EQ(s->len, 5u);
  EXPECT_EQ(s->aux, 6u);
  EXPECT_EQ(s->block, 0u);
  EXPECT_EQ(s->engine_gen, 3u);
  EXPECT_EQ(s->client_gen, 4u);
  EXPECT_EQ(std::memcmp(s->data, payload, sizeof payload), 0);
  EXPECT_EQ(s->data[sizeof payload], std::byte{0xAB}) << "only the payload's bytes are copied";
  EXPECT_EQ(s->flags, 0xABABu);
  EXPECT_EQ(s->started_ns, 0xABABABABABABABABull);
  EXPECT_EQ(s->finished_ns, 0xABABABABABABABABull);
}

TEST(ring, write_record_of_a_completion_fills_its_flags_and_times_too) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingSlot* s = p.try_claim();
  ASSERT_NE(s, nullptr);
  fill_stale(*s);
  const cd::CompletionHeader h{{12, cd::RecordKind::completion, cd::Status::name_error, 0, 0, 0, 1, 2}, cd::kHasOutput, 100, 200};
  cd::write_record(*s, h, {});
  EXPECT_EQ(s->task_id, 12u);
  EXPECT_EQ(s->kind, std::uint16_t(cd::RecordKind::completion));
  EXPECT_EQ(s->status, std::uint32_t(cd::Status::name_error));
  EXPECT_EQ(s->len, 0u);
  EXPECT_EQ(s->flags, cd::kHasOutput);
  EXPECT_EQ(s->started_ns, 100u);
  EXPECT_EQ(s->finished_ns, 200u);
  EXPECT_EQ(s->data[0], std::byte{0xAB}) << "an empty payload copies nothing";
}

TEST(ring, write_record_never_writes_past_the_slot) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingSlot* s = p.try_claim();
  ASSERT_NE(s, nullptr);
  fill_stale(r->slots[1]);
  std::vector<std::byte> big(cd::kInlineBytes + 64, std::byte{0x11});
  cd::write_record(*s, cd::RecordHeader{1, cd::RecordKind::apply, cd::Status::ok, 0, 0, 0, 0, 0}, big);
  EXPECT_EQ(s->data[cd::kInlineBytes - 1], std::byte{0x11});
  EXPECT_EQ(r->slots[1].seq.load(), 0xABABABABABABABABull) << "the next slot was overwritten";
}

TEST(ring, a_record_written_with_write_record_reaches_the_consumer_whole) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t i = 0; i < 3 * kRingSlots; ++i) {
    cd::RingSlot* s = p.try_claim();
    ASSERT_NE(s, nullptr);
    std::byte payload[sizeof i];
    std::memcpy(payload, &i, sizeof i);
    cd::write_record(*s, cd::RecordHeader{i, cd::RecordKind::apply, cd::Status::ok, sizeof i, 0, 0, 1, 1}, payload);
    p.publish();
    EXPECT_EQ(take(c), i);
  }
}

TEST(ring, one_producer_and_one_consumer_thread_pass_a_million_records_without_loss) {
  constexpr std::uint64_t kRecords = 1'000'000;
  auto r = make_ring();
  std::uint64_t sent_sum = 0, got_sum = 0, got = 0, out_of_order = 0;
  std::thread producer([&] {
    cd::RingProducer p(r.get());
    for (std::uint64_t i = 0; i < kRecords; ++i) {
      cd::RingSlot* s;
      while (!(s = p.try_claim())) std::this_thread::yield();
      const std::uint64_t payload = i * 2654435761u;
      s->task_id = i;
      s->len = sizeof payload;
      std::memcpy(s->data, &payload, sizeof payload);
      std::memcpy(s->data + cd::kInlineBytes - sizeof payload, &payload, sizeof payload);  // both ends of the slot
      sent_sum += payload;
      p.publish();
    }
  });
  std::thread consumer([&] {
    cd::RingConsumer c(r.get());
    while (got < kRecords) {
      const cd::RingSlot* s = c.peek();
      if (!s) {
        std::this_thread::yield();
        continue;
      }
      std::uint64_t a, b;
      std::memcpy(&a, s->data, sizeof a);
      std::memcpy(&b, s->data + cd::kInlineBytes - sizeof b, sizeof b);
      if (s->task_id != got || a != b || a != got * 2654435761u) ++out_of_order;
      got_sum += a;
      ++got;
      c.release();
    }
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(got, kRecords);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(got_sum, sent_sum);
}

// ---- damaged indices: the producer's and the consumer's checks --------------------------------------

TEST(ring, a_consumer_index_ahead_of_the_producer_is_reported_broken_not_full) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  for (std::uint64_t i = 0; i < kRingSlots; ++i) put(p, i);
  r->idx.tail.store(kRingSlots + 5);  // ahead of every record published
  EXPECT_EQ(p.try_claim(), nullptr);
  EXPECT_TRUE(p.broken());
}

TEST(ring, a_consumer_index_more_than_a_ring_behind_is_reported_broken) {
  auto r = make_ring(1000);
  r->idx.tail.store(1000 - kRingSlots - 1);
  cd::RingProducer p(r.get());
  EXPECT_TRUE(p.broken());
  EXPECT_EQ(p.try_claim(), nullptr);
}

TEST(ring, a_full_ring_is_full_not_broken_and_room_comes_back) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t i = 0; i < kRingSlots; ++i) put(p, i);
  EXPECT_EQ(p.try_claim(), nullptr);
  EXPECT_FALSE(p.broken());
  EXPECT_EQ(take(c), 0u);
  EXPECT_NE(p.try_claim(), nullptr);
  EXPECT_FALSE(p.broken());
}

TEST(ring, a_consumer_started_on_damaged_indices_says_so) {
  auto r = make_ring();
  r->idx.head.store(0x1234'5678'9abc'def0ull);
  EXPECT_TRUE(cd::RingConsumer(r.get()).broken());
  auto ok = make_ring(77);
  EXPECT_FALSE(cd::RingConsumer(ok.get()).broken());
}

TEST(ring, republish_restores_an_overwritten_index_of_its_own_end) {
  auto r = make_ring();
  cd::RingProducer p(r.get());
  cd::RingConsumer c(r.get());
  for (std::uint64_t i = 0; i < 3; ++i) put(p, i);
  for (std::uint64_t i = 0; i < 3; ++i) EXPECT_EQ(take(c), i);
  r->idx.tail.store(3 - kRingSlots);  // in range, but says the ring is full
  r->idx.head.store(99);
  c.republish();
  p.republish();
  EXPECT_EQ(r->idx.tail.load(), 3u);
  EXPECT_EQ(r->idx.head.load(), 3u);
}

}  // namespace
