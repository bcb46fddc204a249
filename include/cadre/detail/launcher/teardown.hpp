// cadre/detail/launcher/teardown.hpp — SIGINT/SIGTERM/SIGHUP in a launcher: kill its engines, remove its segments, then die.
//
// A program that holds an embedded Cluster and is interrupted (Ctrl-C during wait_interactive or a
// long get) must not leave engines or a /dev/shm segment behind. Destructors do not run when a signal
// kills a process, so the launcher keeps what must be torn down in a fixed table that an
// async-signal-safe handler can walk. The handler is installed only where the signal's disposition
// is the default one: a program's own handlers are left alone.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace cadre::detail {

struct TeardownEntry {
  std::atomic<bool> used{false};
  pid_t owner = 0;  // the launcher; a forked child inherits the table but owns none of it
  char shm[160] = {};
  std::atomic<pid_t> pids[kMaxEngines] = {};
};

inline constexpr int kTeardownEntries = 16;

inline TeardownEntry* teardown_table() noexcept {
  static TeardownEntry table[kTeardownEntries];
  return table;
}

inline void teardown_handler(int sig) {
  for (int i = 0; i < kTeardownEntries; ++i) {
    TeardownEntry& e = teardown_table()[i];
    if (!e.used.load() || e.owner != ::getpid()) continue;
    for (auto& p : e.pids)
      if (pid_t pid = p.load(); pid > 0) ::kill(pid, SIGKILL);  // engines this process started and has not reaped
    ::shm_unlink(e.shm);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

inline void teardown_install() noexcept {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old{};
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
    struct sigaction sa{};
    sa.sa_handler = teardown_handler;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

/// Registers a segment (its /dev/shm name) to remove on a fatal signal; returns its entry, or -1.
inline int teardown_register(const std::string& shm) noexcept {
  teardown_install();
  for (int i = 0; i < kTeardownEntries; ++i) {
    TeardownEntry& e = teardown_table()[i];
    bool expected = false;
    if (!e.used.load() && e.used.compare_exchange_strong(expected, true)) {
      for (auto& p : e.pids) p.store(0);
      e.owner = ::getpid();
      std::snprintf(e.shm, sizeof e.shm, "/%s", shm.c_str());
      return i;
    }
  }
  return -1;
}

inline void teardown_set_pid(int entry, int engine, pid_t pid) noexcept {
  if (entry >= 0 && engine >= 0 && engine < int(kMaxEngines)) teardown_table()[entry].pids[engine].store(pid);
}

inline void teardown_unregister(int entry) noexcept {
  if (entry >= 0) teardown_table()[entry].used.store(false);
}

}  // namespace cadre::detail
