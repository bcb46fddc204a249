// cadre/detail/shm/ring.hpp — a single-producer single-consumer ring of fixed slots in shared memory.
//
// In the spirit of rigtorp's SPSCQueue: the producer keeps a process-local copy of the consumer's
// index and reloads it only when the ring looks full. A record becomes visible by one release-store,
// of its slot's `seq` word (position + 1, as in Vyukov's bounded queue), so a producer that dies
// mid-write never exposes a half-written record. The consumer polls that word rather than the
// producer's index: it sits on the record's header line, which the consumer reads next anyway, so
// seeing a record costs one cache-line transfer instead of two (index, then record): the hot round trip
// fell from ~500 to ~440 ns (client and engine pinned to two CPUs). The producer still writes its index
// after each record, for those who count what is queued and for a restarted producer.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <algorithm>
#include <cstring>
#include <span>

namespace cadre::detail {

/// Empties a ring and makes `start` its next position: each slot's seq then says "not yet" for the
/// position it serves next. Only with neither end in use.
inline void init_ring(RingStorage* r, std::uint64_t start = 0) noexcept {
  for (std::uint64_t p = start; p != start + kRingSlots; ++p) r->slots[p & (kRingSlots - 1)].seq.store(p, std::memory_order_relaxed);
  r->idx.head.store(start, std::memory_order_relaxed);
  r->idx.tail.store(start, std::memory_order_release);
}

/// The header fields every ring record's producer writes.
struct RecordHeader {
  std::uint64_t task_id;
  RecordKind kind;
  Status status;
  std::uint32_t len, aux;
  std::uint64_t block;  // 0: the payload is inline
  std::uint32_t engine_gen, client_gen;
};

/// A completion's header: RecordHeader, and the fields only completions write (a command leaves them
/// as they were).
struct CompletionHeader : RecordHeader {
  std::uint16_t flags;
  std::uint64_t started_ns, finished_ns;
};

/// Fills a slot that RingProducer::try_claim returned, for publish(): the inline payload (at most
/// kInlineBytes of it; empty when it all lives in a block) first, the header line last. The consumer
/// polls that line, so a header written before the payload would be pulled to the consumer's cache
/// while the payload is still being copied, and fetched back for the seq store.
inline void write_record(RingSlot& s, const RecordHeader& h, std::span<const std::byte> inline_payload) noexcept {
  if (!inline_payload.empty()) std::memcpy(s.data, inline_payload.data(), std::min(inline_payload.size(), kInlineBytes));
  s.task_id = h.task_id;
  s.kind = std::uint16_t(h.kind);
  s.status.store(std::uint32_t(h.status), std::memory_order_relaxed);  // published by seq, as the rest
  s.len = h.len;
  s.aux = h.aux;
  s.block = h.block;
  s.engine_gen = h.engine_gen;
  s.client_gen = h.client_gen;
}

inline void write_record(RingSlot& s, const CompletionHeader& h, std::span<const std::byte> inline_payload) noexcept {
  write_record(s, static_cast<const RecordHeader&>(h), inline_payload);
  s.flags = h.flags;
  s.started_ns = h.started_ns;
  s.finished_ns = h.finished_ns;
}

/// Producer end. Only one thread (of one process) may use it at a time.
class RingProducer {
 public:
  RingProducer() = default;
  explicit RingProducer(RingStorage* r) noexcept : r_(r), head_(r->idx.head.load(std::memory_order_relaxed)) {
    // A producer that died between publishing a record and advancing `head` left records the consumer
    // may already have read: continue after them, never over them.
    for (std::uint32_t n = 0; n < kRingSlots && slot(head_).seq.load(std::memory_order_acquire) == head_ + 1; ++n) ++head_;
    // Pairs with the consumer's release-store of tail in RingConsumer::release().
    tail_cache_ = r->idx.tail.load(std::memory_order_acquire);
    broken_ = head_ - tail_cache_ > kRingSlots;
    // A damaged ring is left as it is: storing a head read from it would only spread the damage.
    if (!broken_) r_->idx.head.store(head_, std::memory_order_release);
  }

  /// The slot to fill next, or nullptr when the ring is full or its indices are out of range (broken()).
  [[nodiscard]] RingSlot* try_claim() noexcept {
    if (head_ - tail_cache_ >= kRingSlots) {
      // Pairs with the consumer's release-store of tail in RingConsumer::release().
      tail_cache_ = r_->idx.tail.load(std::memory_order_acquire);
      if (head_ - tail_cache_ >= kRingSlots) [[unlikely]] {
        // The consumer is never ahead of us, nor more than a ring behind: anything else is damage. One
        // compare, only when the ring looks full.
        broken_ = head_ - tail_cache_ > kRingSlots;
        return nullptr;
      }
      broken_ = false;
    }
    return &slot(head_);
  }

