// cadre/detail/shm/waiter.hpp — spin while the answer may come soon, then sleep on a futex (an eventcount).
//
// Measured on 2-vCPU machines: two spinners on one cache line round-trip in 35-250 ns, a futex wake
// round trip costs 12-36 µs (waking a process on an idle vCPU is the hypervisor's business, and took
// 50-270 µs inside cadre's all-engine calls), and two spinners sharing one core without yielding take
// ~8 ms. So a waiter spins for a bounded budget; while the cluster's processes that want a CPU
// (SegmentHeader::runnable) outnumber the CPUs it gives its CPU away between polls (sched_yield), so
// whoever it waits for can run there. No wake-up is lost: the waiter announces itself in `sleepers`
// (a seq_cst RMW) before its last check, and the notifier reads `sleepers` after a seq_cst fence that
// follows its publication.
#pragma once

#include <cadre/detail/shm/layout.hpp>
#include <cadre/detail/base/sys.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include <sched.h>

namespace cadre::detail {

/// How long a waiter may spin before sleeping; CADRE_SPIN_US overrides (0 disables spinning).
/// 500 µs, because a sleeper on an idle vCPU can take hundreds of microseconds to wake: with 50 µs,
/// all.apply_sync on 4 engines and 2 vCPUs kept falling into a mode where every call paid such a
/// wake-up (~200 µs per call instead of ~7, bench/RESULTS.md, notes of 2026-11-27). A spin past a few
/// microseconds yields its CPU between polls, so a long one costs the others little.
inline std::uint64_t spin_budget_ns() noexcept {
  static const std::uint64_t ns = [] {
    const char* s = std::getenv("CADRE_SPIN_US");
    return s ? std::strtoull(s, nullptr, 10) * 1000u : 500'000u;
  }();
  return ns;
}

/// How far the budget may grow past spin_budget_ns() when answers keep coming just after it ran out.
inline constexpr std::uint64_t kMaxSpinFactor = 8;

/// How long a waiter spins before it starts offering its CPU to others between polls (sched_yield).
inline constexpr std::uint64_t kYieldAfterNs = 4000;

/// One sleeping place: a futex word that notifiers bump, a count of sleepers, and a flag that says a
/// wake-up is on its way. A sleeper takes tens of microseconds to wake; without the flag a producer
/// publishing many records meanwhile would make a futex_wake system call for each of them. `rung_ns`
/// (may be null) records when the last wake-up was sent, so the sleeper learns how soon after it gave
/// up its spin the answer came.
struct Doorbell {
  std::atomic<std::uint32_t>* word;
  std::atomic<std::uint32_t>* sleepers;
  std::atomic<std::uint32_t>* pending;
  std::atomic<std::uint64_t>* rung_ns = nullptr;

  enum class Woke { nobody_asleep, already_rung, now };

  /// Called by a producer right after publishing: wakes the sleepers, if any. True if there were.
  bool ring() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // publication before the sleepers read
    return wake() != Woke::nobody_asleep;
  }

  /// ring() for a producer that already issued the fence after publishing (e.g. one fence, then a
  /// look at several doorbells). already_rung: a wake-up is on its way since they went to sleep.
  Woke wake() const noexcept {
    if (sleepers->load(std::memory_order_acquire) == 0) return Woke::nobody_asleep;
    if (pending->exchange(1, std::memory_order_acq_rel) != 0) return Woke::already_rung;
    if (rung_ns) rung_ns->store(now_ns(), std::memory_order_relaxed);  // before the word's release
    word->fetch_add(1, std::memory_order_release);
    futex_wake(word, INT_MAX);
    return Woke::now;
  }
};

/// The doorbell of an engine or client slot (EngineSlot, ClientSlot).
template <class Slot>
Doorbell doorbell_of(Slot& s) noexcept {
  return {&s.doorbell, &s.sleepers, &s.wake_pending, &s.rung_ns};
}

