// cadre/detail/client/task_state.hpp — TaskState: one task the client sent, and what came back for it.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace cadre::detail {

inline constexpr std::uint32_t kAnyEngine = ~0u;

struct TaskState;

/// What few tasks carry, kept apart so that the common task is small: a load-balanced apply_async
/// allocates its task with its result, and 100,000 of them in flight are that many blocks to touch.
struct TaskExtras {
  std::vector<std::byte> large;         // a payload over TaskState::kSmall bytes not held in a block
  std::vector<std::byte> type_head;     // set when the payload is a split typed value (wire.hpp)
  std::string out, err;                 // what the task printed on its engine
  // Load-balanced tasks with retries or dependencies:
  std::vector<std::byte> record;        // kept for retries and for deferred sending
  std::vector<std::shared_ptr<TaskState>> after;  // must all succeed before this one is sent
};

/// One task, shared by the futures that refer to it.
struct TaskState {
  std::uint64_t id = 0;
  std::uint32_t engine = 0;             // kAnyEngine for a load-balanced task until an engine finishes it
  std::uint32_t generation = 0;
  std::uint64_t submitted_ns = 0, started_ns = 0, finished_ns = 0;
  Status status = Status::ok;
  std::atomic<bool> done{false};        // release-store after all fields are written; pairs with is_done()
  std::span<const std::byte> bytes;     // the payload: in `small`, extras->large or a held block
  std::shared_ptr<void> hold;
  std::exception_ptr failure;           // set when the task never completed (engine died, aborted, ...)
  // Written only before the task is shared (submission) or before `done` is released (completion).
  std::unique_ptr<TaskExtras> extras;

  // Load-balanced tasks only:
  bool balanced = false;
  // Written by the submitting thread (or, on a retry, the one checking health) while other threads
  // may read them to abort or to check deadlines: pos is stored before queued is released.
  std::atomic<bool> queued{false};      // false while waiting for dependencies
  std::uint32_t queue = 0;
  std::atomic<std::uint64_t> pos{0};    // position in its queue
  std::uint64_t deadline_ns = 0;        // must start by then (0: no limit)
  int retries_left = 0;
  RecordKind kind = RecordKind::apply;

  // Most results are a few bytes: they go here, with no allocation (16-byte aligned, as decoders expect).
  static constexpr std::size_t kSmall = 64;
  alignas(16) std::byte small[kSmall];

  TaskState() noexcept {}  // user-provided: `small` is not zeroed on every task

  bool is_done() const noexcept { return done.load(std::memory_order_acquire); }

  /// The extras, made on first use (by the one thread that may write the task at that time).
  TaskExtras& extra() {
    if (!extras) extras = std::make_unique<TaskExtras>();
    return *extras;
  }

  /// What the task printed to stdout (err = false) or stderr.
  const std::string& output(bool err) const {
    static const std::string none;
    return extras ? (err ? extras->err : extras->out) : none;
  }

  /// The type head of a split typed value (empty when the payload carries its own envelope).
  std::span<const std::byte> type_head() const { return extras ? std::span<const std::byte>(extras->type_head) : std::span<const std::byte>(); }

  /// The tasks this one waits for (load-balanced dependencies).
  std::span<const std::shared_ptr<TaskState>> after() const {
    return extras ? std::span<const std::shared_ptr<TaskState>>(extras->after) : std::span<const std::shared_ptr<TaskState>>();
  }

  /// Copies a payload that is not held in a block.
  void keep(std::span<const std::byte> b) {
    if (b.size() <= kSmall) {
      if (!b.empty()) std::memcpy(small, b.data(), b.size());
      bytes = {small, b.size()};
    } else {
      auto& large = extra().large;
      large.assign(b.begin(), b.end());
      bytes = large;
    }
  }
};
using Task = std::shared_ptr<TaskState>;

}  // namespace cadre::detail
