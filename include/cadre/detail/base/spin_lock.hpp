// cadre/detail/base/spin_lock.hpp — a lock for critical sections of a few dozen instructions.
//
// The client's table of tasks in flight is locked twice per round trip (the task goes in when it is
// sent and out when its completion arrives), and the drain lock once. A std::mutex pair is two atomic
// read-modify-writes plus two calls into libpthread (~50 instructions, callgrind of a hot
// apply_sync loop); this lock is one atomic exchange to take and one plain release store to give
// back. Use it only where the holder never waits for another thread (it may copy or allocate): a
// waiter spins, then yields its CPU until the holder is done.
#pragma once

#include <cadre/detail/base/sys.hpp>

#include <atomic>
#include <thread>

namespace cadre::detail {

class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) [[unlikely]]
      wait_until_free();
  }

  [[nodiscard]] bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  void wait_until_free() const noexcept {
    // Spinning on a plain load keeps the line shared until the holder releases it. The holder may have
    // been preempted (2 CPUs, more processes): after a short spin, give it the CPU.
    for (unsigned i = 0; locked_.load(std::memory_order_relaxed); ++i) {
      if (i < 128) cpu_relax();
      else std::this_thread::yield();
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace cadre::detail
