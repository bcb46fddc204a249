// cadre/detail/ring.hpp — a single-producer single-consumer ring of fixed slots in shared memory.
//
// In the spirit of rigtorp's SPSCQueue: each side keeps a process-local copy of the other side's
// index and reloads it only when the ring looks full (producer) or empty (consumer). A record
// becomes visible by one release-store of `head`, so a producer that dies mid-write never exposes
// a half-written record.
#pragma once

#include <cadre/detail/layout.hpp>

namespace cadre::detail {

/// Producer end. Only one thread (of one process) may use it at a time.
class RingProducer {
 public:
  RingProducer() = default;
  explicit RingProducer(RingStorage* r) noexcept : r_(r), head_(r->idx.head.load(std::memory_order_relaxed)) {
    tail_cache_ = r->idx.tail.load(std::memory_order_acquire);
  }

  /// The slot to fill next, or nullptr when the ring is full.
  RingSlot* try_claim() noexcept {
    if (head_ - tail_cache_ >= kRingSlots) {
      // Pairs with the consumer's release-store of tail in RingConsumer::release().
      tail_cache_ = r_->idx.tail.load(std::memory_order_acquire);
      if (head_ - tail_cache_ >= kRingSlots) return nullptr;
    }
    return &r_->slots[head_ & (kRingSlots - 1)];
  }

  /// Makes the claimed slot visible to the consumer.
  void publish() noexcept {
    ++head_;
    // Pairs with the consumer's acquire-load of head in RingConsumer::peek().
    r_->idx.head.store(head_, std::memory_order_release);
  }

  bool empty() noexcept { return head_ == r_->idx.tail.load(std::memory_order_acquire); }

 private:
  RingStorage* r_ = nullptr;
  std::uint64_t head_ = 0, tail_cache_ = 0;
};

/// Consumer end. Only one thread (of one process) may use it at a time.
class RingConsumer {
 public:
  RingConsumer() = default;
  explicit RingConsumer(RingStorage* r) noexcept : r_(r), tail_(r->idx.tail.load(std::memory_order_relaxed)) {
    head_cache_ = r->idx.head.load(std::memory_order_acquire);
  }

  /// The oldest unread slot, or nullptr when the ring is empty. Copy what you need out of it,
  /// validate the copy, then release().
  const RingSlot* peek() noexcept {
    if (tail_ == head_cache_) {
      // Pairs with the producer's release-store of head in RingProducer::publish().
      head_cache_ = r_->idx.head.load(std::memory_order_acquire);
      if (tail_ == head_cache_) return nullptr;
    }
    return &r_->slots[tail_ & (kRingSlots - 1)];
  }

  void release() noexcept {
    ++tail_;
    // Pairs with the producer's acquire-load of tail in RingProducer::try_claim().
    r_->idx.tail.store(tail_, std::memory_order_release);
  }

  bool has_data() noexcept { return tail_ != r_->idx.head.load(std::memory_order_acquire); }

 private:
  RingStorage* r_ = nullptr;
  std::uint64_t tail_ = 0, head_cache_ = 0;
};

/// Empties a ring whose producer or consumer died; only the launcher calls it, with both ends gone.
inline void reset_ring(RingStorage* r) noexcept {
  r->idx.head.store(0, std::memory_order_relaxed);
  r->idx.tail.store(0, std::memory_order_release);
}

}  // namespace cadre::detail
