// cadre/detail/client/transport.hpp — the one narrow interface between views/futures and how records reach engines.
//
// Today the only implementation is ShmTransport (rings in a shared segment, shm_transport.hpp).
// A second one (MPI across hosts) implements these few calls; views and futures do not change.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

namespace cadre::detail {

/// Memory for a payload that an engine will own once it is sent.
struct OutBlock {
  std::uint64_t handle = 0;   // transport-specific (a block offset for shared memory)
  std::span<std::byte> bytes;
};

/// One finished task, as handed to Transport::poll's callback.
struct Completion {
  std::uint32_t engine = 0;
  std::uint64_t task_id = 0;
  Status status = Status::ok;
  std::uint64_t started_ns = 0, finished_ns = 0;
  std::span<const std::byte> head;   // non-empty: the type head of a split typed value (bytes is its payload)
  std::span<const std::byte> bytes;  // the result or error payload; valid during the callback only...
  std::shared_ptr<void> hold;        // ...unless hold is set: holding it keeps `bytes` valid
  std::string out, err;              // what the task printed on its engine
};

struct EngineHealth {
  bool alive = true;
  std::string crash;          // the stack at the crash, when it died of a signal it could report
  int pid = 0;
  int signal = 0;             // the signal that killed it, when known
  std::uint32_t generation = 0;
  // The last incarnation that died (generation 0: none yet), kept after a replacement started.
  int last_pid = 0, last_signal = 0;
  std::uint32_t last_generation = 0;
};

/// Where Transport::poll hands completions: a reference to a callable, without std::function's
/// type-erasure manager (poll runs once per wait, on every round trip).
class CompletionSink {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CompletionSink>)
  CompletionSink(F& f) noexcept  // NOLINT(google-explicit-constructor): a lambda passes as a sink
      : obj_(&f), call_([](void* o, Completion& c) { (*static_cast<F*>(o))(c); }) {}
  void operator()(Completion& c) const { call_(obj_, c); }

 private:
  void* obj_;
  void (*call_)(void*, Completion&);
};

/// Memory that the client and the engines address alike (a SharedVector's array): the client writes it
/// in place, engines read their slices in place. Freed when the last holder lets go: this object
/// (shared by SharedVector handles, and able to outlive the Transport that made it) and each engine
/// value it was scattered to (Transport::retain_shared / release_shared).
class SharedRegion {
 public:
  virtual ~SharedRegion() = default;
  std::span<std::byte> bytes;
  std::uint64_t handle = 0;  // how records name it (a block offset for shared memory)
  /// The same value as the Transport's memory_identity(), for the transport that made it.
  virtual const void* memory_identity() const noexcept = 0;
  /// A short description for messages ("cluster 'default'").
  virtual std::string describe() const = 0;
};

