// cadre/detail/engine/engine_loop.hpp — what an engine process does: take commands from its rings, run them, post completions.
//
// Header-only on purpose: any program that calls cadre::init() can be an engine, so the loop is
// compiled into that program. Runs in the engine process only; never throws out of serve().
#pragma once

#include <cadre/detail/base/interrupt_gate.hpp>
#include <cadre/detail/engine/crash_report.hpp>
#include <cadre/detail/wire/ffi_call.hpp>
#include <cadre/detail/engine/output_capture.hpp>
#include <cadre/detail/engine/thread_caps.hpp>
#include <cadre/detail/shm/lb_queue.hpp>
#include <cadre/detail/shm/ring.hpp>
#include <cadre/detail/shm/segment.hpp>
#include <cadre/detail/base/task_clock.hpp>
#include <cadre/detail/shm/waiter.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/detail/wire/apply_record.hpp>
#include <cadre/detail/wire/call.hpp>
#include <cadre/namespace.hpp>
#include <cadre/this_engine.hpp>

#include <csetjmp>
#include <link.h>
#include <sys/time.h>
#include <ucontext.h>
#include <cxxabi.h>
#include <pthread.h>
#include <sys/eventfd.h>

#include <memory>
#include <optional>
#include <thread>
#include <utility>

namespace cadre::detail {

/// The header of a record, copied out of shared memory before it is validated and used.
struct RecordHead {
  std::uint64_t task_id;
  RecordKind kind;
  std::uint32_t len, aux;
  std::uint64_t block;
  std::uint64_t engine_gen, client_gen;
  std::uint64_t deadline_ns;  // load-balanced tasks: not started by then = timeout (0: none)
};

inline RecordHead copy_head(const RingSlot& s) noexcept {
  return {s.task_id, RecordKind(s.kind), s.len, s.aux, s.block, s.engine_gen, s.client_gen, s.started_ns};
}

/// Ends the engine process as soon as its launcher dies, even while a task runs: the serve loop only
/// notices between tasks, and an engine left running a long (or endless) task would be an orphan that
/// burns a CPU and holds the segment, though nobody can ever read its result. A thread of its own,
/// asleep in poll() on a pidfd of the launcher (kernels without pidfd: getppid() five times a second),
/// with every signal blocked so that SIGUSR2/SIGALRM/crash signals reach the thread that runs tasks.
class LauncherWatch {
 public:
  LauncherWatch(pid_t launcher, EngineSlot& me) noexcept : stop_(::eventfd(0, EFD_CLOEXEC)) {
    if (stop_ < 0 || launcher <= 0) return;
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      thread_ = std::thread([this, launcher, &me] { run(launcher, me); });
    } catch (...) {
      // No thread: the serve loop's own check between tasks remains.
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  LauncherWatch(const LauncherWatch&) = delete;
  LauncherWatch& operator=(const LauncherWatch&) = delete;
  ~LauncherWatch() {
    if (thread_.joinable()) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(stop_, &one, sizeof one);
      thread_.join();
    }
    if (stop_ >= 0) ::close(stop_);
  }

 private:
  void run(pid_t launcher, EngineSlot& me) noexcept {
    const int pidfd = pidfd_open(launcher);
    // Opened after the launcher died, the pidfd may name another process that got its pid: the
    // launcher must still be our parent once the pidfd is open.
    bool gone = ::getppid() != launcher;
    while (!gone) {
      pollfd fds[2] = {{stop_, POLLIN, 0}, {pidfd, POLLIN, 0}};
      const int rc = ::poll(fds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 200);
      if (rc > 0 && fds[0].revents) {
        if (pidfd >= 0) ::close(pidfd);
        return;  // the engine stops on its own
      }
      gone = pidfd >= 0 ? rc > 0 && fds[1].revents != 0 : ::getppid() != launcher;
    }
    me.state.store(std::uint32_t(EngineState::stopped), std::memory_order_release);
    ::_exit(0);  // nobody would reap, stop or read us any more
  }

