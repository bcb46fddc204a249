// bench/anchors/fanout.hpp — one process sending a word to N others and waiting for all their answers.
//
// The floor under `all.apply_sync(noop)` when there are more processes than CPUs: N forked children,
// each with its own cache line to poll, answer into one shared counter. Nobody is pinned (cadre's
// engines are not either). Two ways to wait: every waiter polls and calls sched_yield between polls
// (no process ever sleeps, so no CPU ever goes idle), or every waiter sleeps on a futex at once.
// Registered next to cadre in bench/roundtrip_bench.cpp so the ratio is taken within one run.
//
//     anchor::FanOut f(anchor::FanOut::Wait::yield, 4);
//     for (...) { auto t0 = anchor::now_ns(); f.round_trip(); ns.push_back(anchor::now_ns() - t0); }
#pragma once

#include "pingpong.hpp"

#include <vector>

namespace anchor {

class FanOut {
 public:
  enum class Wait { yield, futex };

  FanOut(Wait wait, int children) : wait_(wait), n_(std::uint32_t(children)) {
    if (children < 1 || children > kMaxChildren) throw std::invalid_argument("fanout: 1 to 16 children");
    void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("fanout: mmap failed");
    s_ = new (p) Shared{};
    const pid_t parent = ::getpid();
    for (std::uint32_t k = 0; k < n_; ++k) {
      const pid_t pid = ::fork();
      if (pid < 0) {
        stop();
        throw std::runtime_error("fanout: fork failed");
      }
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(0);
        serve_child(k);
        ::_exit(0);
      }
      pids_.push_back(pid);
    }
    for (int i = 0; i < 1000; ++i) round_trip();  // warm up: the children may still be starting
  }

  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  ~FanOut() { stop(); }

  /// Sends one word to every child and waits until all have answered. Throws after 5 s without answers.
  void round_trip() {
    ++seq_;
    for (std::uint32_t k = 0; k < n_; ++k) {
      s_->command[k].word.store(seq_, std::memory_order_release);  // pairs with the child's acquire load
      if (wait_ == Wait::futex) futex(&s_->command[k].word, FUTEX_WAKE, 1);
    }
    const std::uint32_t all = seq_ * n_;
    const std::uint64_t deadline = now_ns() + 5'000'000'000u;
    for (std::uint32_t d; (d = s_->answered.word.load(std::memory_order_acquire)) != all;) {
      pause(&s_->answered.word, d);
      if (now_ns() > deadline) throw std::runtime_error("fanout: the children did not answer within 5 s");
    }
  }

 private:
  static constexpr int kMaxChildren = 16;
  static constexpr std::uint32_t kStop = 0xffffffffu;

  struct alignas(64) Line {
    std::atomic<std::uint32_t> word{0};
  };
  struct Shared {
    Line command[kMaxChildren];
    Line answered;  // answers so far, over all rounds
  };

  /// One wait step while *w still reads `seen`.
  void pause(std::atomic<std::uint32_t>* w, std::uint32_t seen) const {
    if (wait_ == Wait::yield) {
      ::sched_yield();
    } else {
      const timespec ts{0, 100'000'000};
      futex(w, FUTEX_WAIT, seen, &ts);
    }
  }

  void serve_child(std::uint32_t k) {
    std::uint32_t seen = 0;
    const std::uint64_t give_up_after = 5'000'000'000u;
    std::uint64_t idle_since = now_ns();
    for (;;) {
      const std::uint32_t c = s_->command[k].word.load(std::memory_order_acquire);
      if (c == kStop) return;
      if (c == seen) {
        pause(&s_->command[k].word, seen);
        if (now_ns() - idle_since > give_up_after) return;  // the parent is gone or stuck
        continue;
      }
      seen = c;
      const std::uint32_t d = s_->answered.word.fetch_add(1, std::memory_order_acq_rel) + 1;
      // The parent waits for the last answer only: waking it for each one would cost it n wake-ups.
      if (wait_ == Wait::futex && d % n_ == 0) futex(&s_->answered.word, FUTEX_WAKE, 1);
      idle_since = now_ns();
    }
  }

  void stop() {
    for (std::uint32_t k = 0; k < n_; ++k) {
      s_->command[k].word.store(kStop, std::memory_order_release);
      futex(&s_->command[k].word, FUTEX_WAKE, 1);
    }
    for (pid_t pid : pids_) {
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
    pids_.clear();
    ::munmap(s_, sizeof(Shared));
    s_ = nullptr;
  }

  Wait wait_;
  std::uint32_t n_;
  Shared* s_ = nullptr;
  std::vector<pid_t> pids_;
  std::uint32_t seq_ = 0;
};

}  // namespace anchor
