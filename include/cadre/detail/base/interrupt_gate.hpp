// cadre/detail/base/interrupt_gate.hpp — where abort() may cut a running task short: inside the user's function only.
//
// abort() of a running task signals its engine (SIGUSR2), whose handler jumps out of the task
// (Engine::on_interrupt). A jump skips destructors and leaves whatever the code it left was doing
// half done: harmless in the user's computation, fatal in cadre's own (a lock held, a static's
// initialization left pending, so the next task hangs). So the jump is armed only while the
// user's function runs (UserCall, around the call in the thunks), and an interrupt that comes
// while it is not armed is noted as missed and taken as the user's function is about to start.
#pragma once

#include <atomic>
#include <csetjmp>
#include <csignal>

namespace cadre::detail {

struct InterruptGate {
  sigjmp_buf jump;                       // set by the engine before each interruptible apply
  volatile sig_atomic_t permitted = 0;   // the engine runs an apply that abort() may interrupt
  volatile sig_atomic_t armed = 0;       // the user's function runs: an interrupt jumps
  volatile sig_atomic_t missed = 0;      // an interrupt for the current task came while not armed
};

/// The process's gate (an engine runs one task at a time, on its main thread).
inline InterruptGate& interrupt_gate() noexcept {
  static InterruptGate gate;
  return gate;
}

/// Arms the interrupt for the lifetime of a call to the user's function, when the engine permits
/// it; an interrupt missed before jumps now, before the function starts.
class UserCall {
 public:
  UserCall() noexcept {
    InterruptGate& g = interrupt_gate();
    if (!g.permitted) return;
    g.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);  // armed before missed is read, as the handler sees it
    if (g.missed) {
      g.armed = 0;
      siglongjmp(g.jump, 1);
    }
  }
  ~UserCall() { interrupt_gate().armed = 0; }
  UserCall(const UserCall&) = delete;
  UserCall& operator=(const UserCall&) = delete;
};

}  // namespace cadre::detail
