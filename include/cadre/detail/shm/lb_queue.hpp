// cadre/detail/shm/lb_queue.hpp — the load-balanced queue's protocol: every step any process takes on an LbQueue.
//
// Each client slot has kLbQueues bounded MPMC queues (layout.hpp draws them), one per target set of
// engines. The client is a queue's only producer; the engines whose bit is in its `mask` consume it,
// and so does Segment::retire_client when it drains the queue of a client that is gone. The design is
// Vyukov's sequence-per-slot queue, as in rigtorp's MPMCQueue: for position pos, the slot's `seq` says
// whose turn it is,
//
//   seq == pos             free: the producer may fill it              lb_try_reserve, lb_publish
//   seq == pos + 1         queued: one consumer may claim it           lb_ready, lb_try_claim
//   seq == pos + kLbSlots  done: free for the producer's next lap      lb_free (or lb_release_abandoned)
//
// and a claim is a CAS of `tail` from pos to pos + 1: its winner owns the slot until lb_free. Between
// publication and start, the slot's `state` decides between the client aborting the task (queued →
// cancelled, lb_try_cancel) and the engine running it (queued → running, lb_try_start): whoever moves
// it out of `queued` first wins.
//
// Who calls what: the client (ShmTransport) lb_attach, lb_queue_for, lb_try_reserve, lb_publish,
// lb_try_cancel, lb_release_abandoned, lb_taken, lb_mask; an engine lb_eligible, lb_ready,
// lb_try_claim, lb_try_start, lb_free; a retirement lb_drain. The heap blocks a record points to are
// not this file's business: their owners change hands in the callers, which hold the Segment.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <algorithm>
#include <cstring>
#include <span>