  int stop_;
  std::thread thread_;
};

class Engine {
 public:
  Engine(Segment seg, std::uint32_t id)
      : seg_(std::move(seg)), id_(id), me_(seg_.engine(id)), ns_(&seg_, int(id)),
        token_(&seg_.header(), &me_.counted_runnable) {
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      commands_[c] = RingConsumer(seg_.command_ring(id, c));
      completions_[c] = RingProducer(seg_.completion_ring(id, c));
      if (commands_[c].broken() || completions_[c].broken()) {
        seg_.report_damage(Damage::rings);
        throw connection_error(damaged_segment_message(seg_.cluster(), "the indices of the rings between engine " + std::to_string(id) +
                                                                           " and client slot " + std::to_string(c) + " are out of range"));
      }
    }
    generation_ = me_.generation.load(std::memory_order_acquire);
    launcher_ = seg_.header().creator_pid;
  }

  /// Serves until the cluster stops or the launcher dies. Returns the process exit code.
  int serve() noexcept {
    auto& ctx = engine_context();
    ctx.id = int(id_);
    ctx.ns = &ns_;
    cap_threads();
    capture_.start();
    me_.crash[0] = 0;
    me_.completing.store(0, std::memory_order_relaxed);  // an earlier incarnation may have died posting
    install_crash_handlers(me_.crash, sizeof me_.crash, capture_.original_stderr());
    find_program_text(interrupt_state());
    interrupt_state().slot = &me_;
    struct sigaction sa{};
    sa.sa_sigaction = &Engine::on_interrupt;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGUSR2, &sa, nullptr);
    ::sigaction(SIGALRM, &sa, nullptr);  // the retry timer: same check, with the interrupted context
    me_.pid.store(::getpid(), std::memory_order_relaxed);
    me_.heartbeat_ns.store(now_ns(), std::memory_order_relaxed);
    me_.state.store(std::uint32_t(EngineState::idle), std::memory_order_release);
    const LauncherWatch watch(launcher_, me_);
    const Doorbell bell = doorbell_of(me_);
    for (;;) {
      bool worked = false;
      for (std::uint32_t c = 0; c < kMaxClients; ++c) {
        if (seg_.client(c).pid.load(std::memory_order_relaxed) <= 0 && !commands_[c].has_data()) continue;
        for (int batch = 0; batch < 64; ++batch) {
          const RingSlot* slot = commands_[c].peek();
          if (!slot) break;
          const RecordHead head = copy_head(*slot);
          if (head.kind == RecordKind::shutdown) return stop();
          handle(c, head, *slot, false);
          commands_[c].release();
          worked = true;
        }
      }
      if (worked) continue;
      if (claim_balanced()) continue;
      if (stopping()) return stop();
      const bool ready = wait_for(bell, token_, [&] { return any_command() || balanced_ready() || stopping(); }, 1'000'000'000u,
                                  std::exchange(woke_client_, false));
      if (ready) continue;  // the heartbeat is each task's finishing time, or an idle second's end
      me_.heartbeat_ns.store(now_ns(), std::memory_order_relaxed);
      if (::getppid() != launcher_) return stop();  // the launcher died: nobody would reap or stop us
      if (const char* why = seg_.damage()) {
        // The launcher stops the cluster too; an engine need not wait for it to stop serving garbage.
        std::fprintf(stderr, "cadre engine %u stops: %s\n", id_, damaged_segment_message(seg_.cluster(), why).c_str());
        return stop();
      }
      restore_indices();
      capture_.sweep();  // an idle second: forward any output the per-task probe missed
    }
  }

 private:
  bool stopping() const noexcept {
    return seg_.header().state.load(std::memory_order_acquire) == std::uint32_t(SegmentState::stopping);
  }

  /// Stores the ring indices this engine writes again where the segment's copies differ (damage): a
  /// client waiting for room in a ring that looks full for that reason is let go within a second.
  void restore_indices() noexcept {
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      commands_[c].republish();
      completions_[c].republish();
    }
  }

  bool any_command() noexcept {
    for (std::uint32_t c = 0; c < kMaxClients; ++c)
      if (commands_[c].has_data()) return true;
    return false;
  }

  bool balanced_ready() noexcept {
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      if (seg_.client(c).pid.load(std::memory_order_relaxed) <= 0) continue;
      for (const LbQueue& Q : seg_.lb_queues(c))
        if (lb_eligible(Q, id_) && lb_ready(Q)) return true;
    }
    return false;
  }

  /// Claims and runs one load-balanced task, if any queue this engine may serve has one.
  bool claim_balanced() noexcept {
    for (std::uint32_t k = 0; k < kMaxClients * kLbQueues; ++k) {
      const std::uint32_t i = (next_queue_ + k) % (kMaxClients * kLbQueues), c = i / kLbQueues, q = i % kLbQueues;
      if (seg_.client(c).pid.load(std::memory_order_relaxed) <= 0) continue;
      LbQueue& Q = *seg_.lb_queue(c, q);
      if (!lb_eligible(Q, id_)) continue;
      std::uint64_t pos;
      const bool claimed = lb_try_claim(Q, pos, [&](std::uint64_t p) noexcept {
        // Advertise before claiming, so a client that sees this engine die knows what it held.
        me_.lb_claim.store(lb_claim_word(c, q, p), std::memory_order_seq_cst);
        // And open the window that Segment::retire_client waits for (take_balanced closes it): a
        // retirement that did not see our claim in its drain sees this once our claim is visible.
        me_.completing.store(c + 1, std::memory_order_seq_cst);
      });
      if (!claimed) {
        // Pairs with retire_client's seq_cst load of completing: nothing of client c is held.
        me_.completing.store(0, std::memory_order_release);
        me_.lb_claim.store(0, std::memory_order_relaxed);
        continue;
      }
      LbSlot& s = lb_slot(Q, pos);
      const RecordHead head = copy_head(s.record);
      if (take_balanced(c, head, s)) handle(c, head, s.record, true);
      lb_free(Q, pos);
      // Pairs with the client's acquire-load of lb_claim in ShmTransport::balanced_claim.
      me_.lb_claim.store(0, std::memory_order_release);
      next_queue_ = i + 1;
      return true;
    }
    return false;
  }

  /// Decides what becomes of a load-balanced record just claimed, with the window claim_balanced
  /// opened (EngineSlot::completing), and closes it. Its block is the client's (client_tag) until here:
  /// we take it (transit_tag), so that retiring a dead client does not free it under the task, and the
  /// launcher reclaims it with our blocks if we die. While the window is open, retiring the client waits
  /// for us: a block we see as the client's cannot have been reclaimed and reallocated meanwhile. True:
  /// run it (handle() releases the block). False: it was dropped — a record of a client that is gone
  /// (retire_client did not drain it; its block is freed here), one the client aborted, or one whose
  /// block is not the client's (answered with decode_error).
  bool take_balanced(std::uint32_t c, const RecordHead& h, LbSlot& s) noexcept {
    ClientSlot& cs = seg_.client(c);
    const bool current = cs.pid.load(std::memory_order_seq_cst) > 0 && cs.generation.load(std::memory_order_seq_cst) == h.client_gen;
    const bool taken = h.block && seg_.take_back(h.block, client_tag(c), transit_tag(id_));
    // The client may have aborted it meanwhile: whoever moves it out of `queued` first wins.
    const bool run = current && lb_try_start(s);
    if (!run && taken) release_quietly(h.block, kNsRef);
    me_.completing.store(0, std::memory_order_release);
    if (run && h.block && !taken) {
      result_.clear();
      head_.clear();
      error_payload({"the block of load-balanced task " + std::to_string(h.task_id) + " does not belong to its client"});
      complete(c, h, Status::decode_error, now_ns(), Reply{});
      return false;
    }
    return run;
  }

  int stop() noexcept {
    ns_.clear();
    token_.set(false);
    me_.state.store(std::uint32_t(EngineState::stopped), std::memory_order_release);
    return 0;
  }

  void cap_threads() noexcept {
    const std::uint32_t n = std::max<std::uint32_t>(1, seg_.header().threads_per_engine);
    apply_thread_caps(n);
  }

  /// The payload of a record: inline bytes, or a validated block.
  std::span<const std::byte> payload(const RecordHead& h, const RingSlot& s) const {
    if (!h.block) {
      if (h.len > kInlineBytes) throw decode_error("inline payload of " + std::to_string(h.len) + " bytes exceeds the slot");
      return {s.data, h.len};
    }
    const BlockHeader* b = seg_.block(h.block);
    if (h.len > b->bytes) throw decode_error("payload of " + std::to_string(h.len) + " bytes exceeds its block");
    return {seg_.block_data(h.block), h.len};
  }

  /// Where a reply's payload is: result_ (posted inline, or copied into a block by complete()), or
  /// left in place in a namespace block (block != 0: `len` bytes at `at`, pinned for the client).
  struct Reply {
    std::uint64_t block = 0;
    std::uint32_t at = 0;
    std::size_t len = 0;
  };

  /// Runs one record of client c and posts its completion. Never throws: a failure is the task's error.
  void handle(std::uint32_t c, const RecordHead& h, const RingSlot& slot, bool balanced) noexcept {
    if (is_stale(c, h, balanced)) {
      drop_unrun(h, slot, balanced);
      return;
    }
    result_.clear();
    head_.clear();
    Status status = Status::ok;
    Reply reply;
    const std::uint64_t started = task_now_ns();
    me_.current_client.store(c, std::memory_order_relaxed);
    interrupt_gate().missed = 0;  // before current_task: an interrupt for this task comes after
    // seq_cst, then the record's status: pairs with a client's RingProducer::cancel, then interrupt().
    me_.current_task.store(h.task_id, std::memory_order_seq_cst);
    bool block_consumed = false;
    try {
      if (balanced && h.deadline_ns && started > h.deadline_ns)
        throw timeout_error("task " + std::to_string(h.task_id) + " did not start before its deadline (LoadBalancedView::timeout)");
      if (!balanced && cancelled(slot)) {
        drop_unrun(h, slot, false);
        block_consumed = true;
        throw aborted_error("task " + std::to_string(h.task_id) + " was aborted before it started (AsyncResult::abort)");
      }
      block_consumed = run(h, slot, payload(h, slot), reply, balanced);
    } catch (...) {
      status = error_status();
    }
    if (h.block && !block_consumed) release_quietly(h.block, kNsRef);
    if (h.kind == RecordKind::apply) capture_.collect(out_, err_);
    // Only this engine writes it (readers only count): a plain increment, not a locked one.
    me_.tasks_done.store(me_.tasks_done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    me_.current_task.store(0, std::memory_order_relaxed);
    complete(c, h, status, started, reply);
  }

  /// A record sent to an earlier incarnation of this engine, or by a client that has gone.
  bool is_stale(std::uint32_t c, const RecordHead& h, bool balanced) const noexcept {
    const ClientSlot& cs = seg_.client(c);
    return (!balanced && h.engine_gen != generation_) || h.client_gen != cs.generation.load(std::memory_order_acquire) ||
           cs.pid.load(std::memory_order_relaxed) <= 0;
  }

  /// Drops a record that will not run (stale, or cancelled by its client) and the block references it
  /// carried — except blocks of an earlier incarnation, which the launcher already reclaimed when it
  /// reaped that engine (they may belong to new values by now).
  void drop_unrun(const RecordHead& h, const RingSlot& slot, bool balanced) noexcept {
    if (h.block && (balanced || h.engine_gen == generation_)) release_quietly(h.block, kNsRef);
    if (h.kind == RecordKind::scatter_view) {
      try {
        Reader r(payload(h, slot));
        r.str(4096);
        release_quietly(r.get<std::uint64_t>(), kNsRef);
      } catch (...) {
      }
    }
  }

  /// Runs one record by its kind; the result goes to result_ (or reply). True when the namespace
  /// adopted the record's block reference (push of a large value).
  bool run(const RecordHead& h, const RingSlot& slot, std::span<const std::byte> data, Reply& reply, bool balanced) {
    switch (h.kind) {
      case RecordKind::apply:
        if (!run_interruptible(data, balanced ? nullptr : &slot)) {
          result_.clear();
          throw aborted_error("task " + std::to_string(h.task_id) + " was interrupted on engine " + std::to_string(id_) +
                              " (AsyncResult::abort)");
        }
        return false;
      case RecordKind::push: return run_push(h, slot, data);
      case RecordKind::pull: run_pull(data, reply); return false;
      case RecordKind::erase: {
        Reader r(data);
        ns_.erase(r.str(4096));
        return false;
      }
      case RecordKind::names: encode_typed(ns_.names(), result_); return false;
      case RecordKind::scatter_view: run_scatter_view(data); return false;
      default: throw decode_error("unknown record kind " + std::to_string(unsigned(h.kind)));
    }
  }

  /// pull: [name]. A large value's payload stays where it is, pinned, and the client reads it in place;
  /// anything else is copied into result_ as a typed value.
  void run_pull(std::span<const std::byte> data, Reply& reply) {
    Reader r(data);
    const auto name = r.str(4096);
    const auto where = NamespaceAccess::locate(ns_, name);
    if (where.raw_count) {
      // A slice of a shared array has no header in front: send a copy with one.
      const std::uint64_t n = where.raw_count == ~std::uint64_t(0) ? 0 : where.raw_count;
      encode_raw_envelope(result_, where.value.type_hash, where.value.type, n, where.value.payload);
    } else if (where.block && sizeof(std::uint64_t) + sizeof(std::uint32_t) + where.value.type.size() <= kInlineBytes) {
      // The payload stays where it is: the client reads it in place, then drops this pin.
      seg_.retain(where.block, kPin);
      reply = {where.block, std::uint32_t(where.at), where.value.payload.size()};
      head_.clear();
      put_type_head(head_, where.value.type_hash, where.value.type);
    } else if (where.block) {
      // A type name too long for the slot's inline head: send a copy of the whole envelope.
      const std::size_t off = envelope_payload_offset(where.value.type.size());
      result_.assign(off, std::byte{0});
      const EnvelopeHeader eh{where.value.type_hash, std::uint32_t(where.value.type.size()), std::uint32_t(off),
                              where.value.payload.size()};
      std::memcpy(result_.data(), &eh, sizeof eh);
      std::memcpy(result_.data() + sizeof eh, where.value.type.data(), where.value.type.size());
      result_.insert(result_.end(), where.value.payload.begin(), where.value.payload.end());
    } else {
      result_.assign(where.envelope.begin(), where.envelope.end());
    }
  }

  /// The status of the exception being handled, with its error payload in result_.
  Status error_status() noexcept {
    try {
      throw;
    } catch (const name_error& e) {
      error_payload({e.name()});
      return Status::name_error;
    } catch (const type_error& e) {
      error_payload({e.stored(), e.requested(), e.what()});
      return Status::type_error;
    } catch (const function_error& e) {
      error_payload({e.what()});
      return Status::function_error;
    } catch (const capacity_error& e) {
      error_payload({e.what()});
      return Status::capacity_error;
    } catch (const decode_error& e) {
      error_payload({e.what()});
      return Status::decode_error;
    } catch (const aborted_error& e) {
      error_payload({e.what()});
      return Status::aborted;
    } catch (const timeout_error& e) {
      error_payload({e.what()});
      return Status::timeout;
    } catch (const std::exception& e) {
      error_payload({current_exception_type(), e.what()});
      return Status::remote_error;
    } catch (...) {
      error_payload({current_exception_type(), "(an exception not derived from std::exception)"});
      return Status::remote_error;
    }
  }

  /// Whether the client cancelled this command record (RingProducer::cancel).
  static bool cancelled(const RingSlot& slot) noexcept {
    return slot.status.load(std::memory_order_seq_cst) == std::uint32_t(Status::aborted);
  }

  /// Runs an apply record; false when a client interrupted it (SIGUSR2 for this very task). The jump
  /// out of the user's function skips its destructors: what it held is leaked, as with any
  /// interrupted computation; the engine itself is in a clean state and serves on, because the jump
  /// is armed only while the user's function runs (interrupt_gate.hpp), never while the engine
  /// parses, resolves (under a lock), decodes arguments or encodes the result. `command`: the record
  /// in a command ring, whose cancel mark call_permitted checks.
  bool run_interruptible(std::span<const std::byte> data, const RingSlot* command) {
    auto& g = interrupt_gate();
    // No saved mask: saving it is a sigprocmask system call per task (~1 µs on a VM, more than the
    // rest of a round trip). The handler ran with its signal blocked, so the jump's landing unblocks it.
    if (sigsetjmp(g.jump, 0) != 0) {
      g.armed = 0;
      g.permitted = 0;
      sigset_t handled;
      sigemptyset(&handled);
      sigaddset(&handled, SIGUSR2);
      sigaddset(&handled, SIGALRM);
      ::sigprocmask(SIG_UNBLOCK, &handled, nullptr);
      return false;
    }
    return run_apply(data, command);
  }

  /// Calls f, a thunk whose call of the user's function abort() may interrupt; false (nothing
  /// called) when the client cancelled the command record since the engine took it.
  template <class F>
  static bool call_permitted(const RingSlot* command, F&& f) {
    if (command && cancelled(*command)) return false;
    struct Permit {
      Permit() noexcept { interrupt_gate().permitted = 1; }
      ~Permit() { interrupt_gate().permitted = 0; }
    } permit;
    f();
    return true;
  }

  /// What the interrupt handler checks besides the gate.
  struct InterruptState {
    EngineSlot* slot = nullptr;
    std::uintptr_t text_lo = 0, text_hi = 0;  // executable code of the main program
  };
  static InterruptState& interrupt_state() noexcept {
    static InterruptState s;
    return s;
  }

  /// Where the main program's code lies: a task is only interrupted while it runs there, never inside
  /// a shared library (jumping out of malloc or a library lock would wreck the engine).
  static void find_program_text(InterruptState& ix) noexcept {
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
          auto& s = *static_cast<InterruptState*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const auto& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
            const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
            if (!s.text_lo || lo < s.text_lo) s.text_lo = lo;
            if (hi > s.text_hi) s.text_hi = hi;
          }
          return 1;  // the first entry is the main program
        },
        &ix);
  }

  static void on_interrupt(int, siginfo_t*, void* context) {
    auto& ix = interrupt_state();
    if (!ix.slot || ix.slot->abort_task.load() != ix.slot->current_task.load() ||
        ix.slot->abort_client.load() != ix.slot->current_client.load())
      return;
    auto& g = interrupt_gate();
    if (!g.armed) {  // in cadre's own code: UserCall takes it before the user's function starts
      g.missed = 1;
      return;
    }
#if defined(__x86_64__)
    const auto pc = std::uintptr_t(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    const auto pc = std::uintptr_t(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#else
    const std::uintptr_t pc = ix.text_lo;
#endif
    if (pc < ix.text_lo || pc >= ix.text_hi) {
      // In a library (malloc, a lock, I/O): ask again in a millisecond.
      itimerval t{};
      t.it_value.tv_usec = 1000;
      ::setitimer(ITIMER_REAL, &t, nullptr);
      return;
    }
    g.armed = 0;
    siglongjmp(g.jump, 1);
  }


  bool run_apply(std::span<const std::byte> data, const RingSlot* command) {
    // The record is self-delimiting: one that starts with the bytes of the last call's head (mode,
    // code references, callable) makes the same call, so the common case — the same function again —
    // compares those bytes and neither parses nor resolves anything.
    LastCall& last = last_call_;
    if (last.thunk && data.size() >= last.head.size() &&
        std::memcmp(data.data(), last.head.data(), last.head.size()) == 0) {
      CallFrame frame{last.fn, data.subspan(last.callable_at, last.callable_len), data.subspan(last.head.size()), &ns_,
                      &result_};
      return call_permitted(command, [&] { last.thunk(frame); });
    }
    const ApplyRecord rec = read_apply_record(data);
    if (rec.mode == CallMode::ffi) return call_permitted(command, [&] { call_through_ffi(rec, result_); });
    Thunk thunk = reinterpret_cast<Thunk>(resolve_cached(rec.thunk, last_thunk_));
    void* fn = rec.fn.empty() ? nullptr : resolve_cached(rec.fn, last_fn_);
    last.thunk = nullptr;  // until the head below is whole
    last.head.assign(data.begin(), data.begin() + (rec.args.data() - data.data()));
    last.callable_at = std::size_t(rec.callable.data() - data.data());
    last.callable_len = rec.callable.size();
    last.fn = fn;
    last.thunk = thunk;
    CallFrame frame{fn, rec.callable, rec.args, &ns_, &result_};
    return call_permitted(command, [&] { thunk(frame); });
  }

  /// What the last thunk-mode apply record resolved to, and the bytes before its arguments.
  struct LastCall {
    std::vector<std::byte> head;
    Thunk thunk = nullptr;
    void* fn = nullptr;
    std::size_t callable_at = 0, callable_len = 0;
  };

  /// A code reference's bytes (take_code_ref), resolved; repeated calls of the same function skip the lookup.
  struct ResolvedRef {
    std::vector<std::byte> bytes;
    void* ptr = nullptr;
  };
  static void* resolve_cached(std::span<const std::byte> ref, ResolvedRef& last) {
    // Equal bytes decode to the same function. So the common case (the same function as last time)
    // compares bytes and decodes nothing.
    if (last.ptr && ref.size() == last.bytes.size() && std::memcmp(ref.data(), last.bytes.data(), ref.size()) == 0)
      return last.ptr;
    void* const fn = resolve(code_ref_of(ref));
    last.bytes.assign(ref.begin(), ref.end());  // before the pointer: a throw here leaves the old pair whole
    last.ptr = fn;
    return fn;
  }

  /// push: [name][align 16][typed value] inline, or the name inline and the typed value in a block.
  /// Returns true when the namespace adopted the block's reference.
  bool run_push(const RecordHead& h, const RingSlot& slot, std::span<const std::byte> data) {
    if (h.block) {
      if (h.aux > kInlineBytes) throw decode_error("push name too long");
      Reader names({slot.data, h.aux});
      const auto name = names.str(4096);
      parse_typed(data);  // validate before adopting
      if (data.size() >= NamespaceAccess::kBlockThreshold) {
        NamespaceAccess::adopt_block(ns_, name, h.block, 0, data.size());
        return true;
      }
      NamespaceAccess::store_bytes(ns_, name, data);
      return false;
    }
    Reader r(data);
    const auto name = r.str(4096);
    r.align(16);
    NamespaceAccess::store_bytes(ns_, name, data.subspan(r.pos()));
    return false;
  }

  /// scatter_view: [str name][u64 block][u64 byte offset][u64 count][u64 element size][type head]. The
  /// client took one namespace reference on the block for us.
  void run_scatter_view(std::span<const std::byte> data) {
    Reader r(data);
    const auto name = std::string(r.str(4096));
    const auto block = r.get<std::uint64_t>(), at = r.get<std::uint64_t>(), count = r.get<std::uint64_t>(),
               elem = r.get<std::uint64_t>();
    const TypedView type = typed_from_head(data.subspan(r.pos()), {});
    const BlockHeader* b = seg_.block(block);
    if (elem == 0 || elem > 16 || at > b->bytes || count > (b->bytes - at) / elem || at % elem != 0) {
      release_quietly(block, kNsRef);
      throw decode_error("scatter view outside its block");
    }
    NamespaceAccess::adopt_view(ns_, name, block, type.type_hash, std::string(type.type), {seg_.block_data(block) + at, count * elem}, count);
  }

  void error_payload(std::initializer_list<std::string_view> ss) {
    result_.clear();
    Writer w(result_);
    put_strings(w, ss);
  }

  static std::string current_exception_type() {
    if (auto* t = abi::__cxa_current_exception_type()) return demangle(t->name());
    return "unknown";
  }

  void release_quietly(std::uint64_t block, std::uint64_t refs) noexcept {
    try {
      seg_.release(block, refs);
    } catch (...) {
    }
  }

  /// Posts a completion to client c, waiting for room if the client is slow to drain.
  void complete(std::uint32_t c, const RecordHead& h, Status status, std::uint64_t started, const Reply& reply) noexcept {
    std::uint64_t block = reply.block;
    std::uint32_t at = reply.at;
    // Announce the completion before checking that the client is still there: whoever retires the
    // slot bumps its generation and then waits for `completing` to clear (Segment::retire_client).
    me_.completing.store(c + 1, std::memory_order_seq_cst);
    struct Done {
      EngineSlot& me;
      ~Done() { me.completing.store(0, std::memory_order_release); }
    } done{me_};
    ClientSlot& cs = seg_.client(c);
    if (cs.pid.load(std::memory_order_seq_cst) <= 0 || cs.generation.load(std::memory_order_seq_cst) != h.client_gen) {
      // The client is gone (or its slot is being retired): nobody will read this.
      if (block) release_quietly(block, kPin);
      out_.clear();
      err_.clear();
      return;
    }
    const bool output = !block && (!out_.empty() || !err_.empty());
    if (output) put_output_trailer(result_, out_, err_);
    out_.clear();
    err_.clear();
    std::size_t len = block ? reply.len : result_.size();
    try {
      if (!block && len > kInlineBytes) {
        block = seg_.alloc_block(len, client_tag(c), kPin);
        std::memcpy(seg_.block_data(block), result_.data(), len);
        at = 0;
      }
    } catch (const capacity_error&) {
      // The message must fit the slot: no block could be had for it either.
      status = Status::capacity_error;
      error_payload({"no room in the cluster's segment for a result of " + std::to_string(len) +
                     " bytes; erase values or start the cluster with a larger segment"});
      len = std::min(result_.size(), kInlineBytes);
      block = 0;
    }
    RingSlot* s = nullptr;
    for (unsigned spins = 0; !(s = completions_[c].try_claim()); ++spins) {
      const pid_t client = seg_.client(c).pid.load(std::memory_order_relaxed);
      if (completions_[c].broken()) seg_.report_damage(Damage::rings);  // room would never come
      if (seg_.client(c).generation.load(std::memory_order_relaxed) != h.client_gen || client <= 0 ||
          completions_[c].broken() || ((spins & 1023) == 1023 && (!process_alive(client) || stopping() || seg_.damage()))) {
        if (block) release_quietly(block, kPin);
        return;  // the client went away, or the cluster is stopping or damaged
      }
      if (spins < 64) cpu_relax();
      else ::usleep(50);
    }
    if (status != Status::ok) head_.clear();
    const std::uint64_t finished = task_now_ns();
    me_.heartbeat_ns.store(finished, std::memory_order_relaxed);
    // Inline: the type head of a reply whose payload is in a block (head_ is only set with one), or
    // the whole result.
    const std::span<const std::byte> inline_payload =
        block ? std::span<const std::byte>(head_) : std::span<const std::byte>(result_.data(), len);
    const CompletionHeader done_header{
        {h.task_id, RecordKind::completion, status, std::uint32_t(len), at, block, generation_, std::uint32_t(h.client_gen)},
        std::uint16_t(head_.size() | (output && status != Status::capacity_error ? kHasOutput : 0)),
        started,
        finished};
    write_record(*s, done_header, inline_payload);
    completions_[c].publish();
    woke_client_ |= doorbell_of(seg_.client(c)).ring();
  }

  Segment seg_;
  std::uint32_t id_;
  EngineSlot& me_;
  Namespace ns_;
  RunnableToken token_;
  RingConsumer commands_[kMaxClients];
  RingProducer completions_[kMaxClients];
  std::vector<std::byte> result_;
  ResolvedRef last_thunk_, last_fn_;
  LastCall last_call_;
  std::uint32_t next_queue_ = 0;
  OutputCapture capture_;
  std::string out_, err_;
  std::vector<std::byte> head_;  // type head of a split reply (payload in a block)
  std::uint32_t generation_ = 0;
  pid_t launcher_ = 0;
  bool woke_client_ = false;  // a completion woke a sleeping client: spin the whole budget for its next command
};

}  // namespace cadre::detail