/// What every way of reaching engines provides to views, futures and the codec. A transport must:
/// - deliver the records it sends to one engine in the order they were sent, each at most once;
/// - report each record's completion once, through poll(), with the engine's status and payload;
/// - report an engine's death through health(), so that its tasks fail instead of waiting for ever;
/// - keep allocate()d payloads and shared regions readable by engines in place (zero copy) for as
///   long as a record or an engine value holds them.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::uint32_t engine_count() const = 0;
  /// True when the engines run this very executable, so every function of it can be called there.
  virtual bool engines_run_this_program() const = 0;
  /// Memory for a payload of `bytes` that engine e will own. Throws capacity_error.
  virtual OutBlock allocate(std::uint32_t e, std::size_t bytes) = 0;
  /// Gives back memory from allocate() that was never sent.
  virtual void discard(const OutBlock& b) noexcept = 0;
  enum class SendResult { sent, full, engine_gone, broken };
  /// Sends a record; `full` when engine e's queue is full (poll, then try again), `engine_gone` when
  /// the engine was found dead (the task cannot be sent to it), `broken` when the queue is damaged
  /// (damage() says how; waiting for room would wait for ever). `head` is copied; `body`, if given, came
  /// from allocate(e): the engine owns it once this returns `sent`, nobody needs it after
  /// `engine_gone` (it is freed), and it is still the caller's after `full` and `broken`. Once sent,
  /// `position` names the record for cancel_queued.
  [[nodiscard]] virtual SendResult try_send(std::uint32_t e, std::uint64_t task, RecordKind kind, std::uint32_t aux,
                              std::span<const std::byte> head, const OutBlock* body, std::uint64_t& position) = 0;
  /// Marks task's record at `position` of engine e's queue so that the engine skips it, completing it
  /// with Status::aborted; false when the engine has already finished it. The engine may be starting it
  /// at this moment: call interrupt() after this, and one of the two reaches it. The caller serialises
  /// this with its try_send calls to engine e.
  [[nodiscard]] virtual bool cancel_queued(std::uint32_t e, std::uint64_t position, std::uint64_t task) = 0;
  /// Hands every completion that has arrived to f; returns how many.
  virtual std::size_t poll(CompletionSink f) = 0;
  /// Sleeps until a completion may have arrived, or at most timeout_ns.
  virtual void wait(std::uint64_t timeout_ns) = 0;
  /// Why this transport cannot be used any more (what it shares with the engines was damaged), or empty:
  /// the message of the connection_error that the tasks in flight then fail with. Called once per health
  /// period while tasks are pending, and when a send cannot go on; never per record.
  virtual std::string damage() = 0;
  /// Whether engine e (the incarnation that tasks are sent to now) is alive. With probe = false, only
  /// what the launcher has recorded (cheap, for the hot path); with probe = true, the OS is asked too.
  virtual EngineHealth health(std::uint32_t e, bool probe = true) = 0;
  // ---- load-balanced queues: engines that are free take tasks from them ---------------------

  /// The queue whose tasks only the engines in engine_mask (bit e) may run; made on first use.
  /// Throws cadre::error when this client already uses the maximum number of target sets.
  virtual std::uint32_t balanced_queue(std::uint64_t engine_mask) = 0;
  /// Queues a task on queue q; false when q is full. `deadline_ns` (0: none): an engine that takes
  /// it later fails it with a timeout instead of running it. Sets pos to its position in q.
  [[nodiscard]] virtual bool try_send_balanced(std::uint32_t q, std::uint64_t task, RecordKind kind, std::uint32_t aux,
                                 std::span<const std::byte> head, std::uint64_t deadline_ns, std::uint64_t& pos) = 0;
  /// Aborts the queued task at (q, pos): true if no engine had started it (it never will).
  [[nodiscard]] virtual bool cancel_balanced(std::uint32_t q, std::uint64_t pos) = 0;
  /// Frees the slot of a task taken by an engine that died before freeing it.
  virtual void release_balanced(std::uint32_t q, std::uint64_t pos) = 0;
  /// Positions below this have been taken by engines.
  virtual std::uint64_t balanced_taken(std::uint32_t q) = 0;
  /// The engines allowed on queue q.
  virtual std::uint64_t balanced_mask(std::uint32_t q) = 0;
  /// (queue, position) engine e is taking or running for this client; false when none. With
  /// dead = true: what it held when it died.
  virtual bool balanced_claim(std::uint32_t e, std::uint32_t& q, std::uint64_t& pos, bool dead = false) = 0;

  /// Interrupts task `task` of this client if engine e is running it right now; true if signalled.
  virtual bool interrupt(std::uint32_t e, std::uint64_t task) = 0;

  /// Per engine: records queued in its own queue, whether it is running something, tasks done.
  struct EngineLoad {
    std::uint64_t queued = 0, done = 0;
    bool running = false;
  };
  virtual EngineLoad load(std::uint32_t e) = 0;

  // ---- shared regions: SharedVector arrays, handed to engines without a copy -----------------

  /// A zeroed region of `bytes` that client and engines address alike. Throws capacity_error.
  virtual std::shared_ptr<SharedRegion> allocate_shared(std::size_t bytes) = 0;
  /// One more holder of region r: an engine value made from it, which releases it with the value.
  virtual void retain_shared(const SharedRegion& r) = 0;
  /// Gives back what retain_shared() took, when the record carrying it never reached its engine.
  virtual void release_shared(const SharedRegion& r) noexcept = 0;

  /// Identifies the shared memory this transport uses (to reject arrays of another cluster).
  virtual const void* memory_identity() const noexcept = 0;

  /// A short description for messages ("cluster 'default'").
  virtual std::string describe() const = 0;
};

}  // namespace cadre::detail
