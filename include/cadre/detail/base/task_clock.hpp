// cadre/detail/base/task_clock.hpp — the timestamps of every task (submitted, started, finished), cheaply.
//
// A round trip takes three of them, and clock_gettime(CLOCK_MONOTONIC) costs ~31 ns on this VM (a
// time-stamp counter read plus the kernel's scaling, in the vDSO) against ~12 ns for the bare counter
// read: together a tenth of a hot round trip. task_now_ns() reads the counter and extrapolates
// CLOCK_MONOTONIC from an anchor (a clock_gettime reading) at most 1 ms old, at a rate measured over at
// least 50 ms, from anchors whose reading was not stretched by an interrupt: it stays within tens of
// nanoseconds of now_ns() and, like it, compares across processes.
// The counter is used only where the kernel itself keeps time with it (clocksource "tsc": the kernel
// then vouches that it is invariant and synchronised across CPUs); elsewhere task_now_ns() is now_ns().
#pragma once

#include <cadre/detail/base/sys.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace cadre::detail {

__extension__ using u128 = unsigned __int128;  // products of 64-bit tick counts and Q32 rates (GCC/Clang extension)

/// Whether the kernel's clocksource is the time-stamp counter (read once per process).
inline bool tsc_is_the_clocksource() noexcept {
#if defined(__x86_64__)
  static const bool yes = [] {
    std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f) return false;
    char name[32] = {};
    const bool tsc = std::fgets(name, sizeof name, f) && std::strcmp(name, "tsc\n") == 0;
    std::fclose(f);
    return tsc;
  }();
  return yes;
#else
  return false;
#endif
}

#if defined(__x86_64__)
/// CLOCK_MONOTONIC extrapolated from the time-stamp counter; one per thread (no sharing, no locks).
class TscClock {
 public:
  std::uint64_t now() noexcept {
    const std::uint64_t d = __builtin_ia32_rdtsc() - anchor_tsc_;
    if (d >= window_ticks_) return reanchor();
    const auto ns = anchor_ns_ + std::uint64_t((static_cast<u128>(d) * ns_per_tick_q32_) >> 32);
    return last_ = std::max(ns, last_);  // never backwards across an anchor
  }

 private:
  static constexpr std::uint64_t kWindowNs = 1'000'000;          // anchors at most this old
  static constexpr std::uint64_t kCalibrateNs = 50'000'000;      // the rate is measured over at least this
  static constexpr std::uint64_t kRebaseNs = 2'000'000'000;      // ... and at most about this (follows drift)

  /// A clock_gettime reading and the counter at that moment, to within half the pair's width. Only a
  /// pair about as narrow as the narrowest this thread has seen is an anchor: one widened by an
  /// interrupt or a VM exit could be microseconds off. False after three wide tries.
  bool sharp_reading(std::uint64_t& tsc, std::uint64_t& ns) noexcept {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::uint64_t t0 = __builtin_ia32_rdtsc();
      ns = now_ns();
      const std::uint64_t width = __builtin_ia32_rdtsc() - t0;
      narrowest_ = std::min(narrowest_, width);
      if (width <= 2 * narrowest_ + 64) {
        tsc = t0 + width / 2;
        return true;
      }
    }
    return false;
  }

  std::uint64_t reanchor() noexcept {
    std::uint64_t t = 0, ns = 0;
    if (!sharp_reading(t, ns)) return last_ = std::max(ns, last_);  // keep the old anchor
    if (!base_ns_ || t <= base_tsc_) {
      rebase(t, ns);
    } else if (ns - base_ns_ >= kCalibrateNs) {
      const auto rate = std::uint64_t((static_cast<u128>(ns - base_ns_) << 32) / (t - base_tsc_));
      const std::uint64_t diff = rate > ns_per_tick_q32_ ? rate - ns_per_tick_q32_ : ns_per_tick_q32_ - rate;
      if (ns_per_tick_q32_ && diff > ns_per_tick_q32_ / 1024) {
        // The counter and the clock disagree by more than 0.1 % (a suspended VM, a changed counter):
        // trust neither rate; read the clock until a fresh one is measured.
        ns_per_tick_q32_ = window_ticks_ = 0;
        rebase(t, ns);
      } else if (rate) {
        ns_per_tick_q32_ = rate;
        window_ticks_ = std::uint64_t((static_cast<u128>(kWindowNs) << 32) / rate);
        if (ns - base_ns_ >= kRebaseNs) rebase(t, ns);
      }
    }
    anchor_tsc_ = t;
    anchor_ns_ = ns;
    return last_ = std::max(ns, last_);
  }

  void rebase(std::uint64_t t, std::uint64_t ns) noexcept {
    base_tsc_ = t;
    base_ns_ = ns;
  }

  std::uint64_t anchor_tsc_ = 0, anchor_ns_ = 0;
  std::uint64_t base_tsc_ = 0, base_ns_ = 0;
  std::uint64_t ns_per_tick_q32_ = 0;  // nanoseconds per tick, 32.32 fixed point
  std::uint64_t window_ticks_ = 0;     // 0 until calibrated: every reading is a clock_gettime
  std::uint64_t last_ = 0;
  std::uint64_t narrowest_ = ~std::uint64_t(0);  // ticks of the narrowest clock reading so far
};
#endif

/// Monotonic nanoseconds for task timestamps: now_ns() within tens of nanoseconds, at less cost.
inline std::uint64_t task_now_ns() noexcept {
#if defined(__x86_64__)
  if (tsc_is_the_clocksource()) {
    thread_local TscClock clock;
    return clock.now();
  }
#endif
  return now_ns();
}

}  // namespace cadre::detail