namespace cadre::detail {

/// Empties queue q and forgets its target set: its slots then wait for positions 0..kLbSlots-1. Only
/// while no process uses it (Segment::init, on zeroed memory).
inline void init_lb_queue(LbQueue* q) noexcept {
  q->head.store(0, std::memory_order_relaxed);
  q->tail.store(0, std::memory_order_relaxed);
  q->mask.store(0, std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < kLbSlots; ++k) q->slots[k].seq.store(k, std::memory_order_relaxed);
}

/// The slot that serves position pos (any position: the index is masked into range).
inline LbSlot& lb_slot(LbQueue& q, std::uint64_t pos) noexcept { return q.slots[pos & (kLbSlots - 1)]; }
inline const LbSlot& lb_slot(const LbQueue& q, std::uint64_t pos) noexcept { return q.slots[pos & (kLbSlots - 1)]; }

// ---- target sets ------------------------------------------------------------------------------

/// The mask a queue for `engine_mask` carries: a set naming every engine of the cluster is ~0, which
/// also admits engines beyond the first 64 (whose bits do not exist).
inline constexpr std::uint64_t lb_target_mask(std::uint64_t engine_mask, std::uint32_t engine_count) noexcept {
  const std::uint64_t all = engine_count >= 64 ? ~0ull : (1ull << engine_count) - 1;
  return (engine_mask & all) == all ? ~0ull : engine_mask;
}

/// The target set of q (0: unused).
inline std::uint64_t lb_mask(const LbQueue& q) noexcept {
  // Pairs with the release-stores of mask in lb_queue_for, lb_attach and lb_drain.
  return q.mask.load(std::memory_order_acquire);
}

/// Producer. The index of the client's queue for `mask` (lb_target_mask): the one that already serves
/// that set, else the first unused one, which now does. kLbQueues when every queue serves another set.
[[nodiscard]] inline std::uint32_t lb_queue_for(std::span<LbQueue, kLbQueues> queues, std::uint64_t mask) noexcept {
  std::uint32_t unused = kLbQueues;
  for (std::uint32_t q = 0; q < kLbQueues; ++q) {
    const std::uint64_t m = lb_mask(queues[q]);
    if (m == mask) return q;
    if (m == 0 && unused == kLbQueues) unused = q;
  }
  // Pairs with the engines' acquire-load of mask in lb_eligible.
  if (unused != kLbQueues) queues[unused].mask.store(mask, std::memory_order_release);
  return unused;
}

/// Consumer. Whether `engine` may run q's tasks: its bit of the mask, or, beyond bit 63, a mask of all engines.
inline bool lb_eligible(const LbQueue& q, std::uint32_t engine) noexcept {
  const std::uint64_t m = lb_mask(q);
  return m != 0 && (engine >= 64 ? m == ~0ull : ((m >> engine) & 1) != 0);
}

// ---- producer: one thread of the client that holds the slot ------------------------------------

/// A client takes over its queue: the target set of the slot's previous client does not carry over.
/// Returns the next position to publish at, which the producer keeps from then on.
[[nodiscard]] inline std::uint64_t lb_attach(LbQueue& q) noexcept {
  // Pairs with the engines' acquire-load of mask in lb_eligible.
  q.mask.store(0, std::memory_order_release);
  // Pairs with the release-store of head at the end of lb_drain (the previous client's retirement).
  return q.head.load(std::memory_order_acquire);
}

/// The slot for position pos, the producer's next, or nullptr while a consumer still holds it (full).
[[nodiscard]] inline LbSlot* lb_try_reserve(LbQueue& q, std::uint64_t pos) noexcept {
  LbSlot& s = lb_slot(q, pos);
  // Pairs with the release-store of seq in lb_free (a consumer done with the slot's previous task).
  return s.seq.load(std::memory_order_acquire) == pos ? &s : nullptr;
}

/// What a load-balanced record carries besides its payload.
struct LbTask {
  std::uint64_t task_id;
  RecordKind kind;
  std::uint32_t aux;
  std::uint64_t deadline_ns;  // not started by then: a timeout (0: none); travels in RingSlot::started_ns
  std::uint32_t client_gen;
  std::uint64_t block;        // heap block holding the payload, 0 when it is inline
  std::uint32_t len;          // bytes of payload
};

/// Fills the slot lb_try_reserve(q, pos) returned and queues it: a consumer sees nothing of it before
/// the seq store, so a producer dying half-way exposes no half-written record. `inline_payload` (at
/// most kInlineBytes are copied) is the payload when t.block == 0, empty otherwise.
inline void lb_publish(LbQueue& q, std::uint64_t pos, const LbTask& t, std::span<const std::byte> inline_payload) noexcept {
  LbSlot& s = lb_slot(q, pos);
  RingSlot& r = s.record;
  r.task_id = t.task_id;
  r.kind = std::uint16_t(t.kind);
  r.flags = 0;
  r.status = 0;
  r.aux = t.aux;
  r.started_ns = t.deadline_ns;
  r.engine_gen = 0;  // any engine may take it
  r.client_gen = t.client_gen;
  r.block = t.block;
  r.len = t.len;
  if (!inline_payload.empty()) std::memcpy(r.data, inline_payload.data(), std::min(inline_payload.size(), kInlineBytes));
  s.state.store(std::uint32_t(LbState::queued), std::memory_order_relaxed);
  // Pairs with the consumers' acquire-load of seq in lb_ready and lb_try_claim.
  s.seq.store(pos + 1, std::memory_order_release);
  // Read only by the slot's next client (lb_attach), after lb_drain has stored it again with release.
  q.head.store(pos + 1, std::memory_order_relaxed);
}

/// Aborts the task queued at pos unless an engine started it first. True: no engine will run it.
[[nodiscard]] inline bool lb_try_cancel(LbQueue& q, std::uint64_t pos) noexcept {
  LbSlot& s = lb_slot(q, pos);
  // Pairs with the release-store of seq in lb_publish; a slot already freed is not ours to cancel.
  if (s.seq.load(std::memory_order_acquire) != pos + 1) return false;
  std::uint32_t st = std::uint32_t(LbState::queued);
  // Pairs with the engine's CAS of state in lb_try_start: exactly one of the two leaves `queued`.
  return s.state.compare_exchange_strong(st, std::uint32_t(LbState::cancelled), std::memory_order_acq_rel);
}

/// Frees the slot of position pos, which an engine claimed and died holding (its EngineSlot::lb_claim
/// said so), as that engine's lb_free would have. Nothing happens unless pos was claimed and is still
/// unfreed: a stale or damaged claim word frees nothing.
inline void lb_release_abandoned(LbQueue& q, std::uint64_t pos) noexcept {
  // Pairs with the claiming CAS of tail in lb_try_claim.
  if (pos >= q.tail.load(std::memory_order_acquire)) return;
  std::uint64_t expected = pos + 1;
  // Pairs with the producer's acquire-load of seq in lb_try_reserve; loses to a late lb_free.
  lb_slot(q, pos).seq.compare_exchange_strong(expected, pos + kLbSlots, std::memory_order_acq_rel);
}

/// Positions claimed so far: every task published before this position has left the queue.
inline std::uint64_t lb_taken(const LbQueue& q) noexcept {
  // Pairs with the claiming CAS of tail in lb_try_claim.
  return q.tail.load(std::memory_order_acquire);
}

// ---- consumers: engines, and a retirement's drain ---------------------------------------------

/// Whether q's oldest unclaimed position holds a queued task (a hint: another consumer may claim it first).
[[nodiscard]] inline bool lb_ready(const LbQueue& q) noexcept {
  const std::uint64_t pos = q.tail.load(std::memory_order_relaxed);
  // Pairs with the release-store of seq in lb_publish.
  return lb_slot(q, pos).seq.load(std::memory_order_acquire) == pos + 1;
}

/// Claims q's oldest queued task, racing with the other consumers by CAS on tail; on success `pos` is
/// its position and the slot is the caller's until lb_free(q, pos). False when q is empty.
/// `before_cas(pos)` runs before every attempt, so that what a consumer must announce before it may
/// own a task (an engine's lb_claim and completing words) is visible before its CAS can succeed.
template <class BeforeCas>
[[nodiscard]] inline bool lb_try_claim(LbQueue& q, std::uint64_t& pos, BeforeCas&& before_cas) noexcept {
  // tail is only a starting point: the CAS checks it, and the acquire-load of seq orders the reads of
  // the record, so the loads of tail need no ordering of their own.
  pos = q.tail.load(std::memory_order_relaxed);
  for (;;) {
    // Pairs with the release-store of seq in lb_publish.
    const std::uint64_t seq = lb_slot(q, pos).seq.load(std::memory_order_acquire);
    const auto diff = std::int64_t(seq - (pos + 1));
    if (diff < 0) return false;  // empty
    if (diff > 0) {  // claimed by another consumer since we read tail...
      const std::uint64_t now = q.tail.load(std::memory_order_relaxed);
      if (now == pos) return false;  // ...unless tail stands still: a slot ahead of its turn is damage, not a task
      pos = now;
      continue;
    }
    before_cas(pos);
    // Pairs with the other consumers' CAS and with the acquire-loads of tail in lb_taken and
    // lb_release_abandoned. On failure pos becomes the current tail.
    if (q.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_acq_rel)) return true;
  }
}