  /// Whether the consumer's index, when last read, was out of range (ahead of ours, or more than a ring
  /// behind): the segment is damaged, and waiting for room would wait for ever.
  bool broken() const noexcept { return broken_; }

  /// Stores our index again if the one in the segment differs (damage): for an idle second, not per record.
  void republish() noexcept {
    // Release, as in publish(): read by a restarted producer (its constructor) and by ShmTransport::load.
    if (!broken_ && r_->idx.head.load(std::memory_order_relaxed) != head_) r_->idx.head.store(head_, std::memory_order_release);
  }

  /// Makes the claimed slot visible to the consumer.
  void publish() noexcept {
    // Pairs with the consumer's acquire-load of seq in RingConsumer::peek().
    slot(head_).seq.store(head_ + 1, std::memory_order_release);
    ++head_;
    r_->idx.head.store(head_, std::memory_order_release);
  }

  bool empty() noexcept { return head_ == r_->idx.tail.load(std::memory_order_acquire); }

  /// The position the next publish() gives its record.
  std::uint64_t position() const noexcept { return head_; }

  /// Marks task's record at pos aborted, so that the consumer skips it; false when the consumer has
  /// already released it. No record may be published meanwhile (it could land in that slot): the
  /// caller holds what serialises this producer. The consumer may be starting the record right now:
  /// it stores what it runs (EngineSlot::current_task) before it loads the status, and the caller stores
  /// the status before it loads current_task, both seq_cst, so one of the two sees the other.
  [[nodiscard]] bool cancel(std::uint64_t pos, std::uint64_t task) noexcept {
    if (pos >= head_ || r_->idx.tail.load(std::memory_order_acquire) > pos) return false;
    RingSlot& s = slot(pos);
    if (s.seq.load(std::memory_order_acquire) != pos + 1 || s.task_id != task) return false;
    s.status.store(std::uint32_t(Status::aborted), std::memory_order_seq_cst);
    return true;
  }

 private:
  RingSlot& slot(std::uint64_t pos) const noexcept { return r_->slots[pos & (kRingSlots - 1)]; }

  RingStorage* r_ = nullptr;
  std::uint64_t head_ = 0, tail_cache_ = 0;
  bool broken_ = false;
};

/// Consumer end. Only one thread (of one process) may use it at a time.
class RingConsumer {
 public:
  RingConsumer() = default;
  explicit RingConsumer(RingStorage* r) noexcept : r_(r), tail_(r->idx.tail.load(std::memory_order_relaxed)) {
    // The producer's head is at most a ring ahead; it may be a little behind (a producer that died
    // between publishing a record and storing its head). Further either way is damage.
    const std::uint64_t head = r->idx.head.load(std::memory_order_relaxed);
    broken_ = head - tail_ > kRingSlots && tail_ - head > kRingSlots;
  }

  /// Whether the indices it started from were out of range: the segment is damaged.
  bool broken() const noexcept { return broken_; }

  /// Stores our index again if the one in the segment differs (damage), so that a producer waiting for
  /// room is not misled for ever: for periodic checks, not per record.
  void republish() noexcept {
    // Pairs with the producer's acquire-load of tail in RingProducer::try_claim().
    if (r_->idx.tail.load(std::memory_order_relaxed) != tail_) r_->idx.tail.store(tail_, std::memory_order_release);
  }

  /// The oldest unread slot, or nullptr when the ring is empty. Copy what you need out of it,
  /// validate the copy, then release().
  [[nodiscard]] const RingSlot* peek() noexcept { return has_data() ? &slot() : nullptr; }

  void release() noexcept {
    ++tail_;
    // Pairs with the producer's acquire-load of tail in RingProducer::try_claim().
    r_->idx.tail.store(tail_, std::memory_order_release);
  }

  /// Pairs with the producer's release-store of seq in RingProducer::publish().
  bool has_data() noexcept {
    const RingSlot& s = slot();
    // The payload's first lines are fetched with the header line that announces them, rather than
    // after it: a poller that finds the record there also finds its bytes in cache, instead of waiting
    // for a second transfer. (While the ring is empty these lines stay in cache and cost nothing.)
    __builtin_prefetch(s.data);
    __builtin_prefetch(s.data + kCacheLine);
    return s.seq.load(std::memory_order_acquire) == tail_ + 1;
  }

 private:
  const RingSlot& slot() const noexcept { return r_->slots[tail_ & (kRingSlots - 1)]; }

  RingStorage* r_ = nullptr;
  std::uint64_t tail_ = 0;
  bool broken_ = false;
};

}  // namespace cadre::detail
