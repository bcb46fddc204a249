// bench/anchors/pingpong.hpp — two processes bouncing one cache line: spinning, or sleeping on a futex.
//
// The floor under any cross-process round trip on this machine. Used by the anchor programs
// (pingpong_spin, pingpong_futex) and registered next to cadre in bench/roundtrip_bench.cpp so the
// ratio is taken within one run.
#pragma once

#include "anchor_common.hpp"

#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>

namespace anchor {

inline long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val, const timespec* ts = nullptr) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, ts, nullptr, 0);
}

/// How a side waits for the other's write.
enum class WaitMode {
  spin,   ///< busy-poll the line (with pause)
  futex,  ///< FUTEX_WAIT at once, every time; the writer always FUTEX_WAKEs
};

/// A forked child that answers every ping on one shared cache line. The parent (the caller's thread)
/// is pinned for the object's lifetime when parent_cpu >= 0, and its affinity restored afterwards.
///
///     anchor::PingPong pp(anchor::WaitMode::spin, 0, 1);
///     for (...) { auto t0 = anchor::now_ns(); pp.round_trip(); rtt.push_back(anchor::now_ns() - t0); }
class PingPong {
 public:
  PingPong(WaitMode mode, int parent_cpu, int child_cpu) : mode_(mode) {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("pingpong: mmap failed");
    line_ = new (p) Line{};
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("pingpong: fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(0);
      if (child_cpu >= 0) pin_to_cpu(child_cpu);
      serve_child();
      ::_exit(0);
    }
    if (parent_cpu >= 0) {
      guard_.emplace();
      pin_to_cpu(parent_cpu);
    }
    // Warm up: the child may still be starting (and migrating to its CPU).
    for (int i = 0; i < 1000; ++i) round_trip();
  }

  PingPong(const PingPong&) = delete;
  PingPong& operator=(const PingPong&) = delete;

  ~PingPong() {
    line_->word.store(kStop, std::memory_order_release);
    futex(&line_->word, FUTEX_WAKE, INT_MAX);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    ::munmap(line_, 4096);
  }

  /// One round trip: write a ping, wait for the pong. Throws if the child stops answering for 5 s.
  void round_trip() {
    const std::uint32_t ping = seq_ + 1, pong = seq_ + 2;
    seq_ = pong;
    line_->word.store(ping, std::memory_order_release);  // pairs with the child's acquire load in wait_for()
    if (mode_ == WaitMode::futex) futex(&line_->word, FUTEX_WAKE, 1);
    wait_for(pong, ping);
  }

 private:
  static constexpr std::uint32_t kStop = 0xffffffffu;

  struct alignas(64) Line {
    std::atomic<std::uint32_t> word{0};
  };

  /// Waits until the word reads `want` (or kStop); `mine` is the value this side wrote last.
  bool wait_for(std::uint32_t want, std::uint32_t mine) {
    const std::uint64_t deadline = now_ns() + 5'000'000'000u;
    for (unsigned i = 1;; ++i) {
      const std::uint32_t w = line_->word.load(std::memory_order_acquire);
      if (w == want) return true;
      if (w == kStop) return false;
      if (mode_ == WaitMode::futex) {
        const timespec ts{0, 100'000'000};
        futex(&line_->word, FUTEX_WAIT, mine, &ts);
      } else {
        cpu_relax();
      }
      if ((mode_ == WaitMode::futex || (i & 4095) == 0) && now_ns() > deadline) {
        if (pid_ == 0) ::_exit(1);  // the child: the parent is gone or stuck
        throw std::runtime_error("pingpong: the other process did not answer within 5 s");
      }
    }
  }

  void serve_child() {
    for (std::uint32_t ping = 1;; ping += 2) {
      if (!wait_for(ping, ping - 1)) return;
      line_->word.store(ping + 1, std::memory_order_release);  // pairs with the parent's acquire load
      if (mode_ == WaitMode::futex) futex(&line_->word, FUTEX_WAKE, 1);
    }
  }

  WaitMode mode_;
  Line* line_ = nullptr;
  pid_t pid_ = -1;
  std::uint32_t seq_ = 0;
  std::optional<AffinityGuard> guard_;
};

/// Runs `iters` timed round trips and returns their durations in ns.
inline std::vector<double> pingpong_samples(WaitMode mode, int parent_cpu, int child_cpu, std::size_t iters) {
  PingPong pp(mode, parent_cpu, child_cpu);
  std::vector<double> rtt;
  rtt.reserve(iters);
  for (std::size_t i = 0; i < iters; ++i) {
    const std::uint64_t t0 = now_ns();
    pp.round_trip();
    rtt.push_back(double(now_ns() - t0));
  }
  return rtt;
}

}  // namespace anchor