/// The engine that claimed pos starts its task, unless the client cancelled it first. True: run it.
[[nodiscard]] inline bool lb_try_start(LbSlot& s) noexcept {
  std::uint32_t st = std::uint32_t(LbState::queued);
  // Pairs with the client's CAS of state in lb_try_cancel: exactly one of the two leaves `queued`.
  return s.state.compare_exchange_strong(st, std::uint32_t(LbState::running), std::memory_order_acq_rel);
}

/// The consumer that claimed pos is done with its slot (and with everything the record points to):
/// the producer may reuse it for position pos + kLbSlots.
inline void lb_free(LbQueue& q, std::uint64_t pos) noexcept {
  // Pairs with the producer's acquire-load of seq in lb_try_reserve.
  lb_slot(q, pos).seq.store(pos + kLbSlots, std::memory_order_release);
}

/// Takes every task still queued out of q, whose producer is gone, as a consumer racing with the
/// engines for each, and hands its record to `drop` (which disposes of its block) before freeing the
/// slot. Engines stop looking at q first. Stops at the first empty slot: with the producer gone,
/// nothing more is queued. Leaves head == tail, also when the producer died between publishing a
/// record and counting it in head, so the slot's next client starts where the queue stands.
template <class Drop>
inline void lb_drain(LbQueue& q, Drop&& drop) noexcept {
  // Pairs with the engines' acquire-load of mask in lb_eligible.
  q.mask.store(0, std::memory_order_release);
  std::uint64_t pos;
  // A drain announces nothing before its claims: retire_client, which drains, waits for the engines'
  // announcements, not for its own.
  while (lb_try_claim(q, pos, [](std::uint64_t) noexcept {})) {
    drop(static_cast<const RingSlot&>(lb_slot(q, pos).record));
    lb_free(q, pos);
  }
  // Pairs with the acquire-load of head in lb_attach (the slot's next client).
  q.head.store(q.tail.load(std::memory_order_acquire), std::memory_order_release);
}

}  // namespace cadre::detail