/// Marks one process as wanting a CPU, for the spin policy. Each process holds one for its lifetime.
class RunnableToken {
 public:
  RunnableToken() = default;
  RunnableToken(SegmentHeader* h, std::atomic<std::uint32_t>* counted) noexcept : h_(h), counted_(counted) { set(true); }
  void set(bool runnable) noexcept {
    if (!h_) return;
    if (runnable) {
      if (counted_->exchange(1) == 0) h_->runnable.fetch_add(1, std::memory_order_relaxed);
    } else if (counted_->exchange(0) == 1) {
      h_->runnable.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  /// False for a token without a segment (such a waiter sleeps at once) or when spinning is off.
  bool may_spin() const noexcept { return h_ && spin_budget_ns() > 0; }
  /// More of the cluster's processes want a CPU than there are CPUs: a spinner must yield between polls.
  bool crowded() const noexcept { return h_ && h_->runnable.load(std::memory_order_relaxed) > h_->cpus; }

 private:
  SegmentHeader* h_ = nullptr;
  std::atomic<std::uint32_t>* counted_ = nullptr;
};

/// Waits until ready() or until sleep_ns of sleeping have passed (0: no limit). Returns ready().
/// Callers loop around it, doing their liveness checks between calls.
///
/// peer_woken: the caller has just woken its peer from sleep (Doorbell::ring() returned true), so the
/// answer takes at least a wake-up: spin the whole budget for it (yielding the CPU between polls, so the
/// peer can run here if the scheduler put it here). A waiter that slept instead would answer late in
/// turn, its peer's spin would run out meanwhile, and the two would settle into waking each other for
/// every message (~45 us per round trip instead of ~0.5 us, measured: a burst of apply_sync after a
/// quiet spell stayed there for good once the adaptive budget below had shrunk on both sides).
template <class Ready>
bool wait_for(const Doorbell& bell, RunnableToken& token, Ready&& ready, std::uint64_t sleep_ns, bool peer_woken = false) {
  if (ready()) return true;
  // The budget adapts. A spin that ended in sleep halves it (a real pause, or a peer that did not get
  // a CPU: spin less), unless spinning on would have been cheaper than sleeping: the answer came less
  // than a budget after the sleep began, and waking up took longer than that. Then the budget doubles,
  // up to kMaxSpinFactor times the default. That happens where waking a sleeper is slow: on a VM, a
  // process woken on an idle vCPU took 0.05-1.1 ms, and with a fixed budget shorter than that, an
  // all-engine call that once took that long made every process give up and sleep before the next
  // call came, so the next one took as long (runs of 600-1,150 us per call instead of ~7; RESULTS.md, 2026-11-27).
  // The wake-up test keeps a client that waits for long tasks from spinning more: its answers come
  // late but wake it fast (doubling there cost an imbalanced load-balanced map ~20 %).
  // A spin that succeeded grows a shrunken budget back towards the default.
  thread_local std::uint64_t budget = spin_budget_ns();
  if (peer_woken) budget = std::max(budget, spin_budget_ns());
  std::uint64_t spun = 0;  // the budget of a spin that ran out, 0 if there was none
  if (token.may_spin() && budget > 0) {
    // Crowded, each poll follows a sched_yield: it hands the CPU to a process queued here, if any, and
    // takes ~0.1-1 µs, so the clock is read after every one. Sleeping at once instead (the rule
    // before the 2026-11-27 notes of bench/RESULTS.md) let a vCPU go idle on each all-engine call, and waking it again cost more than the call.
    // Otherwise the clock is first read after 64 spins: most answers come sooner, and a read costs as
    // much as a tenth of a hot round trip here.
    bool crowded = token.crowded();
    std::uint64_t start = 0;
    for (unsigned i = 1;; ++i) {
      if (crowded) sched_yield();
      else cpu_relax();
      if (ready()) {
        if (budget < spin_budget_ns()) budget = std::min(spin_budget_ns(), budget * 2 + 1000);
        return true;
      }
      if (crowded || (i & 63) == 0) {
        const std::uint64_t now = now_ns();
        if (!start) start = now;
        if (now - start > budget) break;
        crowded = token.crowded();
        // Past a few microseconds the answer is not a hot round trip: let a process that waits for this
        // CPU have it. The peer we woke is often queued right here (the scheduler places a wakee on its
        // waker's CPU), and would otherwise wait out the whole spin: an engine woken from sleep answered
        // in ~160 us instead of ~60 (scratch program, 60 calls 20 ms apart).
        if (!crowded && now - start > kYieldAfterNs) sched_yield();
      }
    }
    spun = budget;
  }
  const std::uint32_t seen = bell.word->load(std::memory_order_acquire);
  // Cleared after reading `seen`: a producer that then finds it set bumped the word after that read,
  // so futex_wait below returns at once. Cleared before announcing ourselves: a producer that sees us
  // in `sleepers` sees the flag clear (or set by a later ring).
  bell.pending->store(0, std::memory_order_seq_cst);
  bell.sleepers->fetch_add(1, std::memory_order_seq_cst);
  if (ready()) {
    bell.sleepers->fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  token.set(false);
  const std::uint64_t slept_at = spun ? now_ns() : 0;
  futex_wait(bell.word, seen, sleep_ns);
  token.set(true);
  bell.sleepers->fetch_sub(1, std::memory_order_relaxed);
  const bool got = ready();
  if (spun) {
    // Spinning `late` longer would have caught the answer; sleeping cost the wake-up instead.
    const std::uint64_t rung = bell.rung_ns ? bell.rung_ns->load(std::memory_order_relaxed) : 0;
    const std::uint64_t woke = now_ns(), late = rung - slept_at;
    if (got && rung >= slept_at && late < spun && woke - rung > late) budget = std::min(spun * 2, spin_budget_ns() * kMaxSpinFactor);
    else budget = std::max<std::uint64_t>(spun / 2, 2000);
  }
  return got;
}

}  // namespace cadre::detail
